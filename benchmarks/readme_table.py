"""Rewrite rows of the README's performance table from the JSON the benchmarks write (`--out`).

The table lies between `<!-- performance-table:start -->` and `<!-- performance-table:end -->`;
its columns stay `benchmark | what | figures | target`. Each JSON file replaces the row of its
benchmark (by its `"benchmark"` key: ingest, batches, model); rows without a JSON are kept as they
are. The figures are the JSON's, so the table says what a run measured, not what was remembered.

    python benchmarks/ingest.py --out /tmp/ingest.json
    python benchmarks/batches.py --out /tmp/batches.json
    python benchmarks/model.py --out /tmp/model.json
    python benchmarks/readme_table.py /tmp/ingest.json /tmp/batches.json [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

START, END = "<!-- performance-table:start -->", "<!-- performance-table:end -->"


def _met(report: dict) -> str:
    return "met" if report["meets_targets"] else "**not met**"


def _load(report: dict) -> str:
    start, end = report["host"]["load_average"]
    return f"{report['host']['cpus']}-core host, load {start[0]:.1f} → {end[0]:.1f}"


def _threaded(r: dict) -> str:
    """The bare read on clean_day's reader threads, where the JSON has it (not a target)."""
    if "clean_bars_vs_floor_threads" not in r:
        return ""
    return (
        f" ({r['clean_bars_vs_floor_threads']}× the same bare read on clean_day's reader "
        f"threads, {r['results']['floor_threads']['wall_s_median']:.2f} s)"
    )


def ingest_row(r: dict) -> list[str]:
    res, stages = r["results"], r["clean_day_stages_s"]
    what = (
        f"`clean_bars` on one full synthetic day ({r['files']} symbols, {r['raw_rows']:,} rows, "
        f"{r['raw_mb']:.0f} MB of CSV), {r['rounds']} interleaved rounds"
    )
    figures = (
        f"{res['clean_bars']['wall_s_median']:.2f} s (floor {res['floor']['wall_s_median']:.2f} s,"
        f" pandas {res['pandas']['wall_s_median']:.2f} s): **{r['clean_bars_vs_floor']}× the "
        f"bare `polars.read_csv` floor, {r['pandas_vs_clean_bars']}× the speed of pandas' "
        f"cleaning**{_threaded(r)}; peak RSS {res['clean_bars']['peak_rss_mb']:.0f} MB = "
        f"**{r['rss_vs_csv']}× the CSV**; stages "
        + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
        + f" ({_load(r)})"
    )
    t = r["targets"]
    target = (
        f"≤ {t['clean_bars_vs_floor_max']:g}× floor, ≥ {t['pandas_vs_clean_bars_min']:g}× pandas,"
        f" RSS ≤ {t['rss_vs_csv_max']:g}× CSV: "
        + ", ".join(f"{k} {'met' if ok else '**not met**'}" for k, ok in r["meets"].items())
    )
    return ["`benchmarks/ingest.py`", what, figures, target]


def batches_row(r: dict) -> list[str]:
    res = r["results"]
    what = (
        f"{r['timed_windows']:,} windows of a shuffled epoch over {r['days']} full days "
        f"({r['array_mb']:.0f} MB of arrays), each loader in a fresh process, {r['rounds']} "
        "interleaved rounds, vs a naive `DataLoader` over the same number of windows"
    )
    figures = (
        f"{res['ours_normalised']['windows_per_s_best']:,} windows/s normalised "
        f"({res['ours']['windows_per_s_best']:,} raw), naive "
        f"{res['naive']['windows_per_s_best']:,} → **{r['speedup_normalised_vs_naive']}× "
        f"normalised** ({r['speedup_vs_naive']}× raw); a full normalised epoch "
        f"({r['epoch_normalised']['windows']:,} windows, its permutation included once) runs at "
        f"{r['epoch_normalised']['windows_per_s']:,} windows/s and peaks at "
        f"**{r['peak_rss_vs_arrays']}× the arrays** ({_load(r)})"
    )
    t = r["targets"]
    target = (
        f"≥ {t['speedup_normalised_vs_naive_min']:g}× normalised, RSS ≤ "
        f"{t['peak_rss_vs_arrays_max']:g}×: "
        + ", ".join(f"{k} {'met' if ok else '**not met**'}" for k, ok in r["meets"].items())
    )
    return ["`benchmarks/batches.py`", what, figures, target]


def model_row(r: dict) -> list[str]:
    samplers, reference = r["samplers"], r["reference"]
    what = (
        "the `demo` model: training speed; one window × 1,000 samples per sampler vs "
        f"{_sampler_name(reference)} (paired CRPS and 90 % coverage on "
        f"{r['validation_windows']:,} anchors × {r['samples_per_window']} draws, float32, "
        f"{r['threads']} torch threads)"
    )
    shown = [r["default"]["name"], "angle_2m_2", "dpmpp_2m_10", "dpmpp_2m_5", "ddim_50"]
    parts = [f"{r['training_windows_per_s']['cpu']:,.0f} windows/s training"]
    for name in dict.fromkeys(n for n in shown if n in samplers):  # the default first, once
        row = samplers[name]
        label = _sampler_name(name) + (" (default)" if name == r["default"]["name"] else "")
        parts.append(
            f"{label} **{row['latency_ms_1000_samples']:.0f} ms** (CRPS "
            f"{row[f'crps_vs_{reference}_pct']:+.2f} % ± {row[f'crps_vs_{reference}_se_pct']:.2f}, "
            f"coverage {row[f'coverage_vs_{reference}_pp']:+.2f} pp)"
        )
    parts.append(
        f"{_sampler_name(reference)} {samplers[reference]['latency_ms_1000_samples']:,.0f} ms"
    )
    if "path_model" in r:  # the path target's cost (issue 13)
        paths, scalar = r["path_model"]["demo_paths"], r["path_model"]["demo"]
        parts.append(
            f"path model (`demo_paths`): {paths['train_windows_per_s']:,.0f} windows/s training "
            f"vs {scalar['train_windows_per_s']:,.0f}, one window × 1,000 paths "
            f"**{paths['latency_ms_1x1000']:.0f} ms** vs {scalar['latency_ms_1x1000']:.0f} ms"
        )
    load = r["load_average_1m"]
    parts[-1] += f" (load {load['start']:.1f} → {load['end']:.1f})"
    t = r["targets"]
    target = (
        f"≤ {t['latency_ms_max']:g} ms float32 within {t['crps_pct_max']:g} % CRPS and "
        f"{t['coverage_pp_max']:g} pp coverage: "
        f"{'met' if r['default_meets_targets'] else '**not met**'} by the default "
        f"(fastest that meets all: {r['fastest_meeting_targets'] or 'none'})"
    )
    return ["`benchmarks/model.py`", what, "; ".join(parts), target]


def _sampler_name(name: str) -> str:
    """`sde_dpmpp_2m_10` -> `SDE-DPM-Solver++(2M)-10`, `ddim_50` -> `DDIM-50`."""
    kind, _, steps = name.rpartition("_")
    label = {
        "sde_dpmpp_2m": "SDE-DPM-Solver++(2M)",
        "dpmpp_2m": "DPM-Solver++(2M)",
        "angle_2m": "angle-(2M)",
        "ddim": "DDIM",
        "ddpm": "DDPM",
    }.get(kind, kind)
    return f"{label}-{steps}"


ROWS: dict[str, Callable[[dict], list[str]]] = {
    "ingest": ingest_row,
    "batches": batches_row,
    "model": model_row,
}


def rewrite(readme: str, reports: list[dict]) -> str:
    """`readme` with the rows of the given reports replaced (or appended) inside the markers."""
    if START not in readme or END not in readme:
        raise ValueError(f"the README has no {START} ... {END} markers around its table")
    head, rest = readme.split(START, 1)
    table, tail = rest.split(END, 1)
    lines = table.strip("\n").splitlines()
    for report in reports:
        cells = ROWS[report["benchmark"]](report)
        row = "| " + " | ".join(cells) + " |"
        at = [i for i, line in enumerate(lines) if line.startswith(f"| {cells[0]} ")]
        if at:
            lines[at[0]] = row
        else:
            lines.append(row)
    return f"{head}{START}\n" + "\n".join(lines) + f"\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("reports", nargs="+", type=Path, help="JSON files written with --out")
    parser.add_argument("--readme", type=Path, default=Path(__file__).parents[1] / "README.md")
    args = parser.parse_args()
    reports = [json.loads(path.read_text()) for path in args.reports]
    unknown = [r.get("benchmark") for r in reports if r.get("benchmark") not in ROWS]
    if unknown:
        raise SystemExit(f"no README row for benchmark(s) {unknown}; known: {sorted(ROWS)}")
    args.readme.write_text(rewrite(args.readme.read_text(), reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The README's performance rows are generated from the benchmarks' JSON, not typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_scripts import load

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def readme_table():
    return load("readme_table")


def _sampler(ms: float, crps: float, cover: float) -> dict:
    return {
        "latency_ms_1000_samples": ms,
        "crps_vs_ddpm_1000_pct": crps,
        "crps_vs_ddpm_1000_se_pct": 0.47,
        "coverage_vs_ddpm_1000_pp": cover,
    }


MODEL_REPORT = {
    "benchmark": "model",
    "threads": 2,
    "load_average_1m": {"start": 0.3, "end": 1.9},
    "training_windows_per_s": {"cpu": 1972.4},
    "validation_windows": 6000,
    "samples_per_window": 25,
    "reference": "ddpm_1000",
    "samplers": {
        "ddpm_1000": {"latency_ms_1000_samples": 5166.0},
        "sde_dpmpp_2m_10": _sampler(49.5, -0.12, 0.20),
        "dpmpp_2m_10": _sampler(48.7, 0.46, -0.85),
        "ddim_50": _sampler(255.0, 0.47, -0.87),
        "dpmpp_2m_15": _sampler(82.0, 0.44, -0.46),
        "dpmpp_2m_5": _sampler(32.0, 1.04, -4.3),
    },
    "targets": {"latency_ms_max": 50.0, "crps_pct_max": 1.0, "coverage_pp_max": 1.0},
    "default": {"name": "sde_dpmpp_2m_10"},
    "default_meets_targets": True,
    "fastest_meeting_targets": "dpmpp_2m_10",
}


def test_the_model_row_is_rewritten_from_its_json_and_other_rows_are_kept(readme_table) -> None:
    readme = (
        "intro\n<!-- performance-table:start -->\n| benchmark | what | figures | target |\n"
        "|---|---|---|---|\n| `benchmarks/ingest.py` | a | b | c |\n"
        "| `benchmarks/model.py` | old | 255 ms | not met |\n<!-- performance-table:end -->\nrest\n"
    )
    out = readme_table.rewrite(readme, [MODEL_REPORT])
    row = next(line for line in out.splitlines() if line.startswith("| `benchmarks/model.py`"))
    default = "SDE-DPM-Solver++(2M)-10 (default) **50 ms** (CRPS -0.12 % ± 0.47, coverage +0.20 pp)"
    assert default in row and "; DPM-Solver++(2M)-10 **49 ms**" in row
    assert "DDIM-50 **255 ms**" in row and "DDPM-1000 5,166 ms" in row
    assert "1,972 windows/s training" in row and "met by the default" in row
    assert "old" not in row
    assert "| `benchmarks/ingest.py` | a | b | c |" in out and out.endswith("rest\n")


def test_the_model_row_carries_the_path_models_cost_when_measured(readme_table) -> None:
    report = {
        **MODEL_REPORT,
        "path_model": {
            "demo": {"train_windows_per_s": 2600.0, "latency_ms_1x1000": 41.2},
            "demo_paths": {"train_windows_per_s": 2520.4, "latency_ms_1x1000": 43.6},
        },
    }
    row = readme_table.model_row(report)[2]
    assert "path model (`demo_paths`): 2,520 windows/s training vs 2,600" in row
    assert "one window × 1,000 paths **44 ms** vs 41 ms (load 0.3 → 1.9)" in row
    assert "path model" not in readme_table.model_row(MODEL_REPORT)[2]


def test_the_ingest_row_says_the_threaded_read_when_the_json_has_it(readme_table) -> None:
    report = json.loads((ROOT / "tests/project/data/ingest_report.json").read_text())
    figures = readme_table.ingest_row(report)[2]
    assert "**1.89× the bare `polars.read_csv` floor" in figures
    assert "(2.43× the same bare read on clean_day's reader threads, 0.53 s)" in figures
    del report["clean_bars_vs_floor_threads"]  # a JSON from before the threaded reference
    assert "reader threads" not in readme_table.ingest_row(report)[2]

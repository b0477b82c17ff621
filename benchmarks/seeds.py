"""Headline figures over several training seeds: mean ± sd of the evaluation report.

Runs `train_job` (diffusion_model -> forecasts -> evaluation_report) as of one day once per
seed, on windows already built by the README run command, and prints JSON with, per model,
the mean and standard deviation over seeds of CRPS, 90 % coverage and the skill vs EWMA, plus
the share of the EWMA -> oracle gap the diffusion model closes.

    DIFFSTOCK_DATA=data python benchmarks/seeds.py --as-of 20251113 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import dagster as dg
import polars as pl

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings

METRICS = (
    "crps_bp",
    "crps_skill_vs_ewma_gaussian",
    "coverage_50",
    "coverage_80",
    "coverage_90",
    "coverage_95",
    "below_median",
)
HEADS = ("gaussian_head", "student_t_head")


def run_seed(defs: dg.Definitions, instance: dg.DagsterInstance, as_of: str, seed: int) -> None:
    config = {"seed": seed}
    run_config = {"ops": {"diffusion_model": {"config": config}, "forecasts": {"config": config}}}
    result = defs.resolve_job_def("train_job").execute_in_process(
        partition_key=as_of, instance=instance, run_config=run_config, raise_on_error=False
    )
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    if any("model_not_better_than_baseline" not in message for message in failures):
        raise RuntimeError(f"seed {seed}: train_job failed: {failures}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    defs = build_definitions(settings)
    report = Path(settings.lake) / "evaluation_report" / args.as_of / "overall.csv"
    tables = []
    with dg.DagsterInstance.get() as instance:
        for seed in args.seeds:
            run_seed(defs, instance, args.as_of, seed)
            tables.append(pl.read_csv(report).with_columns(pl.lit(seed).alias("seed")))
    runs = pl.concat(tables, how="diagonal")
    out = {"as_of": args.as_of, "seeds": args.seeds, **summarise(runs)}
    print(json.dumps(out, indent=2))
    return 0


def summarise(runs: pl.DataFrame) -> dict:
    """Mean and sd over seeds of every model's metrics, and the diffusion model's per-seed
    comparison with the heads and share of the EWMA -> oracle gap, each list in seed order.

    `runs`: the reports' overall rows (one per model and seed) with a `seed` column.
    """
    summary = runs.group_by("model").agg(
        *(pl.col(m).mean().alias(f"{m}_mean") for m in METRICS if m in runs.columns),
        *(pl.col(m).std().alias(f"{m}_sd") for m in METRICS if m in runs.columns),
    )
    per_seed = runs.pivot(on="model", index="seed", values="crps_bp").sort("seed")
    gap = (
        (per_seed["ewma_gaussian"] - per_seed["diffusion"])
        / (per_seed["ewma_gaussian"] - per_seed["oracle"])
        if "oracle" in per_seed.columns
        else None
    )
    diffusion = runs.filter(pl.col("model") == "diffusion").sort("seed")
    acceptance = {"seed": diffusion["seed"].to_list()} | {
        f"vs_{head}": {
            "skill": diffusion[f"crps_skill_vs_{head}"].to_list(),
            "dm_pvalue": diffusion[f"dm_pvalue_vs_{head}"].to_list(),
        }
        for head in HEADS
        if f"crps_skill_vs_{head}" in diffusion.columns
    }
    return {
        "diffusion_per_seed": acceptance | {"gap_closed": None if gap is None else gap.to_list()},
        "models": {
            row.pop("model"): row for row in summary.sort("crps_bp_mean").iter_rows(named=True)
        },
        "gap_closed_mean": None if gap is None else float(gap.mean()),
        "gap_closed_sd": None if gap is None else float(gap.std()),
    }


if __name__ == "__main__":
    raise SystemExit(main())

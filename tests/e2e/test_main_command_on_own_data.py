"""The main command on data shaped like a real 2013 tape: five sessions, split 3/1/1, with the
path model (`tiny_paths`), so both reports meet old dates, few sessions and a changing universe."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from realistic_market import write_realistic_market

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_the_main_command_on_five_real_looking_sessions_ends_with_a_report(
    tmp_path: Path,
) -> None:
    """Sparse trading, a halt, a listing and a delisting, sub-penny prints, a late open."""
    days = write_realistic_market(tmp_path / "data_1s")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIFFSTOCK_", "DAGSTER_HOME"))}
    env |= {
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(tmp_path / "data_1s"),
        "DIFFSTOCK_PROFILE": "tiny_paths",  # trains in seconds; adds the path report
        "DIFFSTOCK_SPLIT": "3,1,1",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "dagster_project.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.returncode == 0, output
    assert "5/5 trading days materialised" in completed.stdout
    lake = tmp_path / "data" / "lake"
    report = lake / "evaluation_report" / days[-1] / "report.md"
    assert report.exists(), output
    assert f"Evaluation report: {report}" in completed.stdout

    # the delisted DELL has no row on the test day; the newly listed TWTR has one
    by_symbol = pl.read_csv(lake / "evaluation_report" / days[-1] / "by_symbol.csv")
    assert set(by_symbol["symbol"]) == {"AAPL", "F", "GE", "TWTR"}
    overall = pl.read_csv(lake / "evaluation_report" / days[-1] / "overall.csv")
    assert "oracle" not in set(overall["model"])  # real data has no latent truth
    assert overall["crps_bp"].is_finite().all()

    # the path report: every model scored at the same anchors, all scores finite
    paths = lake / "path_report" / days[-1]
    assert f"Path report: {paths / 'paths.md'}" in completed.stdout
    metrics = pl.read_parquet(paths / "path_metrics.parquet")
    assert {"diffusion_paths", "ewma_random_walk", "garch_t_paths"} <= set(metrics["model"])
    assert "oracle_paths" not in set(metrics["model"])
    scores = metrics.select("energy_score_bp", "crps_mean_bp")
    assert scores.select(pl.all().is_finite().all()).row(0) == (True, True)
    assert metrics["n_anchors"].n_unique() == 1 and metrics["n_anchors"][0] > 0

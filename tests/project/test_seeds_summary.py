"""`benchmarks/seeds.py` summarises the seeds' reports with every per-seed list in seed order."""

from __future__ import annotations

import polars as pl
import pytest
from benchmark_scripts import load


@pytest.fixture(scope="module")
def seeds():
    return load("seeds")


def _report(seed: int, diffusion: float) -> pl.DataFrame:
    """One seed's overall rows: EWMA 5.0 bp, oracle 4.0, the diffusion model as given."""
    crps = {"ewma_gaussian": 5.0, "oracle": 4.0, "diffusion": diffusion}
    return pl.DataFrame(
        {
            "model": list(crps),
            "crps_bp": list(crps.values()),
            "crps_skill_vs_student_t_head": [0.0, 0.0, seed / 100],
            "dm_pvalue_vs_student_t_head": [1.0, 1.0, seed / 10],
            "seed": [seed] * 3,
        }
    )


def test_per_seed_lists_follow_the_seeds_not_the_run_order(seeds):
    # run order 1, 2, 0 (as the README's command line has it); seed s closes (s + 1) / 10 of
    # the gap, so a list in run order would read 0.2, 0.3, 0.1
    runs = pl.concat([_report(s, 5.0 - (s + 1) / 10) for s in (1, 2, 0)])
    out = seeds.summarise(runs)["diffusion_per_seed"]
    assert out["seed"] == [0, 1, 2]
    assert out["gap_closed"] == pytest.approx([0.1, 0.2, 0.3])
    assert out["vs_student_t_head"]["skill"] == pytest.approx([0.0, 0.01, 0.02])
    assert out["vs_student_t_head"]["dm_pvalue"] == pytest.approx([0.0, 0.1, 0.2])


def test_mean_and_sd_over_seeds(seeds):
    runs = pl.concat([_report(s, 4.5 + s / 10) for s in (0, 1, 2)])
    out = seeds.summarise(runs)
    assert out["models"]["diffusion"]["crps_bp_mean"] == pytest.approx(4.6)
    assert out["models"]["diffusion"]["crps_bp_sd"] == pytest.approx(0.1)
    assert out["gap_closed_mean"] == pytest.approx(0.4)
    assert list(out["models"]) == ["oracle", "diffusion", "ewma_gaussian"]  # best first

"""Fits side by side in forked workers: the same models as fitted here, errors that name the fit,
and a plan that forks only where it may (a CPU on Linux)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from diffstock_ml.baselines import DIRECTION_CLASSIFIERS, ScaleFit, StudentTHead
from diffstock_ml.forecasting import ForecastConfig
from diffstock_ml.side_by_side import (
    Plan,
    available_memory,
    fit_side_by_side,
    plan,
    run_side_by_side,
)
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays

TINY = PROFILES["tiny"]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """This process at one torch thread, as each forked worker below: the same arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@linux_only
def test_networks_fitted_in_forked_workers_are_those_fitted_here(
    tiny_windows: list[Path], one_thread: None
) -> None:
    train = [load_day_arrays(tiny_windows[0])]

    def head() -> StudentTHead:
        model = StudentTHead(TINY.model, TINY.train, scale_fit=ScaleFit(max_anchors=500))
        model.fit(train, np.random.default_rng(3), max_steps=8)
        return model

    def classifier():
        model = DIRECTION_CLASSIFIERS["lstm_direction"](TINY.model, TINY.train)
        model.fit(train, np.random.default_rng(4), max_steps=8)
        return model

    jobs = {"student_t_head": head, "lstm_direction": classifier}
    here = run_side_by_side(jobs, Plan(workers=1, threads=1))
    forked = run_side_by_side(jobs, Plan(workers=2, threads=1))
    assert list(forked) == list(jobs)
    for name in jobs:
        ours, theirs = here[name].network.state_dict(), forked[name].network.state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name
        assert here[name].losses == forked[name].losses, name
    assert here["student_t_head"].scale == forked["student_t_head"].scale


@linux_only
def test_jobs_run_in_other_processes_and_come_back_in_their_order() -> None:
    jobs = {name: (lambda name=name: (name, os.getpid())) for name in "cab"}
    results = run_side_by_side(jobs, Plan(workers=2, threads=1))
    assert list(results) == ["c", "a", "b"]
    assert [name for name, _ in results.values()] == ["c", "a", "b"]
    assert os.getpid() not in {pid for _, pid in results.values()}


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=linux_only)])
def test_a_failing_fit_raises_its_own_error_naming_the_fit(workers: int) -> None:
    def broken() -> None:
        raise ValueError("no training windows")

    with pytest.raises(ValueError, match="no training windows") as raised:
        run_side_by_side({"fine": lambda: 1, "garch_t": broken}, Plan(workers, threads=1))
    assert "(while fitting garch_t)" in raised.value.__notes__


def test_the_plan_forks_only_for_a_cpu_on_linux_and_shares_the_threads(one_thread) -> None:
    torch.set_num_threads(2)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert plan(3, cuda) == Plan(1, 2)  # a CUDA context cannot be forked
    if sys.platform.startswith("linux"):
        assert plan(8, cpu) == Plan(2, 1)  # one fit per thread
        assert plan(1, cpu) == Plan(1, 2)  # one job: all threads here
        assert plan(8, cpu, workers=1) == Plan(1, 2)
        assert plan(8, cpu, workers=4) == Plan(4, 1)
    else:
        assert plan(8, cpu) == Plan(1, 2)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        plan(3, cpu, workers=0)


@linux_only
def test_the_plan_keeps_the_workers_copies_of_the_windows_within_half_the_memory(
    one_thread,
) -> None:
    torch.set_num_threads(8)
    cpu, free = torch.device("cpu"), available_memory()
    assert free > 0
    assert plan(8, cpu, bytes_per_job=free // 20) == Plan(8, 1)  # room for ten
    assert plan(8, cpu, bytes_per_job=free // 7) == Plan(3, 2)  # room for three and a half
    assert plan(8, cpu, bytes_per_job=free) == Plan(1, 8)  # one, here, on every thread
    assert plan(8, cpu, workers=4, bytes_per_job=free) == Plan(4, 2)  # asked for: as asked


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=linux_only)])
def test_fit_side_by_side_returns_each_model_fitted_with_its_time(workers: int) -> None:
    def fit(name: str, model: list) -> None:
        model.append(f"fitted {name}")

    fitted = fit_side_by_side({"b": [], "a": ["x"]}, fit, Plan(workers, threads=1))
    assert list(fitted) == ["b", "a"]
    assert fitted["a"].model == ["x", "fitted a"] and fitted["b"].model == ["fitted b"]
    assert all(f.seconds >= 0 for f in fitted.values())


def test_forecast_config_refuses_fewer_than_one_fit_worker() -> None:
    assert ForecastConfig(fit_workers=1).fit_workers == 1
    assert ForecastConfig().fit_workers is None  # automatic
    with pytest.raises(ValueError, match="fit_workers must be >= 1 or None, got 0"):
        ForecastConfig(fit_workers=0)

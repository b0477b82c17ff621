"""Independent model fits run side by side in forked worker processes (Linux, CPU).

A small network trained on a CPU runs on two threads only 1.5-1.7x as fast as on one (measured
on the demo profile's heads and recurrent side models: a step is many small matrix products), while
two processes of one thread each run at full speed on two cores. So the `forecasts` asset fits
its learned baselines two (or more) at a time, each in a process of its own with its share of
torch's threads. Every fit draws only from its own seeded streams, so a model fitted in a
worker is the one fitted in this process with the same number of threads (a test checks it).

Workers are forked: they inherit the (memory-mapped) training windows instead of receiving a
pickled copy, and only the fitted model travels back. Forking is safe on Linux for a CPU
process: torch resets its thread pools in the child, and a Dagster step process runs one other
thread (tqdm's monitor, started by MLflow), whose lock a fit never takes. A process holding a
CUDA context cannot fork, and on macOS forking after torch has loaded Apple's frameworks is not
safe, so everywhere else the fits run one after another here.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, NamedTuple, TypeVar

import torch

T = TypeVar("T")
M = TypeVar("M")

_JOBS: dict[str, Callable[[], object]] = {}  # what forked workers find by name


@dataclass(frozen=True)
class Plan:
    """How many fits run at a time, and the torch threads each one gets."""

    workers: int
    threads: int

    @property
    def forked(self) -> bool:
        return self.workers > 1


def plan(
    n_jobs: int, device: torch.device, workers: int | None = None, bytes_per_job: int = 0
) -> Plan:
    """Side by side on a Linux CPU: `workers` processes sharing torch's threads; otherwise one
    fit at a time in this process. None: one per torch thread, at most one per job, and no
    more than half the available memory holds at `bytes_per_job` each (every worker builds
    its own copy of the training windows)."""
    budget = torch.get_num_threads()
    if not can_fork(device):
        return Plan(1, budget)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for one per CPU thread), got {workers}")
    if workers is None:
        workers = min(budget, _fit_in_memory(bytes_per_job))
    count = max(1, min(n_jobs, workers))
    return Plan(count, max(1, budget // count))


def _fit_in_memory(bytes_per_job: int) -> int:
    """How many jobs of `bytes_per_job` fit in half of the memory available now (Linux)."""
    if bytes_per_job <= 0:
        return sys.maxsize
    return max(1, available_memory() // 2 // bytes_per_job)


def available_memory() -> int:
    """Bytes this process may still use: the kernel's MemAvailable, or less under a cgroup
    (container) limit."""
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return available
    return available if limit == "max" else min(available, int(limit) - used)


def can_fork(device: torch.device) -> bool:
    """Whether model fits may run in forked processes: a CPU device on Linux."""
    return device.type == "cpu" and sys.platform.startswith("linux")


def run_side_by_side(jobs: Mapping[str, Callable[[], T]], plan: Plan) -> dict[str, T]:
    """Each job's result by name. Forked workers take the jobs in the order given (put the
    longest first); a job's error is raised here, of its own type, with a note naming the job.
    Results must pickle."""
    if not plan.forked:
        return {name: _named(name, job) for name, job in jobs.items()}
    _JOBS.update(jobs)
    try:
        with ProcessPoolExecutor(
            plan.workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=torch.set_num_threads,
            initargs=(plan.threads,),
        ) as pool:
            futures = {name: pool.submit(_run, name) for name in jobs}
            return {name: future.result() for name, future in futures.items()}
    finally:
        for name in jobs:
            _JOBS.pop(name, None)


class Fitted(NamedTuple, Generic[M]):
    model: M
    seconds: float  # wall time of its fit


def fit_side_by_side(
    models: Mapping[str, M], fit: Callable[[str, M], None], plan: Plan
) -> dict[str, Fitted[M]]:
    """`fit(name, model)` for every model (in place, in a worker or here), in the order given;
    each fitted model, by name, with the seconds its fit took."""

    def job(name: str, model: M) -> Callable[[], Fitted[M]]:
        def run() -> Fitted[M]:
            start = time.perf_counter()
            fit(name, model)
            return Fitted(model, time.perf_counter() - start)

        return run

    return run_side_by_side({name: job(name, model) for name, model in models.items()}, plan)


def _run(name: str) -> object:
    return _named(name, _JOBS[name])


def _named(name: str, job: Callable[[], T]) -> T:
    try:
        return job()
    except Exception as error:
        error.add_note(f"(while fitting {name})")
        raise

"""The training loop: schedule, a short run, and resuming after the process is killed."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.train import TrainConfig, lr_factor, train
from diffstock_ml.train.checkpoint import BEST, LATEST, load_checkpoint
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays

ROOT = Path(__file__).resolve().parents[2]


def test_learning_rate_warms_up_then_decays_by_cosine() -> None:
    config = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, config) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.1, abs=0.01)


class Recorder:
    def __init__(self) -> None:
        self.steps, self.evals, self.messages = [], [], []

    def on_step(self, metrics) -> None:
        self.steps.append(metrics)

    def on_eval(self, metrics) -> None:
        self.evals.append(metrics)

    def on_message(self, text: str) -> None:
        self.messages.append(text)


def test_short_training_reports_progress_and_keeps_the_best(tiny_windows, tmp_path: Path) -> None:
    arrays = {f.name: load_day_arrays(f) for f in tiny_windows}
    splits = split_days(list(arrays), 1, 1, 1)
    model_config, config = PROFILES["tiny"].model, PROFILES["tiny"].train
    recorder = Recorder()
    result = train(
        model_config,
        config,
        [arrays[d] for d in splits.train],
        [arrays[d] for d in splits.val],
        fit_normaliser(arrays, splits),
        tmp_path,
        torch.device("cpu"),
        recorder,
    )
    assert result.steps == config.max_steps and result.resumed_from == 0
    assert [m.step for m in recorder.steps] == list(range(10, 41, 10))
    assert [m.step for m in recorder.evals] == [20, 40]
    assert all(torch.isfinite(torch.tensor(m.loss)) for m in recorder.steps)
    assert 0.0 <= recorder.evals[-1].val_coverage_90 <= 1.0
    assert 0.0 < recorder.evals[-1].val_median_below < 1.0
    assert result.windows_per_s > 0
    assert result.best_val_crps_bp == min(m.val_crps_bp for m in recorder.evals)
    assert (tmp_path / LATEST).exists() and (tmp_path / BEST).exists()
    assert load_checkpoint(tmp_path)["state"]["step"] == config.max_steps


@pytest.mark.e2e
def test_a_killed_training_resumes_from_its_checkpoint(tiny_windows, tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "diffstock_ml.train", "--windows", *map(str, tiny_windows)]
    command += ["--split", "1", "1", "1", "--out", str(out), "--profile", "tiny"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([*command, "--max-steps", "400"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for a checkpoint past step 10, then kill -9
        saved = load_checkpoint(out) if (out / LATEST).exists() else None
        if saved is not None and saved["state"]["step"] >= 20:
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = load_checkpoint(out)["state"]["step"]
    assert 20 <= killed_at < 400
    # a kill mid-save leaves at most a temporary file; the final checkpoint above loaded intact

    second = subprocess.run(
        [*command, "--max-steps", str(killed_at + 20)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resumed from step {killed_at}" in second.stdout
    assert not list(out.glob(".*.tmp"))  # partial files of the killed run were discarded
    summary = json.loads((out / "result.json").read_text())
    assert summary["resumed_from"] == killed_at and summary["steps"] == killed_at + 20


@pytest.mark.e2e
def test_torchrun_trains_with_two_data_parallel_ranks(tiny_windows, tmp_path: Path) -> None:
    """DistributedDataParallel on the CPU (gloo): what `torchrun` does on a multi-GPU node."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += ["--master_port", str(_free_port()), "-m", "diffstock_ml.train"]
    command += ["--windows", *map(str, tiny_windows), "--split", "1", "1", "1"]
    command += ["--out", str(tmp_path), "--profile", "tiny", "--max-steps", "20", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["steps"] == 20
    assert load_checkpoint(tmp_path)["state"]["step"] == 20


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

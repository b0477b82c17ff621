"""The training loop: schedule, a short run, and resuming after the process is killed."""

import copy
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.train import TrainConfig, lr_factor, train
from diffstock_ml.train.checkpoint import BEST, LATEST, load_checkpoint, save_checkpoint
from diffstock_ml.train.loop import adamw
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.train.validate import within_noise
from diffstock_ml.windows import load_day_arrays

ROOT = Path(__file__).resolve().parents[2]


def test_learning_rate_warms_up_then_decays_by_cosine() -> None:
    config = TrainConfig(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, config) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] == pytest.approx(0.1, abs=0.01)


def test_adamw_is_fused_on_cpu_and_steps_as_the_reference_does() -> None:
    # the fused kernel is the speed-up (6.8 -> 1.1 ms a step for the demo model); it must not be
    # another optimizer: ten steps on the same gradients land where torch's loop AdamW lands
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))
    reference = copy.deepcopy(ours)
    initial = [p.detach().clone() for p in ours.parameters()]
    config = TrainConfig(lr=1e-2, weight_decay=0.1)
    optimizer = adamw(ours.parameters(), config)
    expected = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    assert optimizer.defaults["fused"] and not expected.defaults["fused"]
    for step in range(10):
        x = torch.randn(32, 8, generator=torch.Generator().manual_seed(step))
        for model, opt in ((ours, optimizer), (reference, expected)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for mine, theirs in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert all(not torch.equal(p, p0) for p, p0 in zip(ours.parameters(), initial, strict=True))


def test_a_checkpoint_ships_unless_the_lowest_is_better_by_more_than_the_noise() -> None:
    rng = np.random.default_rng(0)
    lowest = rng.gamma(2.0, 2.0, size=4_000)  # per-window CRPS of the lowest validation, bp
    noise = rng.normal(0.0, 0.1, size=4_000)
    noise -= noise.mean()
    standard_error = noise.std(ddof=1) / np.sqrt(4_000)  # of the paired mean difference
    for excess_se, z, ships in [(1.5, 2.0, True), (2.5, 2.0, False), (0.5, 0.0, False)]:
        newer = lowest + noise + excess_se * standard_error  # worse by `excess_se` SEs
        assert within_noise(newer, lowest, z) is ships
    assert within_noise(lowest - 0.01, lowest, 0.0)  # a lower mean always ships
    assert within_noise(lowest, list(lowest), 0.0)  # the reference itself (as kept in state)
    with pytest.raises(ValueError, match="not paired"):
        within_noise(lowest[:10], lowest, 2.0)
    with pytest.raises(ValueError, match="select_within_se"):
        TrainConfig(select_within_se=-1.0)


class Recorder:
    def __init__(self) -> None:
        self.steps, self.evals, self.messages = [], [], []

    def on_step(self, metrics) -> None:
        self.steps.append(metrics)

    def on_eval(self, metrics) -> None:
        self.evals.append(metrics)

    def on_message(self, text: str) -> None:
        self.messages.append(text)


@pytest.mark.parametrize("within_se", [0.0, 1e9])
def test_short_training_reports_progress_and_ships_the_selected_ema(
    tiny_windows, tmp_path: Path, within_se: float
) -> None:
    # margin 0: the lowest validation CRPS ships; an unbounded margin: always the newest EMA
    arrays = {f.name: load_day_arrays(f) for f in tiny_windows}
    splits = split_days(list(arrays), 1, 1, 1)
    model_config = PROFILES["tiny"].model
    config = replace(PROFILES["tiny"].train, select_within_se=within_se)
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
    shipped = (
        min(recorder.evals, key=lambda m: m.val_crps_bp) if within_se == 0 else recorder.evals[-1]
    )
    assert (result.best_step, result.best_val_crps_bp) == (shipped.step, shipped.val_crps_bp)
    assert recorder.evals[-1].best_val_crps_bp == shipped.val_crps_bp
    assert load_checkpoint(tmp_path, BEST)["step"] == shipped.step
    assert (tmp_path / LATEST).exists()
    assert load_checkpoint(tmp_path)["state"]["step"] == config.max_steps


def test_a_checkpoint_without_random_state_resumes_and_says_so(
    tiny_windows, tmp_path: Path
) -> None:
    """Checkpoints written before the random state was saved hold the training generator only."""
    arrays = {f.name: load_day_arrays(f) for f in tiny_windows}
    splits = split_days(list(arrays), 1, 1, 1)
    model_config, config = PROFILES["tiny"].model, PROFILES["tiny"].train
    days = ([arrays[d] for d in splits.train], [arrays[d] for d in splits.val])
    normaliser = fit_normaliser(arrays, splits)
    cpu = torch.device("cpu")
    train(model_config, replace(config, max_steps=10), *days, normaliser, tmp_path, cpu)
    old = load_checkpoint(tmp_path)
    old["generator"] = old.pop("random")[0]["generator"]
    save_checkpoint(old, tmp_path)

    recorder = Recorder()
    result = train(
        model_config, replace(config, max_steps=20), *days, normaliser, tmp_path, cpu, recorder
    )
    assert result.resumed_from == 10 and result.steps == 20
    assert any("no random state for rank 0 on cpu" in m for m in recorder.messages)
    assert set(load_checkpoint(tmp_path)["random"]) == {0}


class InterruptAt(Recorder):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def on_step(self, metrics) -> None:
        if metrics.step == self.step:
            raise KeyboardInterrupt


def test_an_interrupt_mid_step_keeps_the_last_periodic_checkpoint(
    tiny_windows, tmp_path: Path
) -> None:
    """Ctrl-C between a step and its validation: a checkpoint there would resume without that
    validation, so the exit checkpoint is skipped and the run resumes from step 10."""
    arrays = {f.name: load_day_arrays(f) for f in tiny_windows}
    splits = split_days(list(arrays), 1, 1, 1)
    model_config, config = PROFILES["tiny"].model, PROFILES["tiny"].train
    days = ([arrays[d] for d in splits.train], [arrays[d] for d in splits.val])
    normaliser = fit_normaliser(arrays, splits)
    with pytest.raises(KeyboardInterrupt):
        train(
            model_config, config, *days, normaliser, tmp_path, torch.device("cpu"), InterruptAt(20)
        )
    assert load_checkpoint(tmp_path)["state"]["step"] == 10


@pytest.mark.e2e
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tiny_windows, tmp_path: Path) -> None:
    """kill -9 after a mid-epoch checkpoint, resume with the same arguments: on the CPU the
    final and best checkpoints equal, bit for bit, those of a run that never stopped."""
    steps, config = 40, PROFILES["tiny"].train
    command = [sys.executable, "-m", "diffstock_ml.train", "--windows", *map(str, tiny_windows)]
    command += ["--split", "1", "1", "1", "--profile", "tiny", "--device", "cpu"]
    command += ["--max-steps", str(steps)]
    # one thread in every run: the thread count changes how CPU float reductions are summed
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    uninterrupted = subprocess.Popen([*command, "--out", str(straight)], cwd=ROOT, env=env)
    victim = subprocess.Popen([*command, "--out", str(killed)], cwd=ROOT, env=env)
    deadline = time.monotonic() + 300
    while not (killed / LATEST).exists() and victim.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.01)  # kill -9 as soon as the first periodic checkpoint is there
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert uninterrupted.wait(timeout=300) == 0

    saved = load_checkpoint(killed)["state"]
    per_epoch = len(load_day_arrays(tiny_windows[0]).anchors) // config.batch_size
    assert 0 < saved["step"] < steps and saved["step"] % config.checkpoint_every == 0
    assert saved["epoch"] == 0 and 0 < saved["batch_in_epoch"] < per_epoch  # mid-epoch
    resumed = subprocess.run(
        [*command, "--out", str(killed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from step {saved['step']}" in resumed.stdout
    assert "not bit-exact" not in resumed.stdout
    assert not list(killed.glob(".*.tmp"))  # partial files of the killed run were discarded
    summary = json.loads((killed / "result.json").read_text())
    assert summary["resumed_from"] == saved["step"] and summary["steps"] == steps

    expected, actual = load_checkpoint(straight), load_checkpoint(killed)
    assert {"model", "ema", "optimizer", "lr_schedule", "random", "state"} <= set(actual)
    assert actual["ema"]["n_averaged"] == steps
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(actual["optimizer"]["state"][0])
    _assert_identical(expected, actual, "latest.pt")  # weights, EMA, Adam, RNG, data position
    _assert_identical(load_checkpoint(straight, BEST), load_checkpoint(killed, BEST), "best.pt")


def _assert_identical(expected, actual, where: str) -> None:
    """Equal nested checkpoints: tensors bit for bit (`torch.equal`), everything else by `==`."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and expected.dtype == actual.dtype, where
        assert torch.equal(expected, actual), f"{where} differs"
    elif isinstance(expected, dict):
        assert expected.keys() == actual.keys(), f"{where}: keys {set(expected) ^ set(actual)}"
        for key in expected:
            _assert_identical(expected[key], actual[key], f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), f"{where}: lengths differ"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _assert_identical(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


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
    assert set(load_checkpoint(tmp_path)["random"]) == {0, 1}  # each rank's random state


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

"""The training loop of the diffusion forecaster: a plain function, readable top to bottom.

AdamW with linear warm-up and cosine decay, gradient accumulation and clipping, K noise levels
per encoded window, EMA weights, bf16 autocast on CUDA, optional `torch.compile`, checkpoints
every M steps and on exit (resumed exactly: random state and mid-epoch position included), and
early stopping on the validation CRPS of the EMA model (the newest validated EMA ships unless an
earlier one was better by more than the validation's noise). Progress goes to a callback; nothing
here prints. Under `torchrun` each rank trains on its shard of the anchors through
DistributedDataParallel.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from diffstock_ml.batches import Batch, Normaliser, WindowLoader
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.forecast import (
    dequantise,
    dequantise_paths,
    grid_in_target_units,
    to_model_target,
    to_path_target,
)
from diffstock_ml.train.checkpoint import (
    BEST,
    LATEST,
    discard_partial,
    load_checkpoint,
    random_state,
    save_checkpoint,
    set_random_state,
)
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.ema import exponential_moving_average
from diffstock_ml.train.validate import fixed_subset, validate, within_noise
from diffstock_ml.windows import DayArrays


@dataclass(frozen=True)
class StepMetrics:
    step: int
    loss: float
    lr: float
    grad_norm: float
    windows_per_s: float


@dataclass(frozen=True)
class EvalMetrics:
    step: int
    val_crps_bp: float
    val_coverage_90: float
    best_val_crps_bp: float
    val_median_below: float = float("nan")  # share of outcomes below the forecast median


class TrainCallback(Protocol):
    def on_step(self, metrics: StepMetrics) -> None: ...
    def on_eval(self, metrics: EvalMetrics) -> None: ...
    def on_message(self, text: str) -> None: ...


class SilentCallback:
    def on_step(self, metrics: StepMetrics) -> None: ...
    def on_eval(self, metrics: EvalMetrics) -> None: ...
    def on_message(self, text: str) -> None: ...


@dataclass(frozen=True)
class TrainResult:
    steps: int
    best_step: int
    best_val_crps_bp: float
    first_val_crps_bp: float
    history: tuple[EvalMetrics, ...]
    stopped_early: bool
    resumed_from: int  # 0 when training started fresh
    wall_s: float
    device: str
    train_windows: int
    val_windows: int
    checkpoint_dir: Path
    best_state: dict = field(repr=False)  # EMA weights of the best validation
    windows_per_s: float = float("nan")  # training windows per second, validation excluded


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to `min_lr_ratio` at `max_steps`."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = min(
        1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    )
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )


def adamw(parameters: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW at `config`'s learning rate and weight decay, fused where torch has the kernel.

    The fused kernel (CPU and CUDA) updates every parameter in one pass; torch's default on CPU
    loops over the tensors with a dozen small ops each: 6.8 against 1.1 ms a step for the demo
    model's 63 tensors on 2 quiet cores (28 against 3 ms beside another job), about 5 % of a
    demo training step (docs/performance.md).
    """
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.AdamW(
        parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused
    )


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    train_days: Sequence[DayArrays],
    val_days: Sequence[DayArrays],
    normaliser: Normaliser,
    checkpoint_dir: Path,
    device: torch.device,
    callback: TrainCallback | None = None,
) -> TrainResult:
    """Train (or resume training of) a `DiffusionForecaster`; returns the best EMA weights."""
    run = _Training(
        model_config, config, train_days, val_days, normaliser, checkpoint_dir, device, callback
    )
    run.resume()
    run.loop()
    return run.result()


class _Training:
    """One training run's objects and its three phases: `resume`, `step` (one optimizer step)
    and `validate`, driven by `loop`; `checkpoint` writes what resumes it exactly."""

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        train_days: Sequence[DayArrays],
        val_days: Sequence[DayArrays],
        normaliser: Normaliser,
        checkpoint_dir: Path,
        device: torch.device,
        callback: TrainCallback | None,
    ) -> None:
        self.started = time.perf_counter()
        self.model_config, self.config, self.normaliser = model_config, config, normaliser
        self.checkpoint_dir, self.device = checkpoint_dir, device
        self.callback = callback or SilentCallback()
        self.rank, self.world = _distributed_rank()
        torch.manual_seed(config.seed)
        n_features = len(train_days[0].feature_names)
        self.model = DiffusionForecaster(model_config, n_features=n_features).to(device)
        self.ema = exponential_moving_average(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer = adamw(self.model.parameters(), config)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config)
        )
        self.generator = torch.Generator(device=device).manual_seed(config.seed + self.rank)
        self.train_loader = WindowLoader(
            train_days,
            batch_size=config.batch_size,
            normaliser=normaliser,
            seed=config.seed,
            device=device,
            drop_last=True,
            shard=(self.rank, self.world),
            path_horizons=model_config.path_horizons,
        )
        self.val_loader = WindowLoader(
            val_days,
            batch_size=config.batch_size,
            normaliser=normaliser,
            device=device,
            path_horizons=model_config.path_horizons,
        )
        self.val_anchors = fixed_subset(self.val_loader, config.val_windows, config.seed)
        self.sampler = SamplerConfig(steps=config.val_steps, n_samples=config.val_samples)
        if len(self.train_loader) == 0:
            raise ValueError(
                f"no full training batch: {len(self.train_loader.anchors)} training anchors "
                f"for batch size {config.batch_size}"
            )
        self.state = _State()
        self.resumed_from = 0
        self.network: torch.nn.Module = self.model
        self.autocast = _autocast(config, device)
        self.training_s = 0.0

    def resume(self) -> None:
        """Load `latest.pt` if there is one (a half-written one is discarded first), wrap the
        model for compile/DDP, and restore the random state last: nothing draws before step 1."""
        if self.rank == 0:
            discard_partial(self.checkpoint_dir)
        _barrier(self.world)  # every rank resumes from the same, complete checkpoint
        saved = load_checkpoint(self.checkpoint_dir)
        if saved is not None:
            self.model.load_state_dict(saved["model"])
            self.ema.load_state_dict(saved["ema"])
            self.optimizer.load_state_dict(saved["optimizer"])
            # checkpoints written before the rename hold the LR schedule under "schedule"
            self.lr_schedule.load_state_dict(saved.get("lr_schedule", saved.get("schedule")))
            self.state = _State(**saved["state"])
            self.state.history = [EvalMetrics(**h) for h in self.state.history]
            self.callback.on_message(
                f"resumed from step {self.state.step} (epoch {self.state.epoch})"
            )
        self.resumed_from = self.state.step
        self.network = _wrap(self.model, self.config, self.device, self.world)
        if saved is not None and not _restore_random(saved, self.rank, self.generator):
            self.callback.on_message(
                f"{self.checkpoint_dir / LATEST} holds no random state for rank {self.rank} on "
                f"{self.device.type}: the resumed run is not bit-exact"
            )

    def loop(self) -> None:
        """Steps until `max_steps` or early stopping; validation every `eval_every` steps,
        checkpoints every `checkpoint_every` and on exit (also when interrupted)."""
        config, state = self.config, self.state
        batches = self.train_loader.iterate(state.epoch, state.batch_in_epoch)
        clock = loop_start = time.perf_counter()
        eval_s = 0.0
        settled = True  # between two steps: a checkpoint written now resumes exactly
        try:
            while state.step < config.max_steps and not state.stopped_early:
                settled = False
                batches, loss, grad_norm = self.step(batches)
                if state.step % config.log_every == 0 and self.rank == 0:
                    elapsed, clock = time.perf_counter() - clock, time.perf_counter()
                    windows = config.log_every * config.grad_accumulation * config.batch_size
                    lr = self.lr_schedule.get_last_lr()[0]
                    self.callback.on_step(
                        StepMetrics(state.step, loss, lr, grad_norm, windows / elapsed)
                    )
                if state.step % config.eval_every == 0 or state.step == config.max_steps:
                    eval_start = time.perf_counter()
                    self.validate()
                    clock = time.perf_counter()  # keep validation out of the training rate
                    eval_s += clock - eval_start
                if state.step % config.checkpoint_every == 0:
                    self.checkpoint()
                settled = True
        except BaseException:
            # An interrupted run resumes from here, unless it stopped mid-step (half an
            # optimizer step, a validation without its result): then from the last periodic
            # checkpoint. The other ranks may never get here: rank 0 saves its random state only.
            if settled:
                self.checkpoint(every_rank=False)
            raise
        self.checkpoint()  # on exit too
        self.training_s = time.perf_counter() - loop_start - eval_s

    def step(self, batches: Iterator) -> tuple[Iterator, float, float]:
        """One optimizer step over `grad_accumulation` batches; the (possibly new) batch
        iterator, the mean loss and the gradient norm before clipping."""
        config, state = self.config, self.state
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(config.grad_accumulation):
            batch = next(batches, None)
            if batch is None:  # 1. epochs roll over; the order depends on (seed, epoch)
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                batches = self.train_loader.iterate(state.epoch)
                batch = next(batches)
            state.batch_in_epoch += 1
            # 2. dequantised, standardised target; K noise levels per encoded window
            z = self.model_target(batch)
            grid = grid_in_target_units(batch.close, batch.sigma, self.model_config)
            with self.autocast:
                loss = self.network(batch.x, z, config.k_noise, self.generator, grid)
            (loss / config.grad_accumulation).backward()
            loss_sum += loss.item() / config.grad_accumulation
        # 3. clip, step, LR schedule, EMA
        params = self.model.parameters()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip).item()
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.update_parameters(self.model)
        state.step += 1
        return batches, loss_sum, grad_norm

    def model_target(self, batch: Batch) -> torch.Tensor:
        """The diffused target of a batch, dequantised if configured: z `[B]` of the 30 s
        return, or `[B, H]` of the path (`to_path_target`) for a path model."""
        dequantised = self.config.dequantise
        if self.model_config.path_horizons:
            paths = batch.path
            if dequantised:
                paths = dequantise_paths(paths, batch.close, generator=self.generator)
            return to_path_target(paths, batch.sigma, self.model_config)
        target = (
            dequantise(batch.target, batch.close, generator=self.generator)
            if dequantised
            else batch.target
        )
        return to_model_target(target, batch.sigma, self.model_config)

    def validate(self) -> None:
        """Score the EMA model on the fixed validation anchors. It ships (`best.pt`) unless it is
        worse than the lowest-scoring validation so far by more than `select_within_se` paired
        standard errors; a validation worse by more than that counts towards early stopping."""
        config, state, model = self.config, self.state, self.ema.module
        score = validate(model, self.val_loader, self.val_anchors, self.sampler, seed=config.seed)
        if score.crps_bp < state.lowest_crps:
            state.lowest_crps, state.lowest_step = score.crps_bp, state.step
            state.lowest_scores = score.per_window.tolist()
        if within_noise(score.per_window, state.lowest_scores, config.select_within_se):
            state.best_crps, state.best_step, state.evals_since_best = score.crps_bp, state.step, 0
            if self.rank == 0:
                checkpoint = {"ema_model": model.state_dict(), "step": state.step}
                save_checkpoint(checkpoint, self.checkpoint_dir, BEST)
        else:
            state.evals_since_best += 1
            state.stopped_early = state.evals_since_best >= config.patience
        metrics = EvalMetrics(
            state.step, score.crps_bp, score.coverage_90, state.best_crps, score.median_below
        )
        state.history.append(metrics)
        if self.rank == 0:
            self.callback.on_eval(metrics)
            if state.stopped_early:
                self.callback.on_message(
                    f"early stop at step {state.step}: val CRPS {config.patience} times worse "
                    f"than step {state.lowest_step}'s {state.lowest_crps:.3f} bp; shipping step "
                    f"{state.best_step} ({state.best_crps:.3f} bp)"
                )

    def checkpoint(self, every_rank: bool = True) -> None:
        """Rank 0 writes `latest.pt`; with `every_rank` all ranks call this and send it their
        random states (otherwise it holds rank 0's only)."""
        random = {self.rank: random_state(self.generator)}
        if self.world > 1 and every_rank:
            gathered = [None] * self.world if self.rank == 0 else None
            torch.distributed.gather_object(random[self.rank], gathered, dst=0)
            random = dict(enumerate(gathered)) if self.rank == 0 else random
        if self.rank != 0:
            return
        save_checkpoint(
            {
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.lr_schedule.state_dict(),
                "random": random,
                "state": self.state.to_dict(),
                "model_config": dataclasses.asdict(self.model_config),
                "train_config": dataclasses.asdict(self.config),
                "normaliser": self.normaliser.to_dict(),
            },
            self.checkpoint_dir,
        )

    def result(self) -> TrainResult:
        """The run's summary and the best validated EMA weights (read back from `best.pt`)."""
        config, state = self.config, self.state
        trained = (state.step - self.resumed_from) * config.grad_accumulation * config.batch_size
        trained *= self.world
        _barrier(self.world)  # rank 0 writes the checkpoints; the others read them after this
        best = load_checkpoint(self.checkpoint_dir, BEST)
        if not state.history or best is None:
            raise RuntimeError(
                "training ended without a validation; raise max_steps or lower eval_every"
            )
        return TrainResult(
            steps=state.step,
            best_step=state.best_step,
            best_val_crps_bp=state.best_crps,
            first_val_crps_bp=state.history[0].val_crps_bp,
            history=tuple(state.history),
            stopped_early=state.stopped_early,
            resumed_from=self.resumed_from,
            wall_s=time.perf_counter() - self.started,
            device=str(self.device),
            train_windows=len(self.train_loader.anchors),
            val_windows=len(self.val_anchors),
            checkpoint_dir=self.checkpoint_dir,
            best_state=best["ema_model"],
            windows_per_s=trained / self.training_s if self.training_s > 0 else float("nan"),
        )


def _restore_random(saved: dict, rank: int, generator: torch.Generator) -> bool:
    """This rank's random state from `saved`; False when it has none for this rank and device
    (written before it held one, on an error under DDP, or on another device)."""
    mine = saved.get("random", {}).get(rank)
    if mine is not None:
        return set_random_state(mine, generator)
    if "generator" in saved and rank == 0:  # older checkpoints: the training generator only
        generator.set_state(saved["generator"])
    return False


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_crps: float = math.inf  # the shipped (`best.pt`) checkpoint's mean val CRPS
    best_step: int = 0
    lowest_crps: float = math.inf  # the lowest mean val CRPS so far, the reference of the margin
    lowest_step: int = 0
    lowest_scores: list = field(default_factory=list)  # its per-window val CRPS, bp
    evals_since_best: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["history"] = [dataclasses.asdict(h) for h in self.history]
        return data


class _Objective(torch.nn.Module):
    """The training loss as `forward`, so that DDP and `torch.compile` see the whole step."""

    def __init__(self, model: DiffusionForecaster) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, z: torch.Tensor, k: int, generator, grid: torch.Tensor
    ) -> torch.Tensor:
        return self.model.loss(x, z, k, generator, grid)


def _wrap(model: DiffusionForecaster, config: TrainConfig, device: torch.device, world: int):
    network: torch.nn.Module = _Objective(model)
    if config.compile:
        network = torch.compile(network)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        network = torch.nn.parallel.DistributedDataParallel(network, device_ids=ids)
    return network


def _autocast(config: TrainConfig, device: torch.device):
    enabled = device.type == "cuda" and config.amp in ("auto", "bf16")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _distributed_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1

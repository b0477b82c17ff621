"""The model experiments' design space: options over a profile, one trial's configs, ablations.

`OPTIONS` lists what the study varies (issue: sequence length, model size, diffusion timesteps
and sampler steps, ε vs v, loss weighting, noise levels per window, encoder, learning rate and
steps, the residual parameterisation and transform, dropout, the EMA warm-up, conditioning on
the price grid, the head's loss, its weight, and whether the diffusion loss trains the shared
encoder); an ablation tries each value that is not the profile's own. The runners are
`dagster_project.study` (Optuna, one MLflow run per trial) and `benchmarks/ablation.py` (plain
loop, JSON; for a GPU machine without the orchestration stack).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffstock_ml import side_by_side
from diffstock_ml.baselines import BASELINES, Baseline, Oracle
from diffstock_ml.config import WindowConfig
from diffstock_ml.experiments import ScoreConfig, Scores, run_trial
from diffstock_ml.forecasting import model_rng
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.synthetic import default_latent_root
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile
from diffstock_ml.windows import DayArrays

# What each option tries besides the profile's own value (None in a design = the profile's).
OPTIONS: dict[str, tuple[Any, ...]] = {  # most telling first: a time-boxed ablation runs in order
    "parameterisation": ("residual", "direct"),
    "head_family": ("gaussian", "student_t"),
    "residual_transform": ("standardise", "gaussianise"),
    "dropout": (0.0, 0.1),  # the encoder's and the denoiser's
    "ema_warmup": (True, False),
    "grid_condition": (False, True),
    "k_noise": (1, 4, 16),
    "max_steps": (1_000, 2_000),
    "width": (2,),
    "prediction": ("v", "eps"),
    "loss_weighting": ("uniform", "min_snr"),
    "encoder": ("transformer", "cnn_lstm"),
    "context_s": (60, 120, 300),  # the last seconds of the window; see `options_for`
    "lr": (3e-4, 1e-3, 3e-3),
    "T": (1000, 250),
    "sampler_steps": (5, 10, 20),
    "head_loss": ("nll", "crps"),
    "head_loss_weight": (1.0, 4.0),
    "denoiser_trains_encoder": (True, False),
}
# Samplers a trained model can be re-scored under without retraining (`score_samplers`): the
# default ODE solver at other step counts, and stochastic (ancestral) samplers, which correct
# the denoiser's errors along the way instead of integrating them.
SAMPLERS: dict[str, SamplerConfig] = {
    "angle_2m_5": SamplerConfig(),
    "angle_2m_10": SamplerConfig(steps=10),
    "dpmpp_2m_10": SamplerConfig(sampler="dpmpp_2m", steps=10),
    "dpmpp_2m_20": SamplerConfig(sampler="dpmpp_2m", steps=20),
    "sde_dpmpp_2m_10": SamplerConfig(sampler="sde_dpmpp_2m", steps=10),
    "sde_dpmpp_2m_15": SamplerConfig(sampler="sde_dpmpp_2m", steps=15),
    "sde_dpmpp_2m_20": SamplerConfig(sampler="sde_dpmpp_2m", steps=20),
    "ddim_50": SamplerConfig(sampler="ddim", steps=50),
    "ddim_50_eta1": SamplerConfig(sampler="ddim", steps=50, eta=1.0),
    "ddpm_100": SamplerConfig(sampler="ddpm", steps=100),
    "ddpm_1000": SamplerConfig(sampler="ddpm", steps=1000),
}
MODEL_FIELDS = (
    "parameterisation",
    "head_family",
    "residual_transform",
    "dropout",
    "prediction",
    "loss_weighting",
    "encoder",
    "context_s",
    "T",
    "grid_condition",
    "head_loss",
    "head_loss_weight",
    "denoiser_trains_encoder",
)
TRAIN_FIELDS = ("ema_warmup", "k_noise", "lr", "max_steps")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One configuration: the option values and the configs they make."""

    options: dict[str, Any]
    model: ModelConfig
    train: TrainConfig
    sampler: SamplerConfig


def make_trial(profile: Profile, options: Mapping[str, Any]) -> Trial:
    """The profile's configuration with `options` applied (None keeps the profile's value)."""
    chosen = {k: v for k, v in options.items() if v is not None}
    fields = {k: v for k, v in chosen.items() if k in MODEL_FIELDS}
    if fields.get("parameterisation") == "direct":  # no head: nothing to Gaussianise
        fields.setdefault("residual_transform", "standardise")
    model = dataclasses.replace(profile.model, **fields)
    if "width" in chosen:  # the encoder and the denoiser `width` times wider
        w = chosen["width"]
        model = dataclasses.replace(
            model, d_model=w * model.d_model, denoiser_hidden=w * model.denoiser_hidden
        )
    train = dataclasses.replace(
        profile.train, **{k: v for k, v in chosen.items() if k in TRAIN_FIELDS}
    )
    steps = chosen.get("sampler_steps", SamplerConfig().steps)  # the bundle's sampler
    train = dataclasses.replace(train, val_steps=steps)
    return Trial(dict(options), model, train, SamplerConfig(steps=steps))


def profile_value(profile: Profile, name: str) -> Any:
    """The profile's own value of option `name` (None for `context_s`/`width`: all, 1x)."""
    if name in MODEL_FIELDS:
        return getattr(profile.model, name)
    if name in TRAIN_FIELDS:
        return getattr(profile.train, name)
    if name == "sampler_steps":
        return SamplerConfig().steps
    return None


def options_for(window_length: int) -> dict[str, tuple[Any, ...]]:
    """`OPTIONS` for windows of `window_length` seconds: a model can only read a shorter
    context than the window (`context_s`, the last seconds of it); the whole window is the
    profile's own value. Sequence lengths N = 60/120/300 thus need windows of 300 s."""
    shorter = tuple(c for c in OPTIONS["context_s"] if c < window_length)
    return {**OPTIONS, "context_s": shorter}


def ablation(profile: Profile, window_length: int = WindowConfig().length) -> list[dict[str, Any]]:
    """The profile itself, then each other value of each option, one change at a time
    (`options_for(window_length)`)."""
    base = dict.fromkeys(OPTIONS)
    designs = [base]
    for name, values in options_for(window_length).items():
        own = profile_value(profile, name)
        designs += [{**base, name: value} for value in values if value != own]
    return designs


def reference_models(
    profile: Profile,
    train_days: Sequence[DayArrays],
    raw: Path,
    device: torch.device,
    seed: int = 0,
) -> dict[str, Baseline]:
    """EWMA, both heads (the profile's encoder and training budget) and, if present, the oracle,
    each fitted from its own random stream under `seed`, side by side where the machine allows
    (`side_by_side`, as the `forecasts` asset fits them)."""
    heads = profile.train  # the diffusion model's own budget: a fair fight
    models: dict[str, Baseline] = {"ewma_gaussian": BASELINES["ewma_gaussian"]()}
    for name in ("gaussian_head", "student_t_head"):
        models[name] = BASELINES[name](
            model_config=profile.model, train_config=heads, device=device
        )
    latent = default_latent_root(raw)
    if (latent / "params.json").exists():
        models["oracle"] = Oracle(latent)

    def fit(name: str, model: Baseline) -> None:
        model.fit(train_days, model_rng(name, seed))

    heads_first = {name: models[name] for name in sorted(models, key=lambda n: "head" not in n)}
    plan = side_by_side.plan(len(models), device, bytes_per_job=sum(d.nbytes for d in train_days))
    fitted = side_by_side.fit_side_by_side(heads_first, fit, plan)
    return {name: fitted[name].model for name in models}


def relative_scores(scores: Scores, references: Mapping[str, Scores]) -> dict[str, float]:
    """Skill vs the best head and (with an oracle) the share of the EWMA -> oracle gap closed."""
    heads = [references[h].crps_bp for h in ("gaussian_head", "student_t_head")]
    out = {"skill_vs_best_head": 1 - scores.crps_bp / min(heads)}
    if "oracle" in references:
        ewma, oracle = references["ewma_gaussian"].crps_bp, references["oracle"].crps_bp
        out["gap_closed"] = (ewma - scores.crps_bp) / (ewma - oracle)
    return out


def changed_options(design: Mapping[str, Any]) -> list[str]:
    """`name=value` of each option a design sets (None: the profile's value)."""
    return [f"{k}={v}" for k, v in design.items() if v is not None]


def markdown_table(rows: Sequence[Mapping[str, Any]], references: Mapping[str, Scores]) -> str:
    """Trials (best CRPS first) and the reference models, as a markdown table."""
    lines = [
        "| trial | changed | CRPS bp | skill vs best head | gap closed | cov 90 | below median |"
        " spread factor | train w/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: r["crps_bp"]):
        lines.append(
            f"| {row['trial']} | {', '.join(changed_options(row['options'])) or 'profile'} | "
            f"{row['crps_bp']:.3f} | {100 * row['skill_vs_best_head']:+.2f} % | "
            f"{100 * row.get('gap_closed', np.nan):.0f} % | {row['coverage_90']:.3f} | "
            f"{row['median_below']:.3f} | {row['spread_factor']:.2f} | "
            f"{row['train_windows_per_s']:.0f} |"
        )
    for name, scores in references.items():
        lines.append(
            f"| ref | {name} | {scores.crps_bp:.3f} | | | {scores.coverage['90']:.3f} | "
            f"{scores.median_below:.3f} | | |"
        )
    return "\n".join(lines)


def own_head(bundle: ModelBundle) -> ModelBundle:
    """The bundle's model with its denoiser's output layer zeroed: v = 0, the exact denoiser of
    an N(0, 1) residual, so it samples the model's own location-scale head (with a gaussianised
    Student-t residual, that t; otherwise a Gaussian of its loc and scale). Scoring it beside the
    model measures what the trained denoiser adds (docs/experiments.md). A copy: `bundle` is
    left as it was."""
    model = copy.deepcopy(bundle.model)
    with torch.no_grad():
        model.denoiser.output.weight.zero_()
        model.denoiser.output.bias.zero_()
    return dataclasses.replace(bundle, model=model, spread_factor=None)


def run_design(
    profile: Profile,
    design: Mapping[str, Any],
    train_days: Sequence[DayArrays],
    val_days: Sequence[DayArrays],
    references: Mapping[str, Scores],
    checkpoint_root: Path,
    device: torch.device,
    score: ScoreConfig,
) -> tuple[Trial, dict[str, float], ModelBundle]:
    """Train and score one design on the validation days; its configs, flat metrics, model
    (checkpoints under `checkpoint_root`, a folder per settings: `run_trial`)."""
    trial = make_trial(profile, design)
    result = run_trial(
        trial.model,
        trial.train,
        train_days,
        val_days,
        checkpoint_root,
        device,
        score,
        trial.sampler,
    )
    metrics = result.metrics() | relative_scores(result.scores, references)
    return trial, metrics, result.bundle

"""Frozen configuration of the conditional diffusion model and of its samplers."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from diffstock_ml.market import HORIZON_S, TICK


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, noise schedule and training objective of `DiffusionForecaster`."""

    # Condition encoder over the `[B, N, F]` window: DESIGN §7 options A and B.
    encoder: Literal["transformer", "cnn_lstm"] = "transformer"
    d_model: int = 128  # width of the encoder and of the condition vector
    n_heads: int = 4  # transformer only
    n_layers: int = 3  # transformer layers, or conv layers before the LSTM
    dropout: float = 0.1
    # Transformer positions count seconds before the anchor (0 = the anchor itself).
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    # Seconds of the window the encoder reads, counted back from the anchor (None: all of it);
    # lets one set of windows serve experiments on shorter histories (N = 60 from N = 120).
    context_s: int | None = None
    max_len: int = 512  # longest window (in tokens) a learned positional table covers
    patch_size: int = 1  # transformer only: seconds per token (10 -> a 120 s window is 12 tokens)
    conv_kernel: int = 5  # cnn_lstm only: causal kernel of each Conv1d
    lstm_layers: int = 1  # cnn_lstm only
    # MLP denoiser of the scalar target: width, number of FiLM residual blocks, time embedding.
    denoiser_hidden: int = 256
    denoiser_depth: int = 4
    time_embed_dim: int = 128
    # Noise schedule and number of training diffusion steps.
    schedule: Literal["cosine", "linear"] = "cosine"
    T: int = 1000
    # What the denoiser predicts: v = sqrt(ᾱ)·ε − sqrt(1−ᾱ)·x0 (Salimans & Ho 2022) or ε.
    prediction: Literal["v", "eps"] = "v"
    # Weight of each timestep's loss: "uniform" (Ho et al.), or min-SNR-γ (Hang et al. 2023:
    # min(SNR, γ) / (SNR + 1) for v-prediction, min(SNR, γ) / SNR for ε).
    loss_weighting: Literal["uniform", "min_snr"] = "uniform"
    min_snr_gamma: float = 5.0
    # "residual" (seed appendix A.3): a Gaussian location-scale head on the condition, trained
    # jointly by likelihood, and the diffusion of the standardised residual (z − loc) / scale, so
    # the denoiser learns only the shape around a learned centre and width; "direct" diffuses z.
    parameterisation: Literal["residual", "direct"] = "residual"
    # The residual's location-scale head: a Gaussian (loc, scale), or a Student-t (loc, scale,
    # df per window: a robust centre and a width fitted to the bulk, not pulled by the tails,
    # whose standardised residual is t-shaped for the diffusion to refine).
    head_family: Literal["gaussian", "student_t"] = "gaussian"
    # What the denoiser diffuses of the residual r = (z − loc) / scale: r itself ("standardise"),
    # or Φ⁻¹(F(r)) under the head's own distribution ("gaussianise": with a Student-t head the
    # t-shaped residual becomes exactly N(0, 1) where the head is right, so a denoiser that has
    # learnt nothing (v = 0) samples the head itself and what it learns corrects the head's shape;
    # a Gaussian head's residual is already its own Gaussianisation).
    residual_transform: Literal["standardise", "gaussianise"] = "standardise"
    head_loss_weight: float = 1.0  # weight of the head's loss beside the diffusion loss
    # Whether the diffusion loss trains the shared encoder too (True), or only the head's loss
    # does and the denoiser reads the encoder's output as it is (False, "residual" only): the
    # model's head is then trained exactly as a standalone likelihood head on the same encoder.
    denoiser_trains_encoder: bool = True
    # How the head is fitted: by its negative log-likelihood, or by its CRPS (the report's score:
    # the Gaussian's in closed form, the Student-t's by the fair estimator over `head_crps_draws`
    # reparameterised draws per window). A proper score either way; under a misspecified family
    # they pick different members, and the CRPS picks the one the report ranks.
    head_loss: Literal["nll", "crps"] = "nll"
    head_crps_draws: int = 8
    # Condition on the price tick in target units, tick / (close · scale): how lumpy the
    # outcome is on the price grid (a $14 stock moves in steps of ~0.5 sigma_30s). The heads on
    # the same encoder get it too.
    grid_condition: bool = False
    # What is diffused: z = ret_30s / sigma_30s, or the return divided by `return_scale`.
    target: Literal["z", "return"] = "z"
    # Fixed divisor of raw returns when target == "return" (a 1e-4 return is invisible otherwise).
    return_scale: float = 1e-3
    # Path target (issue 13). Empty: the scalar 30 s return above. Otherwise the seconds after the
    # anchor (increasing, ending at HORIZON_S) whose cumulative LOG returns log(P_t+h / P_t) are
    # diffused as one vector, each divided by the target scale · sqrt(h / HORIZON_S) so that every
    # dimension is O(1) under a random walk; the location-scale head gives loc and scale per
    # horizon (docs/paths.md, "The model's path target").
    path_horizons: tuple[int, ...] = ()
    # Probability of replacing the condition by the learned null condition in training.
    cfg_dropout: float = 0.1
    # Classifier-free guidance: output = uncond + w·(cond − uncond); w = 1 is plain conditional
    # sampling (DESIGN §7: guidance sharpens the distribution and hurts calibration).
    guidance_weight: float = 1.0

    def __post_init__(self) -> None:
        sizes = ("d_model", "n_heads", "n_layers", "conv_kernel", "lstm_layers", "denoiser_hidden")
        for name in (*sizes, "denoiser_depth", "T", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.context_s is not None and self.context_s < 1:
            raise ValueError(f"context_s must be at least 1 or None, got {self.context_s}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.time_embed_dim < 2 or self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even and >= 2, got {self.time_embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {self.cfg_dropout}")
        if self.residual_transform == "gaussianise" and self.parameterisation != "residual":
            raise ValueError('residual_transform="gaussianise" needs parameterisation="residual"')
        if not self.denoiser_trains_encoder and self.parameterisation != "residual":
            raise ValueError(
                'denoiser_trains_encoder=False needs parameterisation="residual" (a head to '
                "train the encoder)"
            )
        if self.min_snr_gamma <= 0 or self.head_loss_weight <= 0:
            raise ValueError("min_snr_gamma and head_loss_weight must be positive")
        if self.head_crps_draws < 2:
            raise ValueError(f"head_crps_draws must be at least 2, got {self.head_crps_draws}")
        if self.return_scale <= 0:
            raise ValueError(f"return_scale must be positive, got {self.return_scale}")
        # a bundle's or MLflow's JSON gives a list: keep the config hashable and comparable
        object.__setattr__(self, "path_horizons", tuple(int(h) for h in self.path_horizons))
        horizons = self.path_horizons
        if horizons and (
            horizons[0] < 1
            or horizons[-1] != HORIZON_S
            or any(b <= a for a, b in itertools.pairwise(horizons))
        ):
            raise ValueError(
                f"path_horizons must be increasing whole seconds in 1..{HORIZON_S} ending at "
                f"{HORIZON_S}, got {horizons}"
            )

    @property
    def target_dim(self) -> int:
        """Dimensions of the diffused vector: 1 for the scalar target, else one per horizon."""
        return len(self.path_horizons) or 1


Sampler = Literal["ddim", "ddpm", "dpmpp_2m", "sde_dpmpp_2m", "angle_2m"]
SAMPLER_NAMES: tuple[str, ...] = ("ddim", "ddpm", "dpmpp_2m", "sde_dpmpp_2m", "angle_2m")


@dataclass(frozen=True)
class SamplerConfig:
    """How forecasts are drawn from a trained model."""

    # The angle solver (`AngleMultistepScheduler`): second-order multistep in φ = arccos √ᾱ,
    # where dx/dφ = v̂. It is exact at any number of steps for N(0, 1) data, and the model
    # diffuses its head's standardised (or Gaussianised) residual, which is close to that; so
    # 2-10 steps all give the same draws (spread within 0.1 % of each other), where
    # DPM-Solver++(2M) (Lu et al. 2022) shrinks the spread by 14 % at 5 steps and 3 % at 10.
    # 5 steps: 35 ms for one window x 1,000 samples on 2 cores, CRPS +0.30 % ± 0.47 and 90 %
    # coverage −0.27 pp from DDPM-1000
    # (benchmarks/model.py, docs/performance.md). "sde_dpmpp_2m" is DPM-Solver++'s stochastic
    # form (fresh noise each step, as DDPM); it did not help on the demo's test days
    # (docs/experiments.md).
    sampler: Sampler = "angle_2m"
    # Denoising steps (a subsequence of the T training steps). Choose by coverage, not CRPS:
    # deterministic DDIM with few steps under-disperses (DESIGN §7); the angle solver does not
    # for a near-Gaussian target, but keeps a margin for a denoiser that learnt more shape.
    steps: int = 5
    # DDIM stochasticity: 0 = deterministic ODE, 1 = DDPM-like posterior noise.
    eta: float = 0.0
    timestep_spacing: Literal["trailing", "leading", "linspace"] = "trailing"
    n_samples: int = 200
    # Snap sampled returns to the price grid (a zero move is a common outcome at 30 s).
    snap_to_tick: bool = True
    tick: float = TICK
    # Matmuls of the encoder and denoiser in bfloat16 (autocast; the sampler's arithmetic stays
    # float32): ~1.4x faster on a CPU with AVX512-BF16, for a CRPS change of -0.02 % and none in
    # coverage (benchmarks/model.py). "auto" = bfloat16 where the device has it in hardware
    # (AVX512-BF16/AMX CPUs, Ampere+ GPUs), float32 elsewhere.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLER_NAMES:
            raise ValueError(
                f"sampler must be one of {', '.join(SAMPLER_NAMES)}, got {self.sampler!r}"
            )
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"precision must be auto, float32 or bfloat16, got {self.precision!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be non-negative, got {self.eta}")
        if self.n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {self.n_samples}")
        if self.tick <= 0:
            raise ValueError(f"tick must be positive, got {self.tick}")

"""From standardised model samples to return forecasts on the price grid, and back for training.

Prices live on a tick grid ($0.01): at 30 s many real moves are exactly zero. Sampled returns
are snapped to the grid by default, `round(P_t·(1 + r) / tick)·tick / P_t − 1`, with the anchor
price P_t itself taken to the nearest tick; the continuous forecast is kept alongside. Training
targets are dequantised (uniform noise within ±½ tick in price space) so that the model learns a
density rather than the grid's spikes.

A path model (`ModelConfig.path_horizons`) diffuses cumulative LOG returns r_h = log(P_t+h / P_t),
each divided by `target_scale · sqrt(h / HORIZON_S)` (`to_path_target`); its draws come back as
`PathForecast`s with the price of every horizon on the grid (`forecast_paths`), and `forecast`
gives its 30 s end point as the scalar model's simple-return `Forecast` (what validation, the
spread factor and `ModelBundle.predict` read). The scalar target stays a simple return:
at h = 30 s the path is log1p(ret_30s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster

F64 = torch.float64


def grid_in_target_units(
    close: torch.Tensor, sigma: torch.Tensor, config: ModelConfig, tick: float = TICK
) -> torch.Tensor:
    """`[B]` the price tick in units of the diffused target: tick / (close · target_scale)."""
    return (tick / (close.to(F64) * target_scale(sigma, config))).float()


def target_scale(sigma: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Per-window return units of the diffused variable: `sigma_30s` for "z", else return_scale."""
    if config.target == "z":
        return sigma.to(F64)
    return torch.full_like(sigma, config.return_scale, dtype=F64)


def to_model_target(ret: torch.Tensor, sigma: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The float32 training target x0 of `DiffusionForecaster.loss`: `ret / target_scale`."""
    return (ret.to(F64) / target_scale(sigma, config)).float()


def snap_to_grid(returns: torch.Tensor, close: torch.Tensor, tick: float) -> torch.Tensor:
    """Returns `[B, S]` moved so that the implied price lies on the tick grid (float64).

    Works in whole ticks: k0 = round(P_t / tick), k1 = round(k0·(1 + r)), r' = k1 / k0 − 1, so
    a move of zero ticks is exactly 0.
    """
    k0 = torch.round(close.to(F64) / tick)[:, None]  # [B, 1] anchor price in ticks
    k1 = torch.round(k0 * (1 + returns.to(F64)))  # [B, S]
    return k1 / k0 - 1


def to_returns(
    z_samples: torch.Tensor,
    sigma: torch.Tensor,
    close: torch.Tensor,
    tick: float = TICK,
    snap: bool = True,
) -> torch.Tensor:
    """Standardised samples `[B, S]` -> float64 returns `[B, S]`, snapped to the grid if `snap`.

    `sigma [B]` is the scale the samples are in units of (`target_scale`), `close [B]` the price
    at the anchor.
    """
    returns = z_samples.to(F64) * sigma.to(F64)[:, None]  # [B, S]
    return snap_to_grid(returns, close, tick) if snap else returns


def dequantise(
    target: torch.Tensor,
    close: torch.Tensor,
    tick: float = TICK,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training returns `[B]` with the future price moved by U(−½, ½) tick (same dtype/device)."""
    source = generator.device if generator is not None else target.device
    u = torch.rand(target.shape, generator=generator, device=source, dtype=F64).to(target.device)
    price_noise = (u - 0.5) * tick  # [B] in price units
    return (target.to(F64) + price_noise / close.to(F64)).to(target.dtype)


@dataclass(frozen=True)
class Forecast:
    """Sampled return forecasts: `samples [B, S]` (snapped if asked) and the continuous ones."""

    samples: torch.Tensor  # [B, S] float64 returns
    continuous: torch.Tensor | None = None  # [B, S] float64 returns before snapping

    def mean(self) -> torch.Tensor:
        """`[B]` sample mean."""
        return self.samples.mean(dim=1)

    def std(self) -> torch.Tensor:
        """`[B]` sample standard deviation."""
        return self.samples.std(dim=1)

    def quantiles(self, levels: Sequence[float]) -> torch.Tensor:
        """`[B, L]` sample quantiles (linear interpolation) at levels in (0, 1), e.g. 0.01–0.99."""
        if any(not 0.0 < level < 1.0 for level in levels):
            raise ValueError(f"quantile levels must lie in (0, 1), got {list(levels)}")
        ordered = self.samples.sort(dim=1).values  # [B, S]
        position = torch.tensor(levels, dtype=F64, device=ordered.device) * (ordered.shape[1] - 1)
        lower, upper = position.floor().long(), position.ceil().long()  # [L]
        weight = position - lower  # [L]
        # lerp is exact where the two order statistics tie; cummax keeps the levels ordered
        # against the last bit of rounding between neighbouring brackets
        return torch.lerp(ordered[:, lower], ordered[:, upper], weight).cummax(dim=1).values

    def var(self, alpha: float) -> torch.Tensor:
        """`[B]` Value at Risk at level `alpha` (0.01, 0.05) as a positive loss: −q_alpha.

        A VaR hit is a realised return below `-forecast.var(alpha)`.
        """
        return -self.quantiles([alpha])[:, 0]


def apply_spread_factor(
    result: Forecast, factor: float, close: torch.Tensor, sampler_config: SamplerConfig
) -> Forecast:
    """`result` with each row's deviations from its median multiplied by `factor`, re-snapped.

    The spread factor of the `forecasts` stage (`Baseline.sample`): centre = the median of a
    window's continuous draws, draws = centre + factor · (draws − centre), then snapped to the
    grid at the anchor prices `close [B]` if the sampler snaps. A factor of 1 changes nothing.
    """
    if factor == 1.0:
        return result
    continuous = result.continuous if result.continuous is not None else result.samples
    spread = _widened(continuous, factor)  # [B, S]
    if not sampler_config.snap_to_tick:
        return Forecast(spread, spread)
    return Forecast(snap_to_grid(spread, close, sampler_config.tick), spread)


def apply_path_spread_factor(
    result: PathForecast, factor: float, close: torch.Tensor, sampler_config: SamplerConfig
) -> PathForecast:
    """`apply_spread_factor` for paths: at every horizon, the deviations of a window's
    continuous draws from their median times `factor`, re-snapped at every horizon (as
    `paths.PathDiffusion` scores them). A factor of 1 changes nothing."""
    if factor == 1.0:
        return result
    spread = _widened(result.continuous, factor)  # [B, S, H]
    if not sampler_config.snap_to_tick:
        return PathForecast(spread, spread, result.horizons)
    snapped = snap_path_returns(spread, close, sampler_config.tick)
    return PathForecast(snapped, spread, result.horizons)


def _widened(draws: torch.Tensor, factor: float) -> torch.Tensor:
    """`draws [B, S, ...]` with each deviation from its window's median over the S draws (as
    numpy's median) multiplied by `factor`."""
    center = draws.quantile(0.5, dim=1, keepdim=True)
    return center + factor * (draws - center)


def forecast(
    model: DiffusionForecaster,
    x: torch.Tensor,
    sigma: torch.Tensor,
    close: torch.Tensor,
    sampler_config: SamplerConfig | None = None,
    generator: torch.Generator | None = None,
) -> Forecast:
    """Sample the model for windows `x [B, N, F]` and express the draws in returns; for a path
    model, the 30 s end point of its paths as a simple return (snapped as the scalar's)."""
    sampler_config = sampler_config or SamplerConfig()
    if model.config.path_horizons:
        paths = forecast_paths(model, x, sigma, close, sampler_config, generator)
        end = torch.expm1(paths.continuous[..., -1])  # [B, S] simple return at HORIZON_S
        if not sampler_config.snap_to_tick:
            return Forecast(end, end)
        return Forecast(snap_to_grid(end, close, sampler_config.tick), end)
    grid = grid_in_target_units(close, sigma, model.config, sampler_config.tick)  # [B]
    z = model.sample(x, sampler_config.n_samples, sampler_config, generator, grid=grid)  # [B, S]
    continuous = to_returns(z, target_scale(sigma, model.config), close, snap=False)
    if not sampler_config.snap_to_tick:
        return Forecast(continuous, continuous)
    return Forecast(snap_to_grid(continuous, close, sampler_config.tick), continuous)


def horizon_scale(config: ModelConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """`[H]` float64 sqrt(h / HORIZON_S) of the path horizons: a random walk's standard deviation
    at h in units of the 30 s one, so every standardised horizon is O(1)."""
    horizons = torch.tensor(config.path_horizons, dtype=F64, device=device)
    return torch.sqrt(horizons / HORIZON_S)


def path_scale(sigma: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """`[B, H]` float64 return units of each horizon: `target_scale` · sqrt(h / HORIZON_S)."""
    return target_scale(sigma, config)[:, None] * horizon_scale(config, sigma.device)[None, :]


def to_path_target(paths: torch.Tensor, sigma: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The float32 training target `[B, H]` of a path model: log-return paths `[B, H]` (the
    loader's `Batch.path`) divided by `path_scale`."""
    return (paths.to(F64) / path_scale(sigma, config)).float()


def dequantise_paths(
    paths: torch.Tensor,
    close: torch.Tensor,
    tick: float = TICK,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Log-return paths `[B, H]` with each future price moved by its own U(−½, ½) tick, the
    path form of `dequantise`: r' = log(exp(r) + u·tick / P_t) (same dtype/device)."""
    source = generator.device if generator is not None else paths.device
    u = torch.rand(paths.shape, generator=generator, device=source, dtype=F64).to(paths.device)
    price_noise = (u - 0.5) * tick / close.to(F64)[:, None]  # [B, H] in units of P_t
    return torch.log(torch.exp(paths.to(F64)) + price_noise).to(paths.dtype)


def snap_path_returns(paths: torch.Tensor, close: torch.Tensor, tick: float) -> torch.Tensor:
    """Log-return paths `[B, S, H]` with the price `P_t·exp(r)` on the grid at every horizon:
    `snap_to_grid` of the simple returns (as `paths.baselines.snap_paths`), float64."""
    b, s, h = paths.shape
    simple = snap_to_grid(torch.expm1(paths.to(F64)).reshape(b, s * h), close, tick)
    return torch.log1p(simple).reshape(b, s, h)


@dataclass(frozen=True)
class PathForecast:
    """Sampled paths: cumulative log returns `[B, S, H]` at `horizons`, snapped if asked."""

    samples: torch.Tensor  # [B, S, H] float64, price on the grid at every horizon
    continuous: torch.Tensor  # [B, S, H] float64 before snapping
    horizons: tuple[int, ...]


def forecast_paths(
    model: DiffusionForecaster,
    x: torch.Tensor,
    sigma: torch.Tensor,
    close: torch.Tensor,
    sampler_config: SamplerConfig | None = None,
    generator: torch.Generator | None = None,
) -> PathForecast:
    """Sample a path model for windows `x [B, N, F]`: paths in log returns, snapped at every
    horizon when the sampler snaps."""
    sampler_config = sampler_config or SamplerConfig()
    grid = grid_in_target_units(close, sigma, model.config, sampler_config.tick)  # [B]
    z = model.sample_paths(x, sampler_config.n_samples, sampler_config, generator, grid=grid)
    continuous = z.to(F64) * path_scale(sigma, model.config)[:, None, :]  # [B, S, H]
    horizons = model.config.path_horizons
    if not sampler_config.snap_to_tick:
        return PathForecast(continuous, continuous, horizons)
    snapped = snap_path_returns(continuous, close, sampler_config.tick)
    return PathForecast(snapped, continuous, horizons)

"""The baseline contract, the one spread factor every baseline gets, and the registry.

A baseline is fitted on training days and then draws, for given anchors `(symbol, second)` of a
day, `samples [B, S]` of the 30 s return snapped to the price grid, exactly as the diffusion
model's forecasts are, so that every metric is computed the same way for all models.

Every baseline draws a centre and deviations around it (`Draws`); the deviations are multiplied
by one spread factor fitted on training days, then the sum is snapped to the grid. The factor is
chosen by coverage: the value on a fine log grid whose central 90 % interval of snapped samples
covers the share of training targets closest to 90 % (`fit_spread_scale`), coverage counted by
the randomised PIT exactly as the report counts it. Coverage, not CRPS,
because a √30 x 1 s volatility over-covers badly on low-priced stocks (1 s returns carry
tick-rounding noise), and the design picks sampler settings by coverage too.

The universe may change from day to day: a day's arrays hold that day's symbols only, and a
baseline never assumes a symbol of one day exists on another (GARCH pools parameters for a
symbol without its own fit). A return that touches a stale second (a halt) is missing data for
every baseline's estimates, never a zero (`spans_stale`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, TypeVar

import numpy as np
import torch

from diffstock_ml.evaluation.calibration import central_coverage, interval_coverage
from diffstock_ml.market import TICK
from diffstock_ml.model.forecast import snap_to_grid
from diffstock_ml.windows import DayArrays

STALE_FEATURE = "is_stale"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ScaleFit:
    """How the spread factor of a baseline is fitted on the training days."""

    level: float = 0.9  # central interval whose training coverage the factor matches
    max_anchors: int = 20_000  # training anchors drawn (uniformly over all training days)
    n_samples: int = 200  # samples per training anchor
    low: float = 0.2  # the factor is searched on a log grid over [low, high]
    high: float = 5.0
    points: int = 401

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        if self.max_anchors < 1 or self.n_samples < 2 or self.points < 2:
            raise ValueError("max_anchors must be >= 1, n_samples >= 2 and points >= 2")
        if not 0.0 < self.low < self.high:
            raise ValueError(f"need 0 < low < high, got {self.low}, {self.high}")

    def grid(self) -> np.ndarray:
        return np.geomspace(self.low, self.high, self.points)


class Draws(NamedTuple):
    """Continuous return draws: `center + factor · deviations` before snapping to the grid."""

    center: np.ndarray  # [B] float64 returns
    deviations: np.ndarray  # [B, S] float64 returns around the centre


def snap_returns(returns: np.ndarray, close: np.ndarray, tick: float = TICK) -> np.ndarray:
    """`returns [B, S]` snapped to the grid at anchor prices `close [B]` (float64), with the
    model's own `snap_to_grid`, so baselines and the model are snapped identically."""
    snapped = snap_to_grid(
        torch.from_numpy(np.asarray(returns, dtype=np.float64)),
        torch.from_numpy(np.asarray(close, dtype=np.float64)),
        tick,
    )
    return snapped.numpy()


def at_anchors(values: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """`values [S, T]` at `anchors [B, 2]` (symbol, second) as float64 `[B]`."""
    return np.asarray(values[anchors[:, 0], anchors[:, 1]], dtype=np.float64)


def stale_seconds(day: DayArrays) -> np.ndarray:
    """`[S, T]` bool: seconds whose last trade is older than the ingest's gap (`is_stale`: a
    halt, a symbol not trading yet or suspended all day). All False for features without it."""
    if STALE_FEATURE not in day.feature_names:
        return np.zeros(np.shape(day.close), dtype=bool)
    return np.asarray(day.x[:, :, day.feature_names.index(STALE_FEATURE)]) > 0.5


def spans_stale(day: DayArrays, horizon_s: int) -> np.ndarray:
    """`[S, T]` bool: the `horizon_s` return ending at t touches a stale second (t − h .. t).

    A stale second's close is carried forward, not a price seen: the zero returns inside a halt
    and the jump across it are not `horizon_s` returns, so volatility estimates leave them out
    (missing, as before a symbol's first trade) instead of reading a halt as a calm market.
    """
    stale = np.cumsum(stale_seconds(day), axis=1)  # stale seconds in [0, t]
    before = np.zeros_like(stale)
    before[:, horizon_s + 1 :] = stale[:, : -horizon_s - 1]  # ... in [0, t − h − 1]
    return stale > before


def mean_coverage(
    samples: np.ndarray,
    target: np.ndarray,
    close: np.ndarray,
    level: float = 0.9,
    tick: float = TICK,
) -> float:
    """Mean coverage of the central `level` interval of snapped `samples [B, S]` at `target [B]`
    (randomised PIT, `evaluation.interval_coverage`: the report's definition). The target is
    snapped with the samples' arithmetic first."""
    y = snap_returns(target[:, None], close, tick)[:, 0]
    return float(interval_coverage(samples, y, close, level, tick).mean())


def fit_spread_scale(
    draws: Draws,
    close: np.ndarray,
    target: np.ndarray,
    config: ScaleFit | None = None,
    tick: float = TICK,
) -> float:
    """The factor on `config.grid()` whose coverage (`mean_coverage`) is nearest `level`.

    Exact and fast: for a factor c > 0 a snapped sample snap(center + c·d) lies below the
    realised k_y ticks iff k0·(1 + center + c·d) < k_y − ½, i.e. iff d < e_low / c, and below or
    tied iff d < e_high / c (k0: the anchor price in ticks). With each row of d sorted, the
    randomised-PIT counts of every factor are two batched binary searches.
    """
    config = config or ScaleFit()
    d = torch.from_numpy(np.sort(np.asarray(draws.deviations, dtype=np.float64), axis=1))
    n = d.shape[1]
    k0 = np.round(np.asarray(close, dtype=np.float64) / tick)  # [B] anchor price in ticks
    y = snap_returns(target[:, None], close, tick)[:, 0]  # [B]
    k_y = np.round(k0 * (1 + y))  # [B] realised price in ticks
    center = np.asarray(draws.center, dtype=np.float64)
    edges = [torch.from_numpy((k_y + h) / k0 - 1 - center)[:, None] for h in (-0.5, 0.5)]
    factors = config.grid()  # [G]
    coverage = np.empty(len(factors))
    for start in range(0, len(factors), 32):  # [B, 32] at a time
        c = torch.from_numpy(factors[start : start + 32])[None, :]
        below, below_or_tied = (torch.searchsorted(d, e / c).numpy() for e in edges)
        lower, upper = below / (n + 1), (below_or_tied + 1) / (n + 1)
        coverage[start : start + 32] = central_coverage(lower, upper, config.level).mean(axis=0)
    return float(factors[np.argmin(np.abs(coverage - config.level))])


def training_anchors(
    train_days: Sequence[DayArrays], max_anchors: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Per training day, a uniform subsample of its anchors (at most `max_anchors` in all)."""
    counts = np.array([len(day.anchors) for day in train_days])
    if counts.sum() == 0:
        raise ValueError("the training days have no valid anchors to fit a baseline on")
    chosen = np.sort(rng.choice(counts.sum(), min(max_anchors, counts.sum()), replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    return [
        day.anchors[chosen[(chosen >= lo) & (chosen < hi)] - lo]
        for day, lo, hi in zip(train_days, starts[:-1], starts[1:], strict=True)
    ]


class Baseline(ABC):
    """A forecast of the 30 s return fitted on training days, drawn at a day's anchors.

    Subclasses implement `draw` (continuous draws, strictly causal: only seconds <= t of the
    same day) and, when they learn something from the training days, `fit_model`. `fit` then
    fits the spread factor `scale`; `sample` applies it and snaps to the grid.
    """

    name: ClassVar[str]

    def __init__(self, scale_fit: ScaleFit | None = None, tick: float = TICK) -> None:
        self.scale_fit = scale_fit or ScaleFit()
        self.tick = tick
        self.scale = 1.0  # the fitted spread factor (1 until `fit`)
        self._cache: dict[str, tuple[DayArrays, object]] = {}

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Fit the baseline's own parameters, then the spread factor, on `train_days` only."""
        self.fit_model(train_days, rng)
        draws, closes, targets = [], [], []
        for day, anchors in zip(
            train_days, training_anchors(train_days, self.scale_fit.max_anchors, rng), strict=True
        ):
            if len(anchors):
                draws.append(self.draw(day, anchors, self.scale_fit.n_samples, rng))
                closes.append(at_anchors(day.close, anchors))
                targets.append(at_anchors(day.target, anchors))
        joined = Draws(
            np.concatenate([d.center for d in draws]), np.concatenate([d.deviations for d in draws])
        )
        close, target = np.concatenate(closes), np.concatenate(targets)
        self.scale = fit_spread_scale(joined, close, target, self.scale_fit, self.tick)

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Learn the baseline's parameters from the training days (nothing by default)."""
        return None

    @abstractmethod
    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        """Continuous draws for `anchors [B, 2]` of `day`, before the spread factor."""

    def sample(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> np.ndarray:
        """`[B, S]` float64 return samples at `anchors [B, 2]` of `day`, snapped to the grid."""
        anchors = np.asarray(anchors)
        draws = self.draw(day, anchors, n_samples, rng)
        returns = draws.center[:, None] + self.scale * draws.deviations
        return snap_returns(returns, at_anchors(day.close, anchors), self.tick)

    def per_day(self, day: DayArrays, compute: Callable[[DayArrays], _T]) -> _T:
        """`compute(day)`, remembered for the last day seen (day arrays are never mutated).

        The cache holds the `DayArrays` object itself, so another day, or a modified copy made
        with `dataclasses.replace`, is always recomputed.
        """
        key = getattr(compute, "__qualname__", repr(compute))
        held = self._cache.get(key)
        if held is None or held[0] is not day:
            held = self._cache[key] = (day, compute(day))
        return held[1]


BASELINES: dict[str, type[Baseline]] = {}
_B = TypeVar("_B", bound=type[Baseline])


def register(cls: _B) -> _B:
    """Class decorator: list a distributional baseline in `BASELINES` under its `name`."""
    if cls.name in BASELINES:
        raise ValueError(f"baseline {cls.name!r} is registered twice")
    BASELINES[cls.name] = cls
    return cls

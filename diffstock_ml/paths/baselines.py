"""Path baselines: sample paths of the next 30 s drawn at a day's anchors.

A path baseline is fitted on training days and draws, for anchors `(symbol, second)` of a day,
`samples [A, S, H]` of cumulative log returns at the seconds `HORIZONS` (1 .. 30) after the
anchor, with the implied price `close · exp(r)` snapped to the $0.01 grid at every second by
the scalar baselines' own `snap_returns`. As a scalar `Baseline`, a path baseline draws a
centre `[A, H]` and deviations `[A, S, H]`; one spread factor multiplies the deviations of
the whole path. It is fitted on the training days exactly as the scalar factor is
(`fit_spread_scale`: 90 % central coverage of the snapped samples by the randomised PIT), on
the path's end point at 30 s against the realised end point.

`fit_spread_scale` snaps with the simple-return arithmetic k0·(1 + x); the end point is passed
to it in log returns, so its grid differs from the paths' k0·exp(x) by k0·x²/2 ticks (0.05 tick
for a 30 bp move of a $100 stock). Samples and target are moved by the same monotone map, so
only ties at a grid point can change, and the chosen factor does not move (see the tests).

- `EwmaRandomWalk`: a Gaussian random walk of 1 s log returns with the volatility of the scalar
  `ewma_gaussian` at the anchor: per-second σ = σ_30 / √30, which is the root EWMA of the
  squared 1 s log returns (half-life 300 s, stale seconds left out), except where the 30 s
  floor `SIGMA_FLOOR` binds. Its end point is exactly `ewma_gaussian`'s forecast.
- `GarchTPaths`: reuses the scalar `garch_t` fit (per-symbol GARCH(1,1)-t on non-overlapping
  30 s returns, pooled parameters for unseen symbols). One step of that recursion spans the
  whole path, so there is no recursion to simulate inside it (an `arch` simulation forecast
  of horizon 1 is one Student-t draw). The path is the Student-t draw spread over the 30 s as
  a Brownian motion with a random variance: σ_30·√V·W(h)/√30 + μ·h/30, V = (ν − 2)/χ²_ν per
  path, W a standard random walk. Its end point is exactly `garch_t`'s forecast, and every
  horizon is Student-t with variance proportional to h. A GARCH on 1 s returns would be
  another model, fitted on tick noise.
- `OraclePaths` (synthetic data only): the generator's own forward simulation from the latent
  state (`simulate_forward`). It returns the end point only, but its random draws do not
  depend on the horizon: with the same seed, horizon h gives the price at second h of the same
  paths. Each horizon is simulated from one seed (30 runs, about 15 times the cost of one 30 s
  run); its factor stays 1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from diffstock_ml.baselines import EwmaGaussian, GarchT, Oracle, ScaleFit
from diffstock_ml.baselines.base import (
    Draws,
    at_anchors,
    fit_spread_scale,
    snap_returns,
    training_anchors,
)
from diffstock_ml.evaluation.scores import BP
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.paths.targets import HORIZONS, realised_paths
from diffstock_ml.synthetic import simulate_forward
from diffstock_ml.windows import DayArrays

FIT_CHUNK = 2_000  # anchors drawn at a time while fitting the factor: bounds [A, S, H] memory
ORACLE_ROWS = 1_000_000  # oracle rows x samples per `simulate_forward` call (one inner chunk)


class PathDraws(NamedTuple):
    """Continuous path draws: `center + factor · deviations` before snapping to the grid."""

    center: np.ndarray  # [A, H] float64 cumulative log returns
    deviations: np.ndarray  # [A, S, H] float64 around the centre

    def end_point(self) -> Draws:
        """The draws at the last horizon (30 s) as a scalar baseline's `Draws`."""
        return Draws(self.center[:, -1], self.deviations[:, :, -1])


def snap_paths(paths: np.ndarray, close: np.ndarray, tick: float = TICK) -> np.ndarray:
    """`[A, S, H]` log-return paths with the price `close · exp(r)` snapped to the grid at every
    second, by `snap_returns` (the anchor price itself taken to the nearest tick)."""
    paths = np.asarray(paths, dtype=np.float64)
    a, s, h = paths.shape
    simple = snap_returns(np.expm1(paths).reshape(a, s * h), close, tick)  # [A, S·H]
    return np.log1p(simple).reshape(a, s, h)


def random_walk(n_paths: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`[A, S, H]` standard Gaussian random walks of `len(HORIZONS)` unit-variance steps."""
    return np.cumsum(rng.standard_normal((*n_paths, len(HORIZONS))), axis=-1)


def finite_at_anchors(
    values: np.ndarray, day: DayArrays, anchors: np.ndarray, what: str
) -> np.ndarray:
    """`values [S, T]` at the anchors, or an error naming the first anchor without a value."""
    out = at_anchors(values, anchors)
    missing = ~np.isfinite(out)
    if missing.any():
        s, t = anchors[np.argmax(missing)]
        raise ValueError(f"no {what} at {day.day} {day.symbols[s]} second {t}")
    return out


class PathBaseline(ABC):
    """A forecast of the next 30 s path fitted on training days, drawn at a day's anchors.

    Subclasses implement `draw_paths` (strictly causal: only seconds <= t of the same day) and,
    when they learn from the training days, `fit_model`. `fit` then fits the spread factor on
    the end point; `sample_paths` applies it to the whole path and snaps to the grid.
    """

    name: ClassVar[str]

    def __init__(self, scale_fit: ScaleFit | None = None, tick: float = TICK) -> None:
        self.scale_fit = scale_fit or ScaleFit()
        self.tick = tick
        self.scale = 1.0  # the fitted spread factor (1 until `fit`)

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Fit the baseline's own parameters, then the spread factor, on `train_days` only."""
        self.fit_model(train_days, rng)
        centers, deviations, closes, targets = [], [], [], []
        chosen = training_anchors(train_days, self.scale_fit.max_anchors, rng)
        for day, anchors in zip(train_days, chosen, strict=True):
            for start in range(0, len(anchors), FIT_CHUNK):
                part = anchors[start : start + FIT_CHUNK]
                end = self.draw_end_points(day, part, self.scale_fit.n_samples, rng)
                centers.append(end.center)
                deviations.append(end.deviations)
                closes.append(at_anchors(day.close, part))
                targets.append(realised_paths(day, part, (HORIZON_S,))[:, 0])
        draws = Draws(np.concatenate(centers), np.concatenate(deviations))
        close, target = np.concatenate(closes), np.concatenate(targets)
        self.scale = fit_spread_scale(draws, close, target, self.scale_fit, self.tick)

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Learn the baseline's parameters from the training days (nothing by default)."""
        return None

    @abstractmethod
    def draw_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> PathDraws:
        """Continuous path draws for `anchors [A, 2]` of `day`, before the spread factor."""

    def draw_end_points(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        """Continuous draws of the end point (30 s) alone, what the spread factor is fitted on:
        the last second of `draw_paths`, unless a baseline draws it directly."""
        return self.draw_paths(day, anchors, n_samples, rng).end_point()

    def sample_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> np.ndarray:
        """`[A, S, H]` float64 cumulative log-return paths at `anchors [A, 2]` of `day`, the
        price of every second on the tick grid."""
        anchors = np.asarray(anchors)
        draws = self.draw_paths(day, anchors, n_samples, rng)
        paths = draws.center[:, None, :] + self.scale * draws.deviations
        return snap_paths(paths, at_anchors(day.close, anchors), self.tick)


class EwmaRandomWalk(PathBaseline):
    """Gaussian random walk of 1 s log returns with `ewma_gaussian`'s volatility / √30."""

    name = "ewma_random_walk"

    def __init__(
        self, halflife_s: float = 300.0, scale_fit: ScaleFit | None = None, tick: float = TICK
    ) -> None:
        super().__init__(scale_fit, tick)
        self.ewma = EwmaGaussian(halflife_s, tick=tick)

    def draw_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> PathDraws:
        sigma_1s = self._sigma_30s(day, anchors) / math.sqrt(HORIZON_S)  # [A]
        walk = random_walk((len(anchors), n_samples), rng)  # [A, S, H]
        return PathDraws(np.zeros((len(anchors), len(HORIZONS))), sigma_1s[:, None, None] * walk)

    def draw_end_points(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        """The walk's 30th second is σ_1s times a sum of 30 unit steps: σ_30·N(0, 1), drawn at
        a thirtieth of the cost (what the factor's 20,000 × 200 training draws took most of)."""
        sigma_30s = self._sigma_30s(day, anchors)  # [A]
        noise = rng.standard_normal((len(sigma_30s), n_samples))  # [A, S]
        return Draws(np.zeros(len(sigma_30s)), sigma_30s[:, None] * noise)

    def _sigma_30s(self, day: DayArrays, anchors: np.ndarray) -> np.ndarray:
        """`[A]` the EWMA volatility of the 30 s return at `anchors`."""
        sigma_30s = self.ewma.per_day(day, self.ewma.volatility_30s)  # [S, T]
        return finite_at_anchors(sigma_30s, day, np.asarray(anchors), "EWMA volatility")


class GarchTPaths(PathBaseline):
    """`garch_t`'s Student-t 30 s forecast spread over the path as a random-variance walk."""

    name = "garch_t_paths"

    def __init__(self, scale_fit: ScaleFit | None = None, tick: float = TICK) -> None:
        super().__init__(scale_fit, tick)
        self.garch = GarchT(tick=tick)

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        self.garch.fit_model(train_days, rng)

    def draw_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> PathDraws:
        drift, sd = self._drift_and_sd(day, anchors, n_samples, rng)  # [A, 1], [A, S]
        walk = random_walk(sd.shape, rng) / math.sqrt(len(HORIZONS))
        center = drift * np.asarray(HORIZONS)[None, :] / HORIZON_S  # [A, H]
        return PathDraws(center, sd[:, :, None] * walk)

    def draw_end_points(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        """The 30th second: the drift plus sd times a unit normal (W(30)/√30), without the
        29 seconds before it."""
        drift, sd = self._drift_and_sd(day, anchors, n_samples, rng)
        return Draws(drift[:, 0], sd * rng.standard_normal(sd.shape))

    def _drift_and_sd(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fit's drift per 30 s `[A, 1]` and each path's sd of the 30 s return, σ_30·√V
        with V = (ν − 2)/χ²_ν drawn per path, `[A, S]`, both in log-return units."""
        anchors = np.asarray(anchors)
        variance = finite_at_anchors(
            self.garch.per_day(day, self.garch.variance_bp2), day, anchors, "GARCH variance"
        )  # [A] bp² of the 30 s return
        params = [self.garch.params_for(day.symbols[s]) for s in anchors[:, 0]]
        nu = np.array([p.nu for p in params])[:, None]  # [A, 1]
        mixing = (nu - 2.0) / rng.chisquare(np.broadcast_to(nu, (len(anchors), n_samples)))
        sd = np.sqrt(variance)[:, None] * np.sqrt(mixing) / BP  # [A, S]
        return np.array([p.mu for p in params])[:, None] / BP, sd


class OraclePaths(PathBaseline):
    """The synthetic market's own forward simulation, read at every second (factor 1)."""

    name = "oracle_paths"

    def __init__(self, latent_root: Path, tick: float = TICK) -> None:
        super().__init__(None, tick)
        self.oracle = Oracle(latent_root, tick)

    @classmethod
    def beside(cls, raw_root: Path, tick: float = TICK) -> OraclePaths:
        """The oracle of the synthetic market written to `raw_root` (latent in `<raw>_latent`)."""
        return cls(Oracle.beside(raw_root).latent_root, tick)

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Nothing to learn; checks that the market's parameters are there."""
        self.oracle.fit(train_days, rng)

    def draw_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> PathDraws:
        anchors = np.asarray(anchors)
        rows = self.oracle.latent_rows(day, anchors)
        close, last = at_anchors(day.close, anchors), rows["last_price"].to_numpy()
        mismatch = np.abs(last - close) > self.tick / 2
        if mismatch.any():
            i = int(np.argmax(mismatch))
            raise ValueError(
                f"oracle_paths: latent last price {last[i]} of {day.day} "
                f"{day.symbols[anchors[i, 0]]} second {anchors[i, 1]} is not the day's close "
                f"{close[i]}: the latent folder {self.oracle.latent_root} is another market's"
            )
        paths = np.empty((len(anchors), n_samples, len(HORIZONS)))
        step = max(1, ORACLE_ROWS // n_samples)
        for start in range(0, len(anchors), step):
            part = rows.slice(start, step)
            seed = int(rng.integers(2**63))
            for j, h in enumerate(HORIZONS):  # one seed: the same paths, read at second h
                same = np.random.default_rng(seed)
                ret = simulate_forward(part, self.oracle.params, h, n_samples, same)
                paths[start : start + part.height, :, j] = np.log1p(ret)
        return PathDraws(np.zeros((len(anchors), len(HORIZONS))), paths)


PATH_BASELINES: dict[str, type[PathBaseline]] = {
    cls.name: cls for cls in (EwmaRandomWalk, GarchTPaths)
}  # those that run on any data; `OraclePaths` needs the synthetic market's latent state

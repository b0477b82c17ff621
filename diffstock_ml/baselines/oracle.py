"""The oracle forecast of a synthetic market: the generator's own dynamics from its latent state.

The latent folder (by default `<raw>_latent` beside the raw folder) holds `YYYYMMDD.parquet`, the
state at the end of every regular second of every symbol, and `params.json`. An anchor
(symbol, second) is the latent row of that symbol at ts = start_ts_us + second·1e6, and
`simulate_forward(..., horizon_s=HORIZON_S)` draws the observed 30 s return from it (already on the
grid; snapped again so that the arithmetic matches the other forecasts). The oracle is the
truth: it learns nothing from training days and its spread factor stays 1.
Real data has no latent state: the oracle then raises an error naming the missing path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from diffstock_ml.baselines.base import Baseline, Draws, at_anchors
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.synthetic import MarketParams, default_latent_root, simulate_forward
from diffstock_ml.synthetic.writer import PARAMS_FILE
from diffstock_ml.windows import DayArrays


class Oracle(Baseline):
    """Forward simulation of the synthetic market from its latent state at each anchor."""

    name = "oracle"

    def __init__(self, latent_root: Path, tick: float = TICK) -> None:
        super().__init__(None, tick)
        self.latent_root = Path(latent_root)
        self._params: MarketParams | None = None

    @classmethod
    def beside(cls, raw_root: Path, tick: float = TICK) -> Oracle:
        """The oracle of the synthetic market written to `raw_root` (latent in `<raw>_latent`)."""
        return cls(default_latent_root(raw_root), tick)

    @property
    def params(self) -> MarketParams:
        if self._params is None:
            path = self.latent_root / PARAMS_FILE
            if not path.exists():
                raise FileNotFoundError(
                    f"oracle: no synthetic market parameters at {path}; the oracle exists only "
                    "for synthetic data written with its latent state"
                )
            self._params = MarketParams.from_json(path)
        return self._params

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """Nothing to learn; checks that the market's parameters are there."""
        _ = self.params

    def latent_day(self, day: DayArrays) -> pl.DataFrame:
        """The latent rows of `day` (read once per day)."""
        path = self.latent_root / f"{day.day}.parquet"
        if not path.exists():
            raise FileNotFoundError(
                f"oracle: no latent state for {day.day} at {path}; the oracle exists only for "
                "synthetic data written with its latent state"
            )
        return pl.read_parquet(path)

    def latent_rows(self, day: DayArrays, anchors: np.ndarray) -> pl.DataFrame:
        """The latent row of every anchor, in the anchors' order."""
        latent = self.per_day(day, self.latent_day)
        ts = day.start_ts_us + anchors[:, 1].astype(np.int64) * 1_000_000
        wanted = pl.DataFrame(
            {
                "symbol": np.array(day.symbols)[anchors[:, 0]],
                "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
                "_order": np.arange(len(anchors)),
            }
        )
        rows = wanted.join(latent, on=["symbol", "ts"], how="left").sort("_order")
        missing = rows["mid"].is_null()
        if missing.any():
            first = rows.filter(missing).row(0, named=True)
            raise ValueError(
                f"oracle: {self.latent_root / f'{day.day}.parquet'} has no row for "
                f"{first['symbol']} at {first['ts']} (anchor {int(first['_order'])})"
            )
        return rows.drop("_order")

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        anchors = np.asarray(anchors)
        rows = self.latent_rows(day, anchors)
        close = at_anchors(day.close, anchors)
        last = rows["last_price"].to_numpy()
        mismatch = np.abs(last - close) > self.tick / 2
        if mismatch.any():
            i = int(np.argmax(mismatch))
            raise ValueError(
                f"oracle: latent last price {last[i]} of {day.day} {day.symbols[anchors[i, 0]]} "
                f"second {anchors[i, 1]} is not the day's close {close[i]}: the latent folder "
                f"{self.latent_root} belongs to another market"
            )
        samples = simulate_forward(rows, self.params, HORIZON_S, n_samples, rng)  # [B, S]
        return Draws(np.zeros(len(anchors)), samples)

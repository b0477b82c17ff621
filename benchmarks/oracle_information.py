"""Where the EWMA -> oracle gap lies: the oracle again, with parts of its latent state withheld.

The oracle forecasts the synthetic market from its latent state: the efficient mid and the side
of the last trade (the microstructure state), and three log-volatility states (fast, 90 s
half-life; slow, 40 min; the shared market one, 20 min). A forecaster that reads the bars sees
none of these directly. This script scores the oracle on the validation days of the demo profile
with parts of that state withheld, each marginalised exactly (not plugged in):

- `side`: the side of the last trade is a fair coin per sample and the mid sits half the
  current spread away from the last price on the other side, anywhere in its tick (the observer
  sees the last price and, through the bars' ranges, the spread; not where the price sat in the
  quote. The sequence of prints does hint at the side, so a model can beat this variant);
- `side_posterior`: as `side`, but the side is drawn with P(ask | bars) of a logistic
  regression fitted on the training days on the anchor's own features that hint at the side
  (`SIDE_FEATURES`: the tick test, where the close sits in its bar's range, short returns). A
  rough observer: a model reading the whole window may infer the side better;
- `fast_vol` / `slow_vol` / `market_vol`: that log-vol state is drawn per sample from its
  stationary distribution instead of read from the state.

Each variant closes some share of the EWMA -> oracle gap; a forecaster that reads the bars
cannot beat the variant that withholds everything the bars do not show exactly, so the table
bounds what a better model can gain. The likelihood heads (the demo profile's budget) are scored
on the same anchors with `--heads`. Prints JSON (and writes `--out`).

    python benchmarks/oracle_information.py --raw data/demo/raw --windows data/lake/windows \
        [--heads] [--samples 100] [--out oracle_information.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from diffstock_ml.baselines import BASELINES, Oracle
from diffstock_ml.baselines.base import Draws
from diffstock_ml.device import select_device
from diffstock_ml.experiments import ScoreConfig, paired_difference, score_models
from diffstock_ml.market import HORIZON_S
from diffstock_ml.synthetic import default_latent_root, simulate_forward
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, load_day_arrays

VOL_STATES = {"fast_vol": "h_fast", "slow_vol": "h_slow", "market_vol": "h_mkt"}
VARIANTS: dict[str, tuple[str, ...]] = {
    "oracle": (),
    "side_from_prints": ("side_posterior",),
    "side_from_prints_no_vol": ("side_posterior", "fast_vol", "slow_vol", "market_vol"),
    "no_side": ("side",),
    "no_fast_vol": ("fast_vol",),
    "no_slow_market_vol": ("slow_vol", "market_vol"),
    "no_vol": ("fast_vol", "slow_vol", "market_vol"),
    "no_side_no_fast_vol": ("side", "fast_vol"),
    "nothing_latent": ("side", "fast_vol", "slow_vol", "market_vol"),
}


# what the bars show of the side of the last trade (the anchor's own features)
SIDE_FEATURES = (
    "tick_test",
    "close_location",
    "close_location_last",
    "quote_position",
    "quote_mid_dev",
    "logret_1s",
    "logret_5s",
    "ma_ratio_30s",
    "hl_range",
    "is_filled",
)


def side_inputs(day: DayArrays, anchors: np.ndarray) -> np.ndarray:
    """`[B, 1 + F]`: a constant and the anchor's SIDE_FEATURES."""
    columns = [day.feature_names.index(name) for name in SIDE_FEATURES]
    x = np.asarray(day.x)[anchors[:, 0], anchors[:, 1]][:, columns].astype(np.float64)
    return np.column_stack([np.ones(len(anchors)), x])


def fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    """Logistic regression by Newton's method (IRLS) with a small ridge; columns standardised."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(x.shape[1])
        w -= np.linalg.solve(hessian, x.T @ (p - y))
    return w


class WithheldOracle(Oracle):
    """The oracle without some of its latent state, marginalised over that state."""

    def __init__(self, latent_root: Path, withheld: tuple[str, ...]) -> None:
        super().__init__(latent_root)
        self.withheld = withheld
        self.side_weights: np.ndarray | None = None
        self.side_scale: tuple[np.ndarray, np.ndarray] | None = None
        self.side_accuracy: float | None = None  # on the training days, with side_posterior

    def fit(self, train_days, rng: np.random.Generator) -> None:
        """With `side_posterior`: P(last trade at the ask | prints), fitted on training days."""
        super().fit(train_days, rng)
        if "side_posterior" not in self.withheld:
            return
        inputs, sides = [], []
        for day in train_days:
            anchors = np.asarray(day.anchors)[::7]
            inputs.append(side_inputs(day, anchors))
            sides.append(self.latent_rows(day, anchors)["last_side"].to_numpy() > 0)
        x, y = np.concatenate(inputs), np.concatenate(sides).astype(np.float64)
        mean, sd = x.mean(0), x.std(0)
        mean[0], sd[0] = 0.0, 1.0
        self.side_scale = (mean, np.where(sd > 0, sd, 1.0))
        self.side_weights = fit_logistic((x - mean) / self.side_scale[1], y)
        p = self._p_ask(x)
        self.side_accuracy = float(((p > 0.5) == (y > 0)).mean())

    def _p_ask(self, inputs: np.ndarray) -> np.ndarray:
        mean, sd = self.side_scale
        return 1 / (1 + np.exp(-((inputs - mean) / sd) @ self.side_weights))

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        if not self.withheld:
            return super().draw(day, anchors, n_samples, rng)
        rows = self.latent_rows(day, np.asarray(anchors))
        cfg = self.params.config
        sds = {"h_fast": cfg.fast_sd, "h_slow": cfg.slow_sd, "h_mkt": cfg.market_sd}
        # one row per (anchor, sample): each sample gets its own draw of the withheld state
        p_ask = np.full(len(anchors), 0.5)
        if "side_posterior" in self.withheld:
            p_ask = self._p_ask(side_inputs(day, np.asarray(anchors)))
        rows = rows[np.repeat(np.arange(rows.height), n_samples)]
        changes = []
        if {"side", "side_posterior"} & set(self.withheld):  # the mid anywhere in its tick
            ask = rng.random(rows.height) < np.repeat(p_ask, n_samples)
            side = np.where(ask, 1, -1).astype(np.int8)
            spread = rows["spread_ticks"].to_numpy()
            mid_ticks = rows["last_price"].to_numpy() / cfg.tick - side * spread / 2
            mid_ticks += rng.uniform(-0.5, 0.5, rows.height)
            changes += [pl.Series("last_side", side), pl.Series("mid", mid_ticks * cfg.tick)]
        for part, column in VOL_STATES.items():
            if part in self.withheld:
                draw = rng.standard_normal(rows.height) * sds[column]
                changes.append(pl.Series(column, draw, pl.Float32))
        rows = rows.with_columns(changes)
        samples = simulate_forward(rows, self.params, HORIZON_S, 1, rng)
        return Draws(np.zeros(len(anchors)), samples.reshape(len(anchors), n_samples))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--raw", type=Path, required=True, help="the synthetic market's raw root")
    parser.add_argument("--windows", type=Path, required=True, help="its windows, one per day")
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--stride", type=int, default=30)
    parser.add_argument("--heads", action="store_true", help="also train and score both heads")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()

    profile = PROFILES[args.profile]
    folders = sorted(p for p in args.windows.iterdir() if (p / "meta.json").exists())
    days = [load_day_arrays(folder) for folder in folders[-profile.days :]]
    train_days = days[: profile.train_days]
    val_days = days[profile.train_days : profile.train_days + profile.val_days]
    latent = default_latent_root(args.raw)
    models = {"ewma_gaussian": BASELINES["ewma_gaussian"]()}
    if args.heads:
        for name in ("gaussian_head", "student_t_head"):
            models[name] = BASELINES[name](
                model_config=profile.model, train_config=profile.train, device=select_device()
            )
    models |= {name: WithheldOracle(latent, parts) for name, parts in VARIANTS.items()}
    rng = np.random.default_rng(0)
    for model in models.values():
        model.fit(train_days, rng)
    scores = score_models(models, val_days, ScoreConfig(args.stride, args.samples))
    ewma, oracle = scores["ewma_gaussian"].crps_bp, scores["oracle"].crps_bp
    report = {
        "benchmark": "oracle_information",
        "profile": profile.name,
        "validation_days": [d.day for d in val_days],
        "anchors": scores["oracle"].anchors,
        "samples": args.samples,
        "withheld": {name: list(parts) for name, parts in VARIANTS.items()},
        "side_accuracy_on_training_days": models["side_from_prints"].side_accuracy,
        "models": {
            name: {
                **s.flat(),
                "gap_closed": (ewma - s.crps_bp) / (ewma - oracle),
                "vs_oracle": paired_difference(s, scores["oracle"]),
            }
            for name, s in scores.items()
        },
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The direction classifiers' P(up) calibrated on validation days, and a confidence threshold.

As seeds 001 and 002 do, a classifier's probabilities are recalibrated and a trading threshold
is chosen on validation days only, then both are frozen and applied to the test days:

- **Platt scaling**: P' = sigmoid(a · logit(P) + b), a and b by maximum likelihood on the
  validation days (`fit_platt`, scipy's BFGS on the log loss);
- **isotonic regression**: the non-decreasing step function of P that fits the validation
  outcomes best in squared error (`fit_isotonic`, scipy's pool-adjacent-violators), applied by
  interpolation and clipped outside the validation range, as scikit-learn's
  `IsotonicRegression(out_of_bounds="clip")` does.

Outcomes are `ret_30s > 0` among non-zero moves; zero moves (within the tie tolerance) are left
out of fitting and scoring, as the classifiers' training leaves them out. Brier score, log loss
(probabilities clipped to [1e-6, 1 − 1e-6]) and the expected calibration error over equal-count
bins are reported on the test days for the raw, Platt and isotonic probabilities, with a
reliability table (mean predicted P(up) against the observed share of up moves per bin).

**The confidence threshold.** The trading rule goes long when P(up) − 0.5 > θ and short when
0.5 − P(up) > θ, else stays flat, on the report's backtest (non-overlapping 30 s trades, the
same fees and half-spread). θ is the candidate with the highest validation Sharpe net of costs;
the candidates are 0 and the quantiles of |P(up) − 0.5| on the validation days that leave
80, 60, 40, 20, 10 and 5 % of validation anchors traded (no fewer: a Sharpe of a handful of
trades is noise). Sharpe, not accuracy × coverage, because accuracy × coverage is the share of
right calls among all anchors and only grows with coverage; the Sharpe pays for every trade.
When costs outweigh the edge at every coverage, the least-traded candidate wins: that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import optimize, special

from diffstock_ml.evaluation.backtest import backtest
from diffstock_ml.evaluation.config import EvaluationConfig
from diffstock_ml.evaluation.direction import directional_accuracy
from diffstock_ml.evaluation.forecasts import as_epoch_seconds, non_overlapping
from diffstock_ml.market import HORIZON_S

PROB_PREFIX = "prob_up_"  # a classifier's column in the forecasts' direction table
METHODS = ("raw", "platt", "isotonic")
COVERAGES = (1.0, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05)  # validation shares traded, θ candidates
EPS = 1e-6
Calibrator = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DirectionCalibration:
    """The report's tables on the direction classifiers (one row per classifier and method)."""

    scores: pl.DataFrame  # model, method, n, brier, log_loss, ece, accuracy, ...: test days
    reliability: pl.DataFrame  # model, method, bin, n, mean_predicted, observed: test days
    thresholds: pl.DataFrame  # model, method, threshold, val_* and test_* of the rule


def fit_platt(p: np.ndarray, up: np.ndarray) -> Calibrator:
    """Platt scaling fitted on probabilities `p [B]` and outcomes `up [B]` (bool)."""
    logit = special.logit(np.clip(p, EPS, 1 - EPS))
    y = np.asarray(up, dtype=np.float64)

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * logit + ab[1]
        value = np.mean(np.logaddexp(0.0, z) - y * z)  # mean log loss of sigmoid(z)
        residual = special.expit(z) - y
        return float(value), np.array([np.mean(residual * logit), np.mean(residual)])

    fit = optimize.minimize(loss, np.array([1.0, 0.0]), jac=True, options={"gtol": 1e-10})
    a, b = fit.x
    return lambda q: special.expit(a * special.logit(np.clip(q, EPS, 1 - EPS)) + b)


def fit_isotonic(p: np.ndarray, up: np.ndarray) -> Calibrator:
    """Isotonic regression of `up [B]` on `p [B]` (ties in p pooled first), clipped outside."""
    x, inverse, counts = np.unique(
        np.asarray(p, np.float64), return_inverse=True, return_counts=True
    )
    share = np.bincount(inverse, weights=np.asarray(up, np.float64)) / counts  # [U] per p
    fitted = optimize.isotonic_regression(share, weights=counts).x
    return lambda q: np.interp(np.asarray(q, np.float64), x, fitted)


def brier_score(p: np.ndarray, up: np.ndarray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(up, np.float64)) ** 2))


def log_loss(p: np.ndarray, up: np.ndarray) -> float:
    q = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return float(-np.mean(np.where(up, np.log(q), np.log1p(-q))))


def reliability_table(p: np.ndarray, up: np.ndarray, bins: int = 10) -> pl.DataFrame:
    """Equal-count bins of `p`: bin, n, lower, upper, mean_predicted, observed (share up)."""
    order = np.argsort(p, kind="stable")
    parts = [part for part in np.array_split(order, bins) if len(part)]
    return pl.DataFrame(
        {
            "bin": np.arange(len(parts)),
            "n": [len(part) for part in parts],
            "lower": [float(p[part].min()) for part in parts],
            "upper": [float(p[part].max()) for part in parts],
            "mean_predicted": [float(p[part].mean()) for part in parts],
            "observed": [float(np.mean(up[part])) for part in parts],
        }
    )


def expected_calibration_error(table: pl.DataFrame) -> float:
    """Σ_b n_b / n · |mean predicted − observed| over the bins of a `reliability_table`."""
    weight = table["n"].to_numpy() / table["n"].sum()
    gap = np.abs(table["mean_predicted"].to_numpy() - table["observed"].to_numpy())
    return float(np.sum(weight * gap))


@dataclass(frozen=True)
class Split:
    """One split's anchors in the direction table, as arrays."""

    target: np.ndarray  # [B] realised ret_30s
    symbol: np.ndarray  # [B]
    ts: np.ndarray  # [B] int64 epoch seconds
    tolerance: np.ndarray  # [B] |return| at or below which a move is zero

    @classmethod
    def of(cls, frame: pl.DataFrame, config: EvaluationConfig) -> Split:
        close = frame["close"].to_numpy()
        return cls(
            target=frame["target"].to_numpy(),
            symbol=frame["symbol"].to_numpy().astype(str),
            ts=as_epoch_seconds(frame["ts"].dt.replace_time_zone(None).to_numpy()),
            tolerance=config.tie_tolerance_ticks * config.tick / close,
        )

    @property
    def moved(self) -> np.ndarray:
        return np.abs(self.target) > self.tolerance

    @property
    def up(self) -> np.ndarray:
        return self.target > self.tolerance

    @property
    def grid(self) -> np.ndarray:
        return non_overlapping(self.symbol, self.ts, HORIZON_S)


def confidence_signal(p: np.ndarray, threshold: float) -> np.ndarray:
    """`[B]` +1 / −1 / 0: the call of P(up) `p` when |p − 0.5| exceeds `threshold`."""
    call = np.sign(np.asarray(p, np.float64) - 0.5)
    return np.where(np.abs(p - 0.5) > threshold, call, 0.0)


def rule_figures(
    p: np.ndarray, split: Split, threshold: float, config: EvaluationConfig
) -> dict[str, float]:
    """Coverage, accuracy and Sharpe (net and gross) of the confidence rule on `split`."""
    signal = confidence_signal(p, threshold)
    grid = split.grid
    accuracy = directional_accuracy(
        signal[grid].astype(np.int64), split.target[grid], split.tolerance[grid]
    )

    def sharpe(cost_bp: float) -> float:  # a unit return stands for "trade this call"
        return backtest(
            signal,
            split.target,
            split.symbol,
            split.ts,
            cost_bp=cost_bp,
            trading_days_per_year=config.trading_days_per_year,
        ).sharpe

    return {
        "coverage": float(np.mean(signal[grid] != 0)),
        "accuracy": accuracy.accuracy,
        "n_trades": int(np.sum(signal[grid] != 0)),
        "sharpe": sharpe(config.cost_bp),
        "sharpe_gross": sharpe(0.0),
    }


def choose_threshold(p_val: np.ndarray, val: Split, config: EvaluationConfig) -> float:
    """The θ among the candidates (module docstring) with the best validation net Sharpe."""
    confidence = np.abs(np.asarray(p_val, np.float64) - 0.5)
    candidates = [0.0, *(float(np.quantile(confidence, 1 - c)) for c in COVERAGES[1:])]
    sharpes = [rule_figures(p_val, val, theta, config)["sharpe"] for theta in candidates]
    finite = np.where(np.isfinite(sharpes), sharpes, -np.inf)
    return candidates[int(np.argmax(finite))]


def calibrate_directions(
    directions: pl.DataFrame, config: EvaluationConfig | None = None, bins: int = 10
) -> DirectionCalibration:
    """Calibrate every classifier (`prob_up_<name>` columns) on the rows whose `split` is "val",
    choose its threshold there, and score raw and calibrated probabilities on the "test" rows.

    `directions`: one row per anchor with `split`, `symbol`, `ts`, `target`, `close` and the
    classifiers' P(up) (`comparison.compare_on_test_days` writes it).
    """
    config = config or EvaluationConfig()
    if "split" not in directions.columns:
        raise ValueError(
            "direction table has no `split` column: it predates validation-day probabilities; "
            "materialise `forecasts` again"
        )
    frames = {part: directions.filter(pl.col("split") == part) for part in ("val", "test")}
    empty = [part for part, frame in frames.items() if frame.height == 0]
    if empty:
        raise ValueError(f"direction table has no {' or '.join(empty)} rows to calibrate on")
    val, test = (Split.of(frames[part], config) for part in ("val", "test"))
    scores, reliability, thresholds = [], [], []
    for column in (c for c in directions.columns if c.startswith(PROB_PREFIX)):
        name = column.removeprefix(PROB_PREFIX)
        p_val, p_test = (frames[part][column].to_numpy() for part in ("val", "test"))
        calibrators = _calibrators(p_val[val.moved], val.up[val.moved])
        for method, calibrate in calibrators.items():
            keys = {"model": name, "method": method}
            q_val, q_test = calibrate(p_val), calibrate(p_test)
            table = reliability_table(q_test[test.moved], test.up[test.moved], bins)
            reliability.append(
                table.select(*(pl.lit(v).alias(k) for k, v in keys.items()), pl.all())
            )
            scores.append({**keys, **_probability_scores(q_test, test, table)})
            theta = choose_threshold(q_val, val, config)
            thresholds.append({**keys, **_threshold_row(theta, q_val, val, q_test, test, config)})
    return DirectionCalibration(
        scores=pl.DataFrame(scores, infer_schema_length=None),
        reliability=pl.concat(reliability),
        thresholds=pl.DataFrame(thresholds, infer_schema_length=None),
    )


def _calibrators(p: np.ndarray, up: np.ndarray) -> dict[str, Calibrator]:
    """The identity, Platt and isotonic maps fitted on validation moves `p`, `up`."""
    return {
        "raw": lambda q: np.asarray(q, np.float64),
        "platt": fit_platt(p, up),
        "isotonic": fit_isotonic(p, up),
    }


def _probability_scores(p: np.ndarray, test: Split, table: pl.DataFrame) -> dict[str, float]:
    moved, grid = test.moved, test.grid
    call = np.sign(p - 0.5).astype(np.int64)  # P(up) = 0.5 exactly: no call
    accuracy = directional_accuracy(call[grid], test.target[grid], test.tolerance[grid])
    return {
        "n": int(moved.sum()),
        "brier": brier_score(p[moved], test.up[moved]),
        "log_loss": log_loss(p[moved], test.up[moved]),
        "ece": expected_calibration_error(table),
        "mean_prob_up": float(np.mean(p[moved])),
        "share_up": float(np.mean(test.up[moved])),
        "accuracy": accuracy.accuracy,
        "accuracy_n": accuracy.n,
    }


def _threshold_row(
    theta: float,
    p_val: np.ndarray,
    val: Split,
    p_test: np.ndarray,
    test: Split,
    config: EvaluationConfig,
) -> dict[str, float]:
    on_val = rule_figures(p_val, val, theta, config)
    on_test = rule_figures(p_test, test, theta, config)
    return {
        "threshold": theta,
        **{f"val_{k}": v for k, v in on_val.items() if k != "sharpe_gross"},
        **{f"test_{k}": v for k, v in on_test.items()},
    }

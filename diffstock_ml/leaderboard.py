"""Walk-forward leaderboard: every as-of model scored on its own test days, ranked together.

Each as-of model (retrained as time moves) forecasts its own test days; the report scores one
as-of at a time. Here the as-of days are put side by side:

1. every model of every as-of is scored with the report's own per-anchor function
   (`evaluation.score_anchors`: one CRPS, one randomised-PIT coverage in the whole product);
2. a test day that several as-of models tested (consecutive as-of days share `test_days − 1`
   days) is kept once, from the **newest** as-of model that tested it: the most recently
   trained model that had not seen the day (`owner_as_of`). Every tested day counts once, so
   the per-timestamp loss series has no duplicate timestamps and no day weighs twice;
3. per model: CRPS per test day and its skill vs a baseline, mean CRPS with a stationary
   block-bootstrap confidence interval over timestamps (`arch.bootstrap.StationaryBootstrap`),
   coverage, and the Model Confidence Set (`arch.bootstrap.MCS`) on per-timestamp losses (mean
   CRPS over symbols at each timestamp of the non-overlapping 30 s grid, as the report's
   Diebold–Mariano test uses; only timestamps every model has).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from arch.bootstrap import MCS, StationaryBootstrap, optimal_block_length
from matplotlib.figure import Figure

from diffstock_ml.calendar import DAY_FORMAT, NEW_YORK
from diffstock_ml.evaluation import (
    Anchors,
    EvaluationConfig,
    ModelForecasts,
    crps_skill,
    level_name,
    non_overlapping,
    score_anchors,
)
from diffstock_ml.evaluation.document import markdown
from diffstock_ml.evaluation.forecasts import as_epoch_seconds
from diffstock_ml.market import HORIZON_S

KEYS = ("as_of", "day", "model", "symbol", "ts")
MIN_OPTIMAL_BLOCK_T = 50  # shorter loss series: block length sqrt(T) (Politis–White is noisy)


@dataclass(frozen=True)
class LeaderboardConfig:
    """Reference model, confidence levels and bootstrap of the walk-forward leaderboard."""

    baseline: str = "ewma_gaussian"  # skill reference (`crps_skill_vs_<baseline>`)
    ci_level: float = 0.95  # two-sided level of the mean-CRPS confidence interval
    mcs_size: float = 0.1  # MCS: models with p-value >= size are kept (a 90 % confidence set)
    n_bootstrap: int = 1000  # bootstrap draws of the interval and of the MCS
    # Expected block length in timestamps; None: arch's `optimal_block_length` (Politis–White)
    block_length: int | None = None
    seed: int = 0
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.ci_level < 1.0 or not 0.0 < self.mcs_size < 1.0:
            raise ValueError(
                f"ci_level and mcs_size must be inside (0, 1), got {self.ci_level}, {self.mcs_size}"
            )
        if self.n_bootstrap < 1 or (self.block_length is not None and self.block_length < 1):
            raise ValueError(
                f"n_bootstrap and block_length must be at least 1, got {self.n_bootstrap}, "
                f"{self.block_length}"
            )


@dataclass(frozen=True)
class Leaderboard:
    """The walk-forward tables and figure (polars frames; the figure as PNG bytes)."""

    summary: pl.DataFrame  # one row per model, lowest mean CRPS first: CI, skill, coverage, MCS
    by_day: pl.DataFrame  # model, as_of, day, n_anchors, crps_bp, crps_skill_vs_<b>, coverage_*
    losses: pl.DataFrame  # the MCS input: as_of, ts, then one column of losses (bp) per model
    skill_figure: bytes  # PNG: skill vs the baseline per test day, one line per model


def leaderboard(
    forecasts: Mapping[str, Mapping[str, ModelForecasts]], config: LeaderboardConfig | None = None
) -> Leaderboard:
    """Rank the models of every as-of day (`{as_of: {model: forecasts}}`) on their test days."""
    config = config or LeaderboardConfig()
    if not forecasts:
        raise ValueError("leaderboard: no as-of forecasts given (no evaluated as-of day)")
    for as_of, models in forecasts.items():
        if config.baseline not in models:
            raise ValueError(
                f"leaderboard: as-of {as_of} has no forecasts of the baseline "
                f"{config.baseline!r} (models: {sorted(models)})"
            )
    owners = owner_as_of({as_of: tested_days(models) for as_of, models in forecasts.items()})
    scores = pl.concat(
        [
            walk_forward_scores(as_of, models, owners, config.evaluation)
            for as_of, models in forecasts.items()
        ]
    )
    by_day = daily_scores(scores, config)
    losses = timestamp_losses(scores)
    summary = model_summary(scores, model_confidence_set(losses, config), config)
    return Leaderboard(
        summary=summary,
        by_day=by_day,
        losses=losses,
        skill_figure=png_bytes(skill_figure(by_day, config.baseline)),
    )


def anchor_times(ts: np.ndarray) -> pl.Series:
    """Anchor timestamps `ts [B]` (UTC epoch seconds, as `Anchors.ts`) as UTC datetimes."""
    seconds = pl.Series("ts", as_epoch_seconds(ts))
    return pl.from_epoch(seconds, time_unit="s").dt.replace_time_zone("UTC")


def day_keys(ts: np.ndarray) -> pl.Series:
    """`[B]` session keys (YYYYMMDD, the New York date) of anchor timestamps `ts [B]`."""
    local = anchor_times(ts).dt.convert_time_zone(NEW_YORK)
    return local.dt.strftime(DAY_FORMAT).alias("day")


def tested_days(models: Mapping[str, ModelForecasts]) -> list[str]:
    """The test days (session keys) one as-of model's forecasts cover, oldest first."""
    return sorted(set().union(*(day_keys(f.anchors.ts).to_list() for f in models.values())))


def owner_as_of(days_by_as_of: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """`{test day: the newest as-of key that tested it}`: the as-of model a day is scored by.

    As-of keys and days are YYYYMMDD strings, so the newest is the largest.
    """
    owners: dict[str, str] = {}
    for as_of in sorted(days_by_as_of):
        owners.update(dict.fromkeys(days_by_as_of[as_of], as_of))
    return owners


def walk_forward_scores(
    as_of: str,
    models: Mapping[str, ModelForecasts],
    owners: Mapping[str, str],
    config: EvaluationConfig,
) -> pl.DataFrame:
    """Per-anchor CRPS and coverage of one as-of's models, on the days this as-of owns.

    Each model is scored on all of the as-of's anchors (exactly as its report scores it, the
    randomised PIT included) before the days owned by a newer as-of are dropped. Columns: as_of,
    day, model, symbol, ts, on_grid (on the non-overlapping 30 s grid), crps_bp, covered_<p>.
    """
    anchors = _shared_anchors(as_of, models)
    keys = pl.DataFrame(
        {
            "as_of": as_of,
            "day": day_keys(anchors.ts),
            "symbol": anchors.symbol,
            "ts": anchor_times(anchors.ts),
            "on_grid": non_overlapping(anchors.symbol, anchors.ts, HORIZON_S),
        }
    )
    owned = keys["day"].replace_strict(owners, default=None) == as_of
    covered = [f"covered_{level_name(p)}" for p in config.coverage_levels]
    frames = [
        pl.concat([keys, score_anchors(f, config).select("crps_bp", *covered)], how="horizontal")
        .with_columns(model=pl.lit(name))
        .filter(owned)
        for name, f in models.items()
    ]
    return pl.concat(frames).select(*KEYS, "on_grid", "crps_bp", *covered)


def _shared_anchors(as_of: str, models: Mapping[str, ModelForecasts]) -> Anchors:
    """The anchors of the as-of's first model, after checking every model has the same."""
    (first_name, first), *others = models.items()
    for name, other in others:
        for column in ("symbol", "ts"):
            if not np.array_equal(getattr(other.anchors, column), getattr(first.anchors, column)):
                raise ValueError(
                    f"leaderboard: as-of {as_of}: model {name!r} has different anchors from "
                    f"{first_name!r} ({column} differs)"
                )
    return first.anchors


def _coverage_columns(scores: pl.DataFrame) -> list[pl.Expr]:
    return [
        pl.col(c).mean().alias(c.replace("covered_", "coverage_"))
        for c in scores.columns
        if c.startswith("covered_")
    ]


def daily_scores(scores: pl.DataFrame, config: LeaderboardConfig) -> pl.DataFrame:
    """One row per (model, test day): mean CRPS, skill vs the baseline that day, coverage."""
    daily = scores.group_by("model", "as_of", "day").agg(
        pl.len().alias("n_anchors"), pl.col("crps_bp").mean(), *_coverage_columns(scores)
    )
    baseline = daily.filter(pl.col("model") == config.baseline).select(
        "as_of", "day", pl.col("crps_bp").alias("baseline_crps_bp")
    )
    skill = f"crps_skill_vs_{config.baseline}"
    return (
        daily.join(baseline, on=["as_of", "day"], how="left")
        # = `crps_skill` on the day's anchors: 1 − mean(model) / mean(baseline)
        .with_columns((1.0 - pl.col("crps_bp") / pl.col("baseline_crps_bp")).alias(skill))
        .drop("baseline_crps_bp")
        .select("model", "as_of", "day", "n_anchors", "crps_bp", skill, pl.col("^coverage_.*$"))
        .sort("day", "model")
    )


def crps_by_day(by_day: pl.DataFrame) -> pl.DataFrame:
    """CRPS (bp) per test day (rows: day, the as-of model that scored it) and model (columns)."""
    models = sorted(by_day["model"].unique())
    wide = by_day.pivot(on="model", index=["day", "as_of"], values="crps_bp")
    return wide.select("day", "as_of", *models).sort("day")


def document(board: Leaderboard, baseline: str, figure: str) -> str:
    """The leaderboard as a readable Markdown file: the summary first, then the days; the skill
    figure is linked as the file `figure` beside it."""
    kept = board.summary.filter("in_mcs")["model"].to_list()
    days = board.by_day["day"].unique().sort()
    return "\n\n".join(
        [
            "# Walk-forward leaderboard",
            f"{len(days)} test days ({days[0]}..{days[-1]}), each scored by the newest as-of "
            f"model that tested it; {board.losses.height} timestamps in the Model Confidence Set.",
            "## Summary (lowest mean CRPS first)",
            markdown(board.summary),
            f"Model Confidence Set: {', '.join(kept)}.",
            "## CRPS per test day (bp)",
            markdown(crps_by_day(board.by_day)),
            f"## Skill vs {baseline} per test day",
            f"![skill per test day]({figure})",
        ]
    )


def timestamp_losses(scores: pl.DataFrame) -> pl.DataFrame:
    """The MCS input: mean CRPS over symbols (bp) per timestamp of the non-overlapping grid.

    One row per (as_of, ts) that every model has, in time order; one column per model (sorted).
    A model missing at some timestamps shortens the series for all: MCS needs a full matrix.
    """
    models = sorted(scores["model"].unique())
    per_timestamp = (
        scores.filter("on_grid").group_by("as_of", "ts", "model").agg(pl.col("crps_bp").mean())
    )
    wide = per_timestamp.pivot(on="model", index=["as_of", "ts"], values="crps_bp")
    return wide.select("as_of", "ts", *models).drop_nulls().sort("ts")


def block_length(series: np.ndarray, configured: int | None = None) -> int:
    """Expected block length (timestamps) of the stationary bootstrap of `series [T]` or `[T, k]`.

    `configured` when given; else arch's `optimal_block_length` (Politis & White 2004, the
    largest over columns), or sqrt(T) for fewer than `MIN_OPTIMAL_BLOCK_T` timestamps. Always
    within [1, T].
    """
    n = len(series)
    if configured is not None:
        length = configured
    elif n < MIN_OPTIMAL_BLOCK_T:
        length = np.sqrt(n)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # constant stretches of a column
            estimates = optimal_block_length(series)["stationary"].to_numpy()
        finite = estimates[np.isfinite(estimates)]
        length = finite.max() if len(finite) else np.sqrt(n)
    return int(min(max(np.ceil(length), 1), max(n, 1)))


def model_confidence_set(losses: pl.DataFrame, config: LeaderboardConfig) -> pl.DataFrame:
    """`arch.bootstrap.MCS` (Hansen, Lunde & Nason 2011, range statistic, stationary bootstrap)
    on the `[T, models]` loss matrix: model, mcs_pvalue, in_mcs (p-value >= `mcs_size`)."""
    models = losses.columns[2:]
    if len(models) == 1:
        return pl.DataFrame({"model": models, "mcs_pvalue": [1.0], "in_mcs": [True]})
    matrix = losses.select(models).to_numpy()  # [T, k]
    if len(matrix) < 2:
        raise ValueError(
            f"leaderboard: the Model Confidence Set needs at least 2 timestamps shared by all "
            f"models {list(models)}, got {len(matrix)}"
        )
    mcs = MCS(
        matrix,
        size=config.mcs_size,
        reps=config.n_bootstrap,
        block_size=block_length(matrix, config.block_length),
        method="R",
        bootstrap="stationary",
        seed=config.seed,
    )
    mcs.compute()
    pvalues = mcs.pvalues["Pvalue"]
    kept = set(mcs.included)
    return pl.DataFrame(
        {
            "model": models,
            "mcs_pvalue": [float(pvalues.loc[i]) for i in range(len(models))],
            "in_mcs": [i in kept for i in range(len(models))],
        }
    )


def _ratio_of_sums(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.array([sums.sum() / counts.sum()])


def mean_interval(
    sums: np.ndarray, counts: np.ndarray, config: LeaderboardConfig
) -> tuple[float, float]:
    """Percentile CI of the anchor-weighted mean `Σ sums / Σ counts`, resampling timestamps.

    `sums [T]` and `counts [T]` are the CRPS sum and anchor count at each timestamp, in time
    order; blocks of timestamps are drawn by `arch.bootstrap.StationaryBootstrap`, so that
    overlapping targets and volatility clustering stay inside blocks.
    """
    if len(sums) < 2:
        return float("nan"), float("nan")
    bootstrap = StationaryBootstrap(
        block_length(sums / counts, config.block_length), sums, counts, seed=config.seed
    )
    low, high = bootstrap.conf_int(
        _ratio_of_sums, reps=config.n_bootstrap, method="percentile", size=config.ci_level
    )[:, 0]
    return float(low), float(high)


def model_summary(
    scores: pl.DataFrame, mcs: pl.DataFrame, config: LeaderboardConfig
) -> pl.DataFrame:
    """One row per model over all its kept anchors, lowest mean CRPS first."""
    skill = f"crps_skill_vs_{config.baseline}"
    baseline = scores.filter(pl.col("model") == config.baseline).select(
        "as_of", "symbol", "ts", pl.col("crps_bp").alias("baseline_crps_bp")
    )
    rows = []
    for (model,), frame in scores.sort("ts").group_by("model", maintain_order=True):
        paired = frame.join(baseline, on=["as_of", "symbol", "ts"], how="inner")
        per_ts = frame.group_by("as_of", "ts", maintain_order=True).agg(
            pl.col("crps_bp").sum().alias("sum"), pl.len().alias("count")
        )
        low, high = mean_interval(
            per_ts["sum"].to_numpy(), per_ts["count"].to_numpy().astype(np.float64), config
        )
        rows.append(
            {
                "model": model,
                "n_days": frame["day"].n_unique(),
                "n_anchors": frame.height,
                "crps_bp": float(frame["crps_bp"].mean()),
                "crps_ci_low": low,
                "crps_ci_high": high,
                skill: crps_skill(
                    paired["crps_bp"].to_numpy(), paired["baseline_crps_bp"].to_numpy()
                ),
                **frame.select(_coverage_columns(frame)).row(0, named=True),
            }
        )
    summary = pl.DataFrame(rows).join(mcs, on="model", how="left").sort("crps_bp")
    return summary.with_row_index("rank", offset=1)


def skill_figure(by_day: pl.DataFrame, baseline: str) -> Figure:
    """CRPS skill vs `baseline` per test day, one line per model (above 0: better)."""
    skill = f"crps_skill_vs_{baseline}"
    days = sorted(by_day["day"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(days) + 4), 4))
    ax.axhline(0.0, color="grey", linestyle="--", label=baseline)
    for (model,), frame in by_day.sort("model", "day").group_by("model", maintain_order=True):
        if model == baseline:
            continue
        x = [days.index(day) for day in frame["day"]]
        ax.plot(x, frame[skill].to_numpy() * 100, marker="o", label=model)
    ax.set_xticks(range(len(days)), days, rotation=45, ha="right", fontsize=8)
    ax.set(xlabel="test day (scored by its newest as-of model)", ylabel="CRPS skill (%)")
    ax.set_title(f"Walk-forward CRPS skill vs {baseline} per test day", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()

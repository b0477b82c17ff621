"""Figures of the evaluation report (matplotlib, headless). Each returns a `Figure`; the caller
saves it. Inputs are plain arrays and frames so that any model or baseline can be drawn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure


def reliability_diagram(
    nominal: Sequence[float], observed: Mapping[str, Sequence[float]]
) -> Figure:
    """Share of outcomes at or below each forecast quantile level (the PIT's CDF), per model.

    On the diagonal: calibrated; an S above the diagonal at high levels and below it at low
    levels: too wide (over-dispersed)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for name, values in observed.items():
        ax.plot(nominal, values, marker="o", label=name)
    ax.set(
        xlabel="forecast quantile level", ylabel="share of outcomes below", xlim=(0, 1), ylim=(0, 1)
    )
    ax.set_title("Reliability (randomised PIT)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pit_histograms(counts: Mapping[str, np.ndarray]) -> Figure:
    """Randomised PIT histograms (normalised to density 1 = uniform), one panel per model."""
    names = list(counts)
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = np.asarray(counts[name], dtype=float)
        density = values / values.sum() * len(values)
        edges = np.linspace(0, 1, len(values) + 1)
        ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", edgecolor="white")
        ax.axhline(1.0, color="grey", linestyle="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle("PIT histograms (flat = calibrated)")
    fig.tight_layout()
    return fig


def fan_chart(
    seconds: np.ndarray,
    realised_bp: np.ndarray,
    quantiles_bp: np.ndarray,
    levels: Sequence[float],
    title: str,
) -> Figure:
    """Forecast quantile bands of the 30 s return over time with the realised returns."""
    fig, ax = plt.subplots(figsize=(10, 4))
    levels = list(levels)
    pairs = [(lo, 1 - lo) for lo in levels if lo < 0.5 and (1 - lo) in levels]
    for alpha, (lo, hi) in zip(np.linspace(0.15, 0.45, len(pairs)), pairs, strict=False):
        i, j = levels.index(lo), levels.index(hi)
        ax.fill_between(
            seconds,
            quantiles_bp[:, i],
            quantiles_bp[:, j],
            alpha=alpha,
            color="tab:blue",
            label=f"{round(100 * (hi - lo))} % interval",
        )
    if 0.5 in levels:
        ax.plot(
            seconds, quantiles_bp[:, levels.index(0.5)], color="tab:blue", lw=0.8, label="median"
        )
    ax.scatter(seconds, realised_bp, s=4, color="black", label="realised", zorder=3)
    ax.set(xlabel="seconds since the open", ylabel="30 s return (bp)", title=title)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def metric_by_group(
    frame: pl.DataFrame, group: str, value: str = "crps_bp", model: str = "model", title: str = ""
) -> Figure:
    """A metric per group (time-of-day bucket, volatility decile) with one line per model."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name in frame[model].unique(maintain_order=True).to_list():
        part = frame.filter(pl.col(model) == name).sort(group)
        ax.plot(part[group].to_numpy(), part[value].to_numpy(), marker="o", ms=3, label=name)
    ax.set(xlabel=group, ylabel=value, title=title or f"{value} by {group}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def equity_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Cumulative net P&L (bp) of the cost-aware backtest, one line per model."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, (x, y) in curves.items():
        ax.plot(x, y, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="trade", ylabel="cumulative net P&L (bp)", title="Backtest equity curves")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def report_figures(result, table: pl.DataFrame, model: str = "diffusion") -> dict[str, Figure]:
    """Every figure of the evaluation report from an `EvaluationResult` and the forecasts table."""
    reliability = {
        key[0]: part.sort("level")["observed"].to_numpy()
        for key, part in result.reliability.group_by("model", maintain_order=True)
    }
    levels = result.reliability.filter(pl.col("model") == model).sort("level")["level"].to_numpy()
    pit = {
        name[0]: part.sort("bin")["count"].to_numpy()
        for name, part in result.pit_histograms.group_by("model", maintain_order=True)
    }
    figures = {
        "reliability_diagram": reliability_diagram(levels, reliability),
        "pit_histogram": pit_histograms(pit),
        "crps_by_time_of_day": metric_by_group(
            result.by_time_of_day, "minutes_since_open", title="CRPS (bp) by time of day"
        ),
        "crps_by_volatility_decile": metric_by_group(
            result.by_volatility_decile, "volatility_decile", title="CRPS (bp) by volatility decile"
        ),
    }
    baselines = result.overall.filter(~pl.col("model").is_in([model, "oracle"]))
    best = baselines.sort("crps_bp")["model"][0] if baselines.height else None
    curves = {}
    for name in [model, best]:
        part = result.equity_curves.filter(pl.col("model") == name)
        if name is not None and part.height:
            curves[name] = (np.arange(part.height), part["equity_bp"].to_numpy())
    figures["equity_curves"] = equity_curves(curves)
    figures["fan_chart"] = _fan_chart_of_one_hour(table, model)
    return figures


def _fan_chart_of_one_hour(table: pl.DataFrame, model: str) -> Figure:
    rows = table.filter(pl.col("model") == model)
    day, symbol = rows["day"][0], rows["symbol"][0]
    hour = rows.filter(
        (pl.col("day") == day)
        & (pl.col("symbol") == symbol)
        & pl.col("seconds_since_open").is_between(3600, 7200)
    ).sort("second")
    if hour.height == 0:
        hour = rows.filter((pl.col("day") == day) & (pl.col("symbol") == symbol)).sort("second")
    levels = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
    samples = hour["samples"].to_numpy()
    return fan_chart(
        hour["seconds_since_open"].to_numpy(),
        hour["target"].to_numpy() * 1e4,
        np.quantile(samples, levels, axis=1).T * 1e4,
        levels,
        f"{model}: {symbol} on {day}, forecast of the 30 s return",
    )

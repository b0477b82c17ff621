"""Figures of path forecasts (matplotlib, headless, as `diffstock_ml.plots`).

Each function returns a `Figure`; `write_png` saves and closes one. Inputs are plain arrays and
the tidy table of `path_metrics_table`, so any model or baseline can be drawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from diffstock_ml.evaluation.scores import BP
from diffstock_ml.paths.targets import HORIZONS

BANDS = ((0.05, 0.95), (0.25, 0.75))  # central bands of the fan, widest first
THIN_PATHS = 20
CRPS_COLUMN = re.compile(r"crps_h(\d+)_bp")


def anchors_in_hour(
    anchors: np.ndarray, symbol: int, start_s: int, n: int = 4, hour_s: int = 3600
) -> np.ndarray:
    """Indices of up to `n` anchors of `symbol`, evenly spread over seconds [start, start + 1 h)."""
    rows = np.flatnonzero(
        (anchors[:, 0] == symbol) & (anchors[:, 1] >= start_s) & (anchors[:, 1] < start_s + hour_s)
    )
    if len(rows) == 0:
        raise ValueError(f"no anchor of symbol {symbol} in seconds [{start_s}, {start_s + hour_s})")
    return rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]


def path_fan(
    samples: np.ndarray,
    realised: np.ndarray,
    labels: Sequence[str],
    title: str,
    horizons: Sequence[int] = HORIZONS,
) -> Figure:
    """One panel per anchor: quantile bands of the sample paths `[K, S, H]`, `THIN_PATHS` of
    the paths themselves, the median and the realised path `[K, H]`, in bp from the anchor."""
    k = len(samples)
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3.4), sharey=True, squeeze=False)
    x = np.concatenate([[0], horizons])  # the path starts at 0 at the anchor
    for ax, paths, truth, label in zip(axes[0], samples, realised, labels, strict=True):
        bp = np.concatenate([np.zeros((len(paths), 1)), paths], axis=1) * BP  # [S, 1 + H]
        for alpha, (lo, hi) in zip((0.15, 0.3), BANDS, strict=True):
            low, high = np.quantile(bp, [lo, hi], axis=0)
            band = f"{round(100 * (hi - lo))} % band"
            ax.fill_between(x, low, high, color="tab:blue", alpha=alpha, lw=0, label=band)
        ax.plot(x, bp[:THIN_PATHS].T, color="tab:blue", lw=0.4, alpha=0.5)
        ax.plot(x, np.median(bp, axis=0), color="tab:blue", lw=1.2, label="median")
        ax.plot(x, np.concatenate([[0], truth]) * BP, color="black", lw=1.5, label="realised")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(title=label, xlabel="seconds after the anchor")
    axes[0, 0].set_ylabel("cumulative log return (bp)")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def crps_by_horizon(table: pl.DataFrame, title: str = "CRPS by horizon") -> Figure:
    """Mean CRPS at each horizon, one line per model, from the `crps_h<h>_bp` columns."""
    found = {int(m.group(1)): m.group(0) for c in table.columns if (m := CRPS_COLUMN.fullmatch(c))}
    if not found:
        raise ValueError(f"no crps_h<h>_bp column in {table.columns}")
    seconds = sorted(found)
    columns = [found[h] for h in seconds]
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in table.iter_rows(named=True):
        ax.plot(seconds, [row[c] for c in columns], marker="o", ms=2, label=row["model"])
    ax.set(xlabel="horizon (s)", ylabel="CRPS (bp)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_png(fig: Figure, path: Path) -> Path:
    """Save `fig` as a PNG at `path` and close it (figures hold memory until closed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

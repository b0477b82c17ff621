"""The day chain of the assets as one library call, for scripts and tests without Dagster."""

from __future__ import annotations

from pathlib import Path

from diffstock_ml.calendar import parse_day
from diffstock_ml.config import FeatureConfig, WindowConfig
from diffstock_ml.features import build_features
from diffstock_ml.ingest import clean_day
from diffstock_ml.windows import build_day_arrays, save_day_arrays


def windows_from_raw(
    day_folder: Path,
    out: Path,
    features: FeatureConfig | None = None,
    windows: WindowConfig | None = None,
) -> Path:
    """Raw day folder -> clean bars -> features -> windows in `out/<day>` (kept if present)."""
    target = out / day_folder.name
    if not (target / "meta.json").exists():
        bars = clean_day(day_folder, parse_day(day_folder.name)).bars
        table = build_features(bars.lazy(), features or FeatureConfig()).collect()
        save_day_arrays(build_day_arrays(table, day_folder.name, windows or WindowConfig()), target)
    return target

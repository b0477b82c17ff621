"""In-process materialisation of clean_bars -> features -> windows for two synthetic days."""

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.features.assets import features, windows
from diffstock_assets.ingest.assets import clean_bars
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.windows import load_day_arrays

DAYS = ("20251103", "20251104")


def test_two_days_through_the_features_stage(tmp_path: Path, tiny_market: Path) -> None:
    settings = Settings.from_env(
        {"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_RAW": str(tiny_market)}
    )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for day in DAYS:
            result = dg.materialize(
                [clean_bars, features, windows],
                partition_key=day,
                instance=instance,
                resources=defs.resources,
            )
            assert result.success
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            assert all(checks.values()), checks
        event = instance.get_latest_materialization_event(windows.key)
        catalog = {
            asset.key.path[-1]: instance.get_latest_materialization_event(
                asset.key
            ).asset_materialization.metadata
            for asset in (clean_bars, features)
        }
    metadata = event.asset_materialization.metadata
    # the catalog shows every table's rows and columns (the windows' rows are its anchors)
    assert catalog["clean_bars"]["dagster/row_count"].value == 4 * 23_400
    columns = catalog["features"]["dagster/column_schema"].value.columns
    assert [c.name for c in columns[2 : 2 + len(FEATURE_COLUMNS)]] == list(FEATURE_COLUMNS)
    assert all(c.description for c in columns if c.name in FEATURE_COLUMNS)
    assert metadata["dagster/row_count"].value == metadata["anchors"].value
    assert "x" in {c.name for c in metadata["dagster/column_schema"].value.columns}
    assert metadata["valid_share"].value > 0.9
    assert metadata["shape"].value == f"(4, 23400, {len(FEATURE_COLUMNS)})"

    lake = tmp_path / "lake"
    frame = pl.read_parquet(lake / "features" / DAYS[1] / "features.parquet")
    assert frame.height == 4 * 23_400
    arrays = load_day_arrays(lake / "windows" / DAYS[1])
    assert isinstance(arrays.x, np.memmap) and arrays.x.dtype == np.float32
    assert len(arrays.anchors) == metadata["anchors"].value
    # the arrays are the parquet features, in (symbol, second) order
    first = frame.filter(pl.col("symbol") == arrays.symbols[0]).sort("ts")
    np.testing.assert_allclose(
        arrays.x[0, :, 0], first[FEATURE_COLUMNS[0]].fill_null(np.nan).to_numpy(), equal_nan=True
    )
    assert sorted(p.name for p in (lake / "windows").iterdir()) == list(DAYS)  # no temp folders


def test_one_day_on_an_object_store_lake(tmp_path: Path, tiny_market: Path) -> None:
    """The lake root is an fsspec URL (memory:// here, s3:// in production); nothing else moves."""
    import fsspec

    lake_url = "memory://diffstock-lake-test"
    env = {
        "DIFFSTOCK_DATA": str(tmp_path),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_LAKE": lake_url,
    }
    defs = build_definitions(Settings.from_env(env))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [clean_bars, features, windows],
            partition_key=DAYS[0],
            instance=instance,
            resources=defs.resources,
        )
    assert result.success
    fs = fsspec.filesystem("memory")
    for path in (
        "clean_bars/20251103/bars.parquet",
        "features/20251103/features.parquet",
        "windows/20251103/x.npy",
        "windows/20251103/meta.json",
    ):
        assert fs.exists(f"/diffstock-lake-test/{path}"), path
    assert not (tmp_path / "lake").exists()

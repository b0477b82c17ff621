from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from diffstock_assets.resources import LakeResource, RawDataResource


def test_lake_round_trip_on_local_disk(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    frame = pl.DataFrame({"a": [1, 2]})
    uri = lake.write_parquet(frame, "clean_bars", "20251103", "bars.parquet")
    assert uri.endswith("clean_bars/20251103/bars.parquet")
    assert lake.read_parquet("clean_bars", "20251103", "bars.parquet").equals(frame)
    assert [p.name for p in (tmp_path / "lake/clean_bars/20251103").iterdir()] == ["bars.parquet"]


def test_lake_works_on_an_fsspec_url() -> None:
    lake = LakeResource(root="memory://diffstock-test-lake")
    frame = pl.DataFrame({"a": [1.0]})
    lake.write_parquet(frame, "clean_bars", "20251103", "bars.parquet")
    assert lake.exists("clean_bars", "20251103", "bars.parquet")
    assert lake.read_parquet("clean_bars", "20251103", "bars.parquet").equals(frame)


class _Exploding:
    """A frame stand-in whose parquet writer dies half-way, like a killed run."""

    def write_parquet(self, handle, **_: object) -> None:
        handle.write(b"PAR1 half a file")
        raise KeyboardInterrupt


def test_a_write_killed_half_way_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    good = pl.DataFrame({"a": [1]})
    lake.write_parquet(good, "clean_bars", "20251103", "bars.parquet")
    with pytest.raises(KeyboardInterrupt):
        lake.write_parquet(_Exploding(), "clean_bars", "20251103", "bars.parquet")  # type: ignore[arg-type]
    folder = tmp_path / "lake/clean_bars/20251103"
    assert [p.name for p in folder.iterdir()] == ["bars.parquet"]
    assert lake.read_parquet("clean_bars", "20251103", "bars.parquet").equals(good)


def test_missing_lake_file_names_what_to_materialise(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path))
    with pytest.raises(dg.Failure, match="materialise clean_bars for partition 20251103"):
        lake.read_parquet("clean_bars", "20251103", "bars.parquet")


def test_missing_raw_folder_is_a_clear_failure(tmp_path: Path) -> None:
    raw = RawDataResource(root=str(tmp_path))
    with pytest.raises(dg.Failure, match="No raw folder for session 20251103"):
        raw.day_folder("20251103")


def test_folders_publish_atomically_and_replace_the_old_one(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    lake.write_folder("windows", "20251103", lambda f: (f / "a.npy").write_bytes(b"old"))
    lake.write_folder("windows", "20251103", lambda f: (f / "b.npy").write_bytes(b"new"))
    folder = lake.local_folder("windows", "20251103")
    assert [p.name for p in folder.iterdir()] == ["b.npy"]
    assert [p.name for p in (tmp_path / "lake" / "windows").iterdir()] == ["20251103"]


def test_a_folder_write_that_dies_leaves_the_old_folder(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    lake.write_folder("windows", "20251103", lambda f: (f / "a.npy").write_bytes(b"old"))

    def dies(folder: Path) -> None:
        (folder / "half.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lake.write_folder("windows", "20251103", dies)
    assert [p.name for p in (tmp_path / "lake" / "windows").iterdir()] == ["20251103"]
    assert (tmp_path / "lake" / "windows" / "20251103" / "a.npy").read_bytes() == b"old"


def test_folders_on_an_fsspec_url_are_downloaded_for_reading(tmp_path: Path) -> None:
    lake = LakeResource(root="memory://diffstock-test-folders")
    lake.write_folder("windows", "20251103", lambda f: (f / "x.npy").write_bytes(b"data"))
    local = lake.local_folder("windows", "20251103", cache=tmp_path)
    assert (local / "x.npy").read_bytes() == b"data"

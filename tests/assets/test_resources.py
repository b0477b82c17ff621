import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import fsspec
import numpy as np
import polars as pl
import pytest

from diffstock_assets.resources import (
    BARS,
    FORECAST_SAMPLES,
    MODEL_SUMMARY,
    REPORT,
    WINDOWS,
    LakeResource,
    RawDataResource,
)
from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.windows import DayArrays, save_day_arrays


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


def test_the_typed_layout_works_on_an_object_store() -> None:
    lake = LakeResource(root=f"memory://diffstock-layout-{uuid.uuid4().hex}")
    day = "20251103"
    frame = pl.DataFrame({"a": [1.0]})
    assert lake.write_table(BARS, day, frame) == lake.file_uri(BARS, day)
    assert lake.file_uri(BARS, day).startswith("memory://") and lake.has_file(BARS, day)
    assert lake.read_table(BARS, day).equals(frame)
    lake.write_folder(
        MODEL_SUMMARY.asset, day, lambda f: (f / MODEL_SUMMARY.name).write_text('{"a": 1}')
    )
    assert lake.read_json(MODEL_SUMMARY, day) == {"a": 1}
    assert not lake.has_file(REPORT, day) and not lake.has_windows(day)
    with pytest.raises(dg.Failure, match="materialise forecasts for partition 20251103"):
        lake.read_table(FORECAST_SAMPLES, day)


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


# --- publishing a folder never leaves a day without one -------------------------------------

Files = dict[str, bytes]
DAY = "20251103"
OLD: Files = {"x.npy": b"old x", "meta/summary.json": b"old summary"}
NEW: Files = {"x.npy": b"new x", "y.npy": b"new y"}
NEWER: Files = {"x.npy": b"newer x"}


class _Killed(BaseException):
    """The process dies here (a BaseException: nothing on the way may swallow it)."""


def _writer(files: Files) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)

    return write


def _contents(folder: Path) -> Files:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _read(lake: LakeResource, cache: Path) -> Files:
    assert lake.exists("windows", DAY, "x.npy")
    return _contents(lake.local_folder("windows", DAY, cache=cache))


def _memory_lake() -> LakeResource:
    return LakeResource(root=f"memory://diffstock-test-{uuid.uuid4().hex}")


def _before_every_write(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None]) -> None:
    """Call `before` ahead of each file write, copy or delete on the memory filesystem."""
    fs = fsspec.filesystem("memory")
    busy = False

    def wrap(name: str) -> None:
        original = getattr(fs, name)

        def wrapper(path, *args, **kwargs):
            nonlocal busy
            mode = kwargs.get("mode", args[0] if args else "rb")
            if not busy and (name != "open" or mode[0] in "wax"):
                busy = True  # what `before` reads is not a write of the publish
                try:
                    before()
                finally:
                    busy = False
            return original(path, *args, **kwargs)

        monkeypatch.setattr(fs, name, wrapper)

    for name in ("open", "cp_file", "rm_file", "rmdir"):
        wrap(name)


def _dies_after(writes: int) -> Callable[[], None]:
    calls = 0

    def dies() -> None:
        nonlocal calls
        calls += 1
        if calls > writes:
            raise _Killed

    return dies


def test_an_object_store_reader_sees_a_whole_folder_at_every_step_of_a_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = _memory_lake()
    lake.write_folder("windows", DAY, _writer(OLD))
    seen: list[Files] = []
    _before_every_write(monkeypatch, lambda: seen.append(_read(lake, tmp_path)))
    lake.write_folder("windows", DAY, _writer(NEW))
    monkeypatch.undo()
    seen.append(_read(lake, tmp_path))
    assert all(s in (OLD, NEW) for s in seen), seen
    switch = seen.index(NEW)
    assert switch > 0 and seen[switch:] == [NEW] * (len(seen) - switch), "went back to old"


def test_an_object_store_publish_killed_at_any_write_leaves_a_whole_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0

    def count() -> None:
        nonlocal writes
        writes += 1

    with monkeypatch.context() as patch:
        _before_every_write(patch, count)
        _memory_lake().write_folder("windows", DAY, _writer(NEW))
    assert writes > 5

    outcomes = set()
    for kill_at in range(writes):
        lake = _memory_lake()
        lake.write_folder("windows", DAY, _writer(OLD))
        cache = tmp_path / str(kill_at)
        assert _read(lake, cache) == OLD
        with monkeypatch.context() as patch, pytest.raises(_Killed):
            _before_every_write(patch, _dies_after(kill_at))
            lake.write_folder("windows", DAY, _writer(NEW))
        after = _read(lake, cache)
        assert after in (OLD, NEW), f"killed before write {kill_at}: {after}"
        outcomes.add("new" if after == NEW else "old")

        # the next publish succeeds and clears what the killed one left
        lake.write_folder("windows", DAY, _writer(NEWER))
        assert _read(lake, cache) == NEWER
        fs, root = fsspec.core.url_to_fs(lake.root)
        listing = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/windows", detail=False))
        assert listing == [DAY, f"{DAY}.current"], f"killed before write {kill_at}"
        fs.rm(root, recursive=True)
    assert outcomes == {"old", "new"}


def test_the_object_store_cache_never_serves_a_replaced_folder(tmp_path: Path) -> None:
    lake = _memory_lake()
    lake.write_folder("windows", DAY, _writer(OLD))
    assert _read(lake, tmp_path) == OLD
    lake.write_folder("windows", DAY, _writer(NEW))
    assert _read(lake, tmp_path) == NEW
    assert _read(lake, tmp_path) == NEW  # served from the cache now

    # a folder published before versions existed (no pointer) is downloaded on every read
    fs, root = fsspec.core.url_to_fs(lake.root)
    fs.pipe_file(f"{root}/legacy/{DAY}/x.npy", b"first")
    assert (lake.local_folder("legacy", DAY, cache=tmp_path) / "x.npy").read_bytes() == b"first"
    fs.pipe_file(f"{root}/legacy/{DAY}/x.npy", b"second")
    assert (lake.local_folder("legacy", DAY, cache=tmp_path) / "x.npy").read_bytes() == b"second"


def test_a_local_publish_killed_between_its_renames_leaves_the_old_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    lake.write_folder("windows", DAY, _writer(OLD))
    rename = Path.rename

    def first_rename_only(self: Path, target: Path) -> Path:
        monkeypatch.setattr(Path, "rename", _dies)
        return rename(self, target)

    def _dies(*_: object) -> None:
        raise _Killed

    monkeypatch.setattr(Path, "rename", first_rename_only)
    with pytest.raises(_Killed):
        lake.write_folder("windows", DAY, _writer(NEW))
    monkeypatch.undo()
    assert not (tmp_path / "lake" / "windows" / DAY).exists()  # killed mid-swap
    assert _read(lake, tmp_path / "cache") == OLD
    lake.write_folder("windows", DAY, _writer(NEWER))
    assert _read(lake, tmp_path / "cache") == NEWER
    assert [p.name for p in (tmp_path / "lake" / "windows").iterdir()] == [DAY]


@pytest.mark.parametrize("current", [True, False])
def test_windows_built_by_an_older_version_name_the_day_and_the_fix(
    tmp_path: Path, current: bool
) -> None:
    """Windows whose features differ from this version's (an older lake after an upgrade) are
    refused with the day, the missing features and what to re-materialise, not a shape error."""
    names = FEATURE_COLUMNS if current else FEATURE_COLUMNS[:-3]
    n_seconds, n_features = 10, len(names)
    arrays = DayArrays(
        day="20251103",
        symbols=("A",),
        feature_names=tuple(names),
        start_ts_us=0,
        config=WindowConfig(),
        x=np.zeros((1, n_seconds, n_features), np.float32),
        target=np.zeros((1, n_seconds)),
        sigma=np.ones((1, n_seconds)),
        close=np.ones((1, n_seconds)),
        anchors=np.zeros((0, 2), np.int32),
    )
    lake = LakeResource(root=str(tmp_path / "lake"))
    lake.write_folder(WINDOWS, "20251103", lambda folder: save_day_arrays(arrays, folder))
    if current:
        assert lake.read_windows("20251103").feature_names == FEATURE_COLUMNS
        return
    missing = ", ".join(FEATURE_COLUMNS[-3:])
    expected = f"windows of 20251103 hold {len(names)} .*lack {missing}"
    with pytest.raises(dg.Failure, match=expected) as info:
        lake.read_windows("20251103")
    assert "re-materialise features and windows for 20251103" in str(info.value)

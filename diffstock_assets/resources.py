"""Resources: where raw day folders are read from and where the lake is written to."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import fsspec
import polars as pl

from diffstock_ml.calendar import day_key
from diffstock_ml.ingest import list_raw_days
from diffstock_ml.windows import DayArrays, feature_mismatch, load_day_arrays

# On object stores `<asset>/<day>.current` holds {"folder": ..., "version": ...} as JSON.
POINTER_SUFFIX = ".current"
UNVERSIONED = "unversioned"  # cache name of an object-store folder published without a pointer
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class LakeFile:
    """One file of every day folder of an asset: `<lake>/<asset>/<YYYYMMDD>/<name>`."""

    asset: str
    name: str


# The lake layout: every file one stage writes and another (or a person) reads, in one place.
BARS = LakeFile("clean_bars", "bars.parquet")
QUARANTINE = LakeFile("clean_bars", "quarantine.parquet")
RAW_FILES = LakeFile("clean_bars", "files.parquet")
FEATURE_ROWS = LakeFile("features", "features.parquet")
WINDOWS = "windows"  # a folder per day: `diffstock_ml.windows.save_day_arrays`
MODEL_BUNDLE = LakeFile("diffusion_model", "bundle.pt")
MODEL_SUMMARY = LakeFile("diffusion_model", "summary.json")
FORECAST_SAMPLES = LakeFile("forecasts", "forecasts.parquet")
DIRECTION_PROBABILITIES = LakeFile("forecasts", "direction.parquet")
POINT_FORECASTS = LakeFile("forecasts", "points.parquet")  # the point regressors (issue 12)
REPORT = LakeFile("evaluation_report", "report.md")
# path forecasts (profiles with a path model only): `diffstock_ml.paths.evaluation`'s files
PATH_DOCUMENT = LakeFile("path_report", "paths.md")
# The unpartitioned walk-forward `leaderboard`: one folder, republished whole at each update.
LEADERBOARD = "leaderboard"
LATEST = "latest"  # the folder (in place of a day) of an unpartitioned asset's newest version
LEADERBOARD_SUMMARY = LakeFile(LEADERBOARD, "summary.parquet")
LEADERBOARD_BY_DAY = LakeFile(LEADERBOARD, "by_day.parquet")
LEADERBOARD_LOSSES = LakeFile(LEADERBOARD, "losses.parquet")
LEADERBOARD_FIGURE = LakeFile(LEADERBOARD, "skill_by_day.png")
LEADERBOARD_DOCUMENT = LakeFile(LEADERBOARD, "leaderboard.md")


class RawDataResource(dg.ConfigurableResource):
    """The read-only raw folder: `<root>/YYYYMMDD/SYMBOL.csv`. Nothing here ever writes to it."""

    root: str

    def day_folder(self, partition_key: str) -> Path:
        """The folder of one session; a `Failure` naming the path when it does not exist."""
        folder = Path(self.root) / partition_key
        if not folder.is_dir():
            raise dg.Failure(
                description=(
                    f"No raw folder for session {partition_key}: {folder} does not exist. "
                    f"Copy the day's CSV files there (or set DIFFSTOCK_RAW) and re-run."
                ),
                allow_retries=False,
            )
        return folder

    def session_keys(self) -> tuple[list[str], list[str]]:
        """Partition keys with a folder, and the folders ignored (with the reason)."""
        days, ignored = list_raw_days(Path(self.root))
        return [day_key(d) for d in days], ignored


class LakeResource(dg.ConfigurableResource):
    """The lake: `<root>/<asset>/<YYYYMMDD>/<name>`, local or any fsspec URL (`s3://`, `memory://`).

    Every write goes to a temporary name next to the target and is renamed into place, so a
    killed run never leaves a half-written file under the final name, and a reader always finds
    a complete published folder, the old one or the new one (see `write_folder`).
    """

    root: str

    # --- the layout, typed ------------------------------------------------------------------

    def file_uri(self, file: LakeFile, day: str) -> str:
        """Where `file` of `day` is (or will be) published, as a path or URL of the lake."""
        return self.uri(file.asset, day, file.name)

    def has_file(self, file: LakeFile, day: str) -> bool:
        return self.exists(file.asset, day, file.name)

    def write_table(self, file: LakeFile, day: str, frame: pl.DataFrame) -> str:
        """Write a parquet `file` of `day` atomically; returns its URI."""
        return self.write_parquet(frame, file.asset, day, file.name)

    def read_table(self, file: LakeFile, day: str) -> pl.DataFrame:
        """A parquet `file` of `day`; a `Failure` naming what to materialise when absent."""
        return self.read_parquet(file.asset, day, file.name)

    def read_json(self, file: LakeFile, day: str) -> dict:
        """A JSON `file` of a published folder, read in place (no download of the folder)."""
        fs, root = self._fs()
        folder, _ = _published(fs, f"{root}/{file.asset}", day)
        path = f"{folder}/{file.name}"
        if not fs.exists(path):
            raise dg.Failure(
                description=f"{self.file_uri(file, day)} is missing: materialise "
                f"{file.asset} for partition {day} first."
            )
        return json.loads(fs.cat_file(path))

    def local_file(self, file: LakeFile, day: str) -> Path:
        """A local path of `file` in a published folder (downloaded first on object stores)."""
        return self.local_folder(file.asset, day) / file.name

    def read_windows(self, day: str) -> DayArrays:
        """The `windows` of `day`, memory-mapped from a local copy of the folder; a `Failure`
        when they hold other features than this version builds (written by an older one)."""
        arrays = load_day_arrays(self.local_folder(WINDOWS, day))
        if problem := feature_mismatch(arrays.feature_names):
            raise dg.Failure(
                description=f"the windows of {day} {problem}: they were built by an older "
                f"diffstock; re-materialise features and windows for {day}.",
                allow_retries=False,
            )
        return arrays

    def has_windows(self, day: str) -> bool:
        fs, root = self._fs()
        folder, _ = _published(fs, f"{root}/{WINDOWS}", day)
        return fs.isdir(folder)

    # --- primitives: any asset, day and file name ----------------------------------------

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.root)
        return fs, root.rstrip("/")

    def uri(self, asset: str, partition: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{asset}/{partition}/{name}"

    def exists(self, asset: str, partition: str, name: str) -> bool:
        fs, root = self._fs()
        folder, _ = _published(fs, f"{root}/{asset}", partition)
        return fs.exists(f"{folder}/{name}")

    def write_parquet(self, frame: pl.DataFrame, asset: str, partition: str, name: str) -> str:
        """Write `frame` atomically; returns the final URI."""
        fs, root = self._fs()
        folder = f"{root}/{asset}/{partition}"
        fs.makedirs(folder, exist_ok=True)
        final = f"{folder}/{name}"
        temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        try:
            with fs.open(temporary, "wb") as handle:
                frame.write_parquet(handle, compression="zstd", statistics=True)
            fs.mv(temporary, final)
        finally:
            if fs.exists(temporary):
                fs.rm(temporary)
        return self.uri(asset, partition, name)

    def read_parquet(self, asset: str, partition: str, name: str) -> pl.DataFrame:
        fs, root = self._fs()
        folder, _ = _published(fs, f"{root}/{asset}", partition)
        path = f"{folder}/{name}"
        if not fs.exists(path):
            raise dg.Failure(
                description=f"{self.uri(asset, partition, name)} is missing: materialise "
                f"{asset} for partition {partition} first."
            )
        with fs.open(path, "rb") as handle:
            return pl.read_parquet(handle)

    def write_folder(self, asset: str, partition: str, write: Callable[[Path], None]) -> str:
        """Publish a folder of files (`write` fills a local temporary folder) atomically.

        Readers find the old folder or the new one, complete, even when the publish dies between
        any two filesystem calls. On a local lake the new folder replaces the old by two renames;
        between them readers fall back to the old one (`<day>.<id>.old`). On an object store,
        where only a single object write is atomic, the pointer object `<day>.current` names the
        folder readers use and its version: the upload `<day>.<version>.tmp` first, then `<day>`
        again once that holds a copy of the upload. One publisher per day at a time (Dagster runs
        one materialisation per partition).
        """
        fs, root = self._fs()
        parent = f"{root}/{asset}"
        fs.makedirs(parent, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{asset}-{partition}-") as scratch:
            write(Path(scratch))
            if _is_local(fs):
                _publish_local(Path(parent), partition, Path(scratch))
            else:
                _publish_remote(fs, parent, partition, scratch)
        return f"{self.root.rstrip('/')}/{asset}/{partition}"

    def local_folder(self, asset: str, partition: str, cache: Path | None = None) -> Path:
        """A local path to read a published folder from (downloaded first on object stores).

        Downloads are cached per published version: a republished day is downloaded afresh.
        """
        fs, root = self._fs()
        parent = f"{root}/{asset}"
        cache = (cache or Path(tempfile.gettempdir()) / "diffstock-lake-cache") / asset / partition
        for _ in range(READ_ATTEMPTS):
            folder, version = _published(fs, parent, partition)
            if not fs.exists(folder):
                raise dg.Failure(
                    description=f"{self.root.rstrip('/')}/{asset}/{partition} is missing: "
                    f"materialise {asset} for partition {partition} first."
                )
            if _is_local(fs):
                return Path(folder)
            target = cache / (version or UNVERSIONED)
            if version is not None and target.exists():
                return target
            if (local := _download(fs, folder, target)) is not None:
                # A publish that started meanwhile may have mixed versions: check and retry.
                if _published(fs, parent, partition) == (folder, version):
                    return _install(local, target, replace=version is None)
                shutil.rmtree(local, ignore_errors=True)
        raise dg.Failure(
            description=f"{self.root.rstrip('/')}/{asset}/{partition} was republished during "
            f"each of {READ_ATTEMPTS} downloads; run again when its publish has finished."
        )


class ComputeResource(dg.ConfigurableResource):
    """Where torch work runs: `auto` picks cuda, then mps, then cpu."""

    device: str = "auto"
    scratch_root: str = str(Path(tempfile.gettempdir()) / "diffstock-scratch")

    def torch_device(self):  # -> torch.device (torch imported lazily: ingest never needs it)
        from diffstock_ml.device import select_device

        return select_device(self.device)

    def scratch(self, *parts: str) -> Path:
        """A local working folder that outlives a killed run (checkpoints to resume from)."""
        folder = Path(self.scratch_root, *parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


# --- folder publishing ----------------------------------------------------------------------


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _published(
    fs: fsspec.AbstractFileSystem, parent: str, partition: str
) -> tuple[str, str | None]:
    """The complete folder readers use for a day, and its version (None where unversioned)."""
    final = f"{parent}/{partition}"
    if _is_local(fs):
        if Path(final).exists():
            return final, None
        retired = sorted(Path(parent).glob(f"{partition}.*.old"))  # a publish died mid-swap
        return (str(retired[0]) if retired else final), None
    try:
        pointer = json.loads(fs.cat_file(f"{final}{POINTER_SUFFIX}"))
    except FileNotFoundError:
        return final, None  # never published, or published before pointers existed
    return f"{parent}/{pointer['folder']}", pointer["version"]


def _publish_local(parent: Path, partition: str, scratch: Path) -> None:
    final = parent / partition
    staged = parent / f"{partition}.{uuid.uuid4().hex}.tmp"
    shutil.copytree(scratch, staged)
    if final.exists():
        final.rename(parent / f"{partition}.{uuid.uuid4().hex}.old")
    staged.rename(final)
    # What this publish retired, and what killed publishes left behind.
    for leftover in [*parent.glob(f"{partition}.*.old"), *parent.glob(f"{partition}.*.tmp")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _publish_remote(
    fs: fsspec.AbstractFileSystem, parent: str, partition: str, scratch: str
) -> None:
    version = uuid.uuid4().hex
    final, staged = f"{parent}/{partition}", f"{partition}.{version}.tmp"
    pointer = f"{final}{POINTER_SUFFIX}"
    # 1. Upload under a name no reader uses.
    fs.put(scratch, f"{parent}/{staged}", recursive=True)
    # 2. Readers move to the upload: one object write, atomic on object stores.
    fs.pipe_file(pointer, json.dumps({"folder": staged, "version": version}).encode())
    # 3. Refill `<day>` while no reader looks at it, then move readers back to it.
    if fs.exists(final):
        fs.rm(final, recursive=True)
    fs.copy(f"{parent}/{staged}", final, recursive=True)
    fs.pipe_file(pointer, json.dumps({"folder": partition, "version": version}).encode())
    # 4. No reader uses an upload any more: this one, or what killed publishes left behind.
    for leftover in fs.glob(f"{final}.*.tmp"):
        fs.rm(leftover, recursive=True)


def _download(fs: fsspec.AbstractFileSystem, folder: str, target: Path) -> Path | None:
    """`folder` downloaded next to `target`; None when it vanished during the download."""
    local = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get(folder, str(local), recursive=True)
    except FileNotFoundError:
        shutil.rmtree(local, ignore_errors=True)
        return None
    return local


def _install(local: Path, target: Path, replace: bool) -> Path:
    """Rename a finished download to `target` (a reader that got there first wins)."""
    if replace:
        shutil.rmtree(target, ignore_errors=True)
    try:
        local.rename(target)
    except OSError:
        shutil.rmtree(local, ignore_errors=True)
    return target

"""Resources: where raw day folders are read from and where the lake is written to."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import fsspec
import polars as pl

from diffstock_ml.calendar import day_key
from diffstock_ml.ingest import list_raw_days


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
    killed run never leaves a half-written file under the final name.
    """

    root: str

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.root)
        return fs, root.rstrip("/")

    def uri(self, asset: str, partition: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{asset}/{partition}/{name}"

    def exists(self, asset: str, partition: str, name: str) -> bool:
        fs, root = self._fs()
        return fs.exists(f"{root}/{asset}/{partition}/{name}")

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
        path = f"{root}/{asset}/{partition}/{name}"
        if not fs.exists(path):
            raise dg.Failure(
                description=f"{self.uri(asset, partition, name)} is missing: materialise "
                f"{asset} for partition {partition} first."
            )
        with fs.open(path, "rb") as handle:
            return pl.read_parquet(handle)

    def write_folder(self, asset: str, partition: str, write: Callable[[Path], None]) -> str:
        """Publish a folder of files (`write` fills a local temporary folder) atomically.

        On a local lake the finished folder replaces the old one by renames; on an object store
        it is uploaded under a temporary name and then moved into place.
        """
        fs, root = self._fs()
        final = f"{root}/{asset}/{partition}"
        fs.makedirs(f"{root}/{asset}", exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{asset}-{partition}-") as scratch:
            write(Path(scratch))
            if self._is_local():
                staged = Path(f"{final}.{uuid.uuid4().hex}.tmp")
                shutil.copytree(scratch, staged)
                retired = Path(f"{final}.{uuid.uuid4().hex}.old")
                if Path(final).exists():
                    Path(final).rename(retired)
                staged.rename(final)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                staged = f"{final}.{uuid.uuid4().hex}.tmp"
                fs.put(scratch, staged, recursive=True)
                if fs.exists(final):
                    fs.rm(final, recursive=True)
                fs.mv(staged, final, recursive=True)
        return f"{self.root.rstrip('/')}/{asset}/{partition}"

    def local_folder(self, asset: str, partition: str, cache: Path | None = None) -> Path:
        """A local path to read a published folder from (downloaded first on object stores)."""
        fs, root = self._fs()
        remote = f"{root}/{asset}/{partition}"
        if not fs.exists(remote):
            raise dg.Failure(
                description=f"{self.root.rstrip('/')}/{asset}/{partition} is missing: "
                f"materialise {asset} for partition {partition} first."
            )
        if self._is_local():
            return Path(remote)
        target = (cache or Path(tempfile.gettempdir()) / "diffstock-lake-cache") / asset / partition
        if not target.exists():
            fs.get(remote, str(target), recursive=True)
        return target

    def _is_local(self) -> bool:
        fs, _ = self._fs()
        return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


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

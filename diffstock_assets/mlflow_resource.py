"""MLflow tracking and registry behind one small resource (a sqlite store, explicit artifacts).

`dagster-mlflow` is not used (DESIGN §6): it pins old pandas and offers an op-style resource.
Every method sets the tracking URI first, so the resource works in any step process.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
)

TRUNCATED = "...[truncated]"


class MLflowResource(dg.ConfigurableResource):
    """One MLflow experiment in a tracking store, with its artifacts in `artifact_location`."""

    tracking_uri: str
    artifact_location: str
    experiment_name: str = "diffstock"
    ui_url: str = "http://127.0.0.1:5000"

    def client(self) -> MlflowClient:
        """A client of the tracking store (also made the process-wide fluent tracking URI)."""
        _make_sqlite_parent(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self) -> str:
        """The experiment's id, created with the explicit artifact location when absent."""
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            location = _local_artifact_location(self.artifact_location)
            try:
                return client.create_experiment(self.experiment_name, artifact_location=location)
            except MlflowException:
                # Another step process may have created it in the meantime.
                experiment = client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    @contextmanager
    def start_run(
        self, run_name: str, tags: dict[str, str] | None = None
    ) -> Iterator[mlflow.ActiveRun]:
        """The active run of `run_name` in the experiment: FINISHED on success, FAILED on error.

        The run is always ended when the block exits, so nothing leaks into the next step.
        """
        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            yield run

    def run_link(self, run_id: str) -> str:
        """The URL of the run in the MLflow UI at `ui_url`."""
        experiment_id = self.client().get_run(run_id).info.experiment_id
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Log nested `params` to the active run as flat `a.b` string params, in batches."""
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("log_params needs an active run: call it inside `start_run`")
        flat = [Param(key, value) for key, value in flatten_params(params, prefix).items()]
        client = self.client()
        for start in range(0, len(flat), MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(
                run.info.run_id, params=flat[start : start + MAX_PARAMS_TAGS_PER_BATCH]
            )

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log scalar `metrics` to the active run, in batches; non-finite values are left out."""
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError("log_metrics needs an active run: call it inside `start_run`")
        now = int(time.time() * 1000)
        batch = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if math.isfinite(float(value))
        ]
        client = self.client()
        for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
            client.log_batch(run.info.run_id, metrics=batch[start : start + MAX_METRICS_PER_BATCH])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        """Copy the file `path` into the active run's artifacts (under `folder` if given)."""
        self.client()
        mlflow.log_artifact(str(path), folder)

    def log_artifacts(self, folder: Path) -> None:
        """Copy every file of `folder` into the active run's artifacts."""
        self.client()
        mlflow.log_artifacts(str(folder))

    def log_json(self, files: Mapping[str, Any]) -> None:
        """Log each `name: content` of `files` as the JSON artifact `name` of the active run."""
        with tempfile.TemporaryDirectory() as scratch:
            for name, content in files.items():
                path = Path(scratch) / name
                path.write_text(json.dumps(content, indent=1))
                self.log_artifact(path)

    def log_model(self, bundle: Path, registered_model_name: str) -> ModelInfo:
        """Log the bundle at `bundle` as the run's pyfunc model and register a new version."""
        from diffstock_assets.model.pyfunc import log_diffusion_model  # imports torch

        self.client()
        return log_diffusion_model(bundle, registered_model_name)

    def metric_logger(self, run_id: str, flush_every: int = 50) -> MetricLogger:
        """A buffer of step metrics for `run_id`, sent with `log_batch` (use it as a context)."""
        return MetricLogger(self.client(), run_id, flush_every)

    def register(self, model_uri: str, name: str) -> str:
        """Register `model_uri` (e.g. `ModelInfo.model_uri`) under `name`; returns the version."""
        self.client()
        return str(mlflow.register_model(model_uri, name).version)

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point `models:/{name}@{alias}` at `version`."""
        self.client().set_registered_model_alias(name, alias, str(version))

    def version_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version `models:/{name}@{alias}` points at, or None when the alias is unset."""
        try:
            return self.client().get_model_version_by_alias(name, alias)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error):
                return None
            raise

    def model_version(self, name: str, version: str | int) -> ModelVersion:
        return self.client().get_model_version(name, str(version))

    def set_version_tags(self, name: str, version: str | int, tags: Mapping[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, str(value))


class MetricLogger:
    """Step metrics of one run, buffered and sent as `log_batch` calls of at most 1000."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every: int = 50) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be at least 1, got {flush_every}")
        self.client, self.run_id = client, run_id
        self.flush_every = min(flush_every, MAX_METRICS_PER_BATCH)
        self._buffer: list[Metric] = []

    def log(self, name: str, value: float, step: int) -> None:
        """Queue one value of metric `name` at training step `step`."""
        timestamp = int(time.time() * 1000)
        self._buffer.append(Metric(name, float(value), timestamp, int(step)))
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Send everything queued."""
        while self._buffer:
            batch = self._buffer[:MAX_METRICS_PER_BATCH]
            self.client.log_batch(self.run_id, metrics=batch)
            del self._buffer[: len(batch)]

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Metrics logged before a failure are still worth keeping.
        self.close()


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"model": {"d_model": 16}}` -> `{"model.d_model": "16"}`, values cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
            continue
        if len(name) > MAX_ENTITY_KEY_LENGTH:
            raise ValueError(
                f"param name {name[:60]!r}... is {len(name)} characters; "
                f"MLflow allows {MAX_ENTITY_KEY_LENGTH}"
            )
        text = str(value)
        if len(text) > MAX_PARAM_VAL_LENGTH:
            text = text[: MAX_PARAM_VAL_LENGTH - len(TRUNCATED)] + TRUNCATED
        flat[name] = text
    return flat


def _make_sqlite_parent(tracking_uri: str) -> None:
    """Create the folder of a `sqlite:///path/to/mlflow.db` store (sqlite will not)."""
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _local_artifact_location(location: str) -> str:
    """A local path (or `file:` URI) made absolute and created; other URIs are kept as given."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        Path(parsed.path).mkdir(parents=True, exist_ok=True)
        return location
    if parsed.scheme and len(parsed.scheme) > 1:  # s3://, gs://, ... (not a Windows drive)
        return location
    folder = Path(location).expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)

"""MLflowResource on a temporary sqlite store and artifact folder."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from diffstock_assets.mlflow_resource import MLflowResource, flatten_params


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store per module (creating its tables takes a second); experiments differ."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'store' / 'mlflow.db'}"


@pytest.fixture
def resource(store_uri: str, tmp_path: Path, request: pytest.FixtureRequest) -> MLflowResource:
    return MLflowResource(
        tracking_uri=store_uri,
        artifact_location=str(tmp_path / "artifacts"),
        experiment_name=request.node.name,
        ui_url="http://localhost:5000/",
    )


def test_experiment_is_created_with_the_explicit_artifact_location(
    resource: MLflowResource, tmp_path: Path
) -> None:
    experiment_id = resource.experiment_id()

    experiment = resource.client().get_experiment(experiment_id)
    assert experiment.name == "test_experiment_is_created_with_the_explicit_artifact_location"
    assert experiment.artifact_location == str(tmp_path / "artifacts")
    assert Path(resource.tracking_uri.removeprefix("sqlite:///")).is_file()
    assert (tmp_path / "artifacts").is_dir()
    assert resource.experiment_id() == experiment_id


def test_run_has_tags_flat_params_and_a_link(resource: MLflowResource) -> None:
    with resource.start_run("training 20251103", tags={"as_of": "20251103"}) as run:
        resource.log_params({"model": {"d_model": 16, "patch": (1, 2)}, "profile": "demo"})
        resource.log_params({"lr": 1e-3}, prefix="train")
        run_id = run.info.run_id
    assert mlflow.active_run() is None

    logged = resource.client().get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "training 20251103"
    assert logged.data.tags["as_of"] == "20251103"
    assert logged.data.params == {
        "model.d_model": "16",
        "model.patch": "(1, 2)",
        "profile": "demo",
        "train.lr": "0.001",
    }
    link = resource.run_link(run_id)
    assert link == f"http://localhost:5000/#/experiments/{resource.experiment_id()}/runs/{run_id}"


def test_flatten_params_cuts_long_values_to_mlflow_limit() -> None:
    flat = flatten_params({"a": {"b": {"c": "x" * 10_000}}, "empty": {}})

    assert set(flat) == {"a.b.c", "empty"}
    assert len(flat["a.b.c"]) == 6000
    assert flat["a.b.c"].endswith("[truncated]")
    assert flat["empty"] == "{}"


def test_batched_step_metrics_all_arrive(resource: MLflowResource) -> None:
    with resource.start_run("metrics") as run:
        with resource.metric_logger(run.info.run_id, flush_every=50) as metrics:
            for step in range(120):
                metrics.log("loss", 1.0 / (step + 1), step)
            metrics.log("val_crps_bp", 3.5, 119)
        run_id = run.info.run_id

    history = MlflowClient(resource.tracking_uri).get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(120))
    assert {m.step: m.value for m in history}[9] == pytest.approx(0.1)
    assert resource.client().get_run(run_id).data.metrics["val_crps_bp"] == 3.5


def test_failure_inside_a_run_marks_it_failed_and_ends_it(resource: MLflowResource) -> None:
    with pytest.raises(RuntimeError, match="diverged"), resource.start_run("doomed") as run:
        run_id = run.info.run_id
        raise RuntimeError("loss diverged")

    assert mlflow.active_run() is None
    assert resource.client().get_run(run_id).info.status == "FAILED"
    with resource.start_run("next") as run:  # nothing leaked: a fresh top-level run starts
        assert run.info.run_id != run_id


def test_log_params_outside_a_run_is_an_error(resource: MLflowResource) -> None:
    with pytest.raises(RuntimeError, match="active run"):
        resource.log_params({"a": 1})


def test_register_and_alias(resource: MLflowResource) -> None:
    with resource.start_run("register"):
        logged = mlflow.create_external_model(name="toy")  # a model entry without files
    uri = f"models:/{logged.model_id}"

    first, second = resource.register(uri, "toy"), resource.register(uri, "toy")
    resource.set_alias("toy", "champion", first)

    assert (first, second) == ("1", "2")
    assert str(resource.client().get_model_version_by_alias("toy", "champion").version) == "1"


def test_champion_moves_only_forward_in_a_real_registry(resource: MLflowResource) -> None:
    """Versions registered as the training asset does; `crown` after each passed gate."""
    from diffstock_assets.registry import CHALLENGER, CHAMPION, crown, register_challenger

    name = "forward"
    with resource.start_run("register"):
        uri = f"models:/{mlflow.create_external_model(name=name).model_id}"

    def new_version(as_of: str, test_days: tuple[str, ...]) -> str:
        version = resource.register(uri, name)
        register_challenger(resource, name, version, as_of, test_days)
        assert str(resource.version_by_alias(name, CHALLENGER).version) == version
        return version

    def champion() -> str | None:
        found = resource.version_by_alias(name, CHAMPION)
        return None if found is None else str(found.version)

    late = ("20251112", "20251113")
    v1 = new_version("20251113", late)
    assert champion() is None
    assert crown(resource, name, v1, 4.60).moves and champion() == v1
    v2 = new_version("20251112", ("20251111", "20251112"))  # history re-run: better, but older
    move = crown(resource, name, v2, 4.10)
    assert not move.moves and "never demotes" in move.reason and champion() == v1
    v3 = new_version("20251113", late)  # a retrain of the champion's day, worse
    assert not crown(resource, name, v3, 4.65).moves and champion() == v1
    v4 = new_version("20251113", late)  # ... and a better one
    assert crown(resource, name, v4, 4.55).moves and champion() == v4
    v5 = new_version("20251114", ("20251113", "20251114"))  # a newer day
    assert crown(resource, name, v5, 4.70).moves and champion() == v5
    assert resource.model_version(name, v5).tags["test_crps_bp"] == "4.7"


def test_an_unset_alias_reads_as_none(resource: MLflowResource) -> None:
    with resource.start_run("register"):
        uri = f"models:/{mlflow.create_external_model(name='empty').model_id}"
    resource.register(uri, "empty")
    assert resource.version_by_alias("empty", "champion") is None

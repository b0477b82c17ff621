"""The diffusion pyfunc: logged, registered, loaded back and served over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.pyfunc import log_diffusion_model
from diffstock_ml.batches import Normaliser
from diffstock_ml.model.bundle import QUANTILE_LEVELS, save_bundle
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster

N, F = 20, 5
NAME = "diffstock-tiny"
CLOSE = np.array([100.0, 10.03, 55.55])  # anchor prices on the $0.01 grid


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MLflowResource:
    """A temporary store holding version 1 of `NAME`: a tiny untrained forecaster."""
    root = tmp_path_factory.mktemp("mlflow")
    config = ModelConfig(
        d_model=16,
        n_heads=2,
        n_layers=1,
        patch_size=10,
        denoiser_hidden=32,
        denoiser_depth=1,
        time_embed_dim=16,
    )
    bundle = save_bundle(
        root / "bundle.pt",
        config,
        DiffusionForecaster(config, n_features=F).state_dict(),
        Normaliser((0.0,) * F, (1.0,) * F),
        tuple(f"feature_{i}" for i in range(F)),
        N,
        SamplerConfig(steps=5, n_samples=16),
    )
    resource = MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "artifacts")
    )
    with resource.start_run("pyfunc test"):
        info = log_diffusion_model(bundle, NAME)
    assert str(info.registered_model_version) == "1"
    return resource


def windows(batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(batch, N, F)).astype(np.float32),
        "sigma": np.full(batch, 1e-3),
        "close": CLOSE[:batch],
    }


def test_registered_model_forecasts_on_the_price_grid(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")

    out = model.predict(windows(), params={"n_samples": 8})

    assert out["quantiles"].shape == (3, len(QUANTILE_LEVELS))
    assert out["samples"].shape == (3, 8)
    assert out["mean"].shape == out["std"].shape == (3,)
    assert all(v.dtype == np.float64 for v in out.values())
    assert np.all(np.diff(out["quantiles"], axis=1) >= 0)
    prices = CLOSE[:, None] * (1 + out["samples"])
    assert np.abs(prices - 0.01 * np.round(prices / 0.01)).max() < 1e-6
    np.testing.assert_allclose(out["mean"], out["samples"].mean(axis=1))


def test_same_seed_same_forecast_and_bundle_default_sample_count(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")

    first = model.predict(windows(), params={"n_samples": 8, "seed": 7})
    again = model.predict(windows(), params={"n_samples": 8, "seed": 7})
    other = model.predict(windows(), params={"n_samples": 8, "seed": 8})

    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["samples"], other["samples"])
    assert model.predict(windows(2))["samples"].shape == (2, 16)


def test_wrong_inputs_give_clear_errors(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    short = {**windows(), "x": np.zeros((3, N // 2, F), dtype=np.float32)}
    ragged = {**windows(), "close": np.full(2, 100.0)}
    missing = {k: v for k, v in windows().items() if k != "close"}

    with pytest.raises(MlflowException, match=r"Shape of input \(3, 10, 5\) does not match"):
        model.predict(short)
    with pytest.raises(ValueError, match="same number of windows, got 3, 3 and 2"):
        model.predict(ragged)
    with pytest.raises(MlflowException, match=r"missing inputs \['close'\]"):
        model.predict(missing)


def test_logged_model_has_signature_example_and_levels(store: MLflowResource) -> None:
    info = mlflow.models.get_model_info(f"models:/{NAME}/1")

    inputs = info.signature.inputs.input_dict()
    assert inputs["x"].shape == (-1, N, F)
    assert inputs["sigma"].shape == inputs["close"].shape == (-1,)
    assert {p.name: p.default for p in info.signature.params} == {"n_samples": 16, "seed": 0}
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"
    assert info.metadata["quantile_levels"] == list(QUANTILE_LEVELS)
    assert info.flavors["python_function"]["code"] == "code"


def test_logging_needs_an_active_run(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="active run"):
        log_diffusion_model(tmp_path / "bundle.pt", None)


def test_served_copy_needs_only_the_logged_code(store: MLflowResource, tmp_path: Path) -> None:
    """Loaded in a fresh interpreter that cannot import this checkout, the model still works."""
    script = f"""
import importlib.util, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path = [p for p in sys.path if p not in ("", {os.getcwd()!r}) and "__editable__" not in p]
assert importlib.util.find_spec("diffstock_ml") is None, "the checkout is still importable"
import mlflow, numpy as np
model = mlflow.pyfunc.load_model("models:/{NAME}/1")
x = np.zeros((2, {N}, {F}), dtype=np.float32)
out = model.predict({{"x": x, "sigma": np.full(2, 1e-3), "close": np.full(2, 100.0)}})
import diffstock_ml
assert "diffstock_assets" not in sys.modules, "the model imported the Dagster project"
print(out["quantiles"].shape, diffstock_ml.__file__)
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    shape, library = done.stdout.strip().splitlines()[-1].split(") ")
    assert shape == "(2, 9"
    assert "/code/diffstock_ml/" in library


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
def test_mlflow_models_serve_answers_invocations(store: MLflowResource, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "models", "serve"),
            *("-m", f"models:/{NAME}/1", "--env-manager", "local"),
            *("-h", "127.0.0.1", "-p", str(port)),
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_ping(url, server, tmp_path / "serve.log", timeout=90)
        body = {"inputs": {k: v.tolist() for k, v in windows().items()}, "params": {"seed": 3}}
        request = urllib.request.Request(
            f"{url}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.load(response)["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()

    quantiles = np.array(predictions["quantiles"])
    assert quantiles.shape == (3, len(QUANTILE_LEVELS))
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    assert np.array(predictions["samples"]).shape == (3, 16)


def wait_for_ping(url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `/ping` until the server answers 200; fail with its log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"mlflow models serve did not answer /ping in {timeout} s:\n{log.read_text()}")

"""The diffusion pyfunc: logged, registered, loaded back and served over HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModelContext

from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.pyfunc import (
    LIMITS,
    DiffusionPyfunc,
    InvalidRequest,
    log_diffusion_model,
)
from diffstock_ml.batches import Normaliser
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS
from diffstock_ml.model.bundle import save_bundle
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster

N, F = 20, 5
NAME = "diffstock-tiny"
CLOSE = np.array([100.0, 10.03, 55.55])  # anchor prices on the $0.01 grid
SPREAD = 1.5  # the registered bundle's spread factor
CONFIG = ModelConfig(
    d_model=16,
    n_heads=2,
    n_layers=1,
    patch_size=10,
    denoiser_hidden=32,
    denoiser_depth=1,
    time_embed_dim=16,
)


def tiny_bundle(path: Path, spread_factor: float | None, config: ModelConfig = CONFIG) -> Path:
    """A tiny untrained forecaster (the same weights every time)."""
    torch.manual_seed(0)
    return save_bundle(
        path,
        config,
        DiffusionForecaster(config, n_features=F).state_dict(),
        Normaliser((0.0,) * F, (1.0,) * F),
        tuple(f"feature_{i}" for i in range(F)),
        N,
        SamplerConfig(steps=5, n_samples=16),
        spread_factor,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MLflowResource:
    """A temporary store holding version 1 of `NAME`: the tiny forecaster, spread by 1.5."""
    root = tmp_path_factory.mktemp("mlflow")
    bundle = tiny_bundle(root / "bundle.pt", SPREAD)
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

    out = model.predict(windows(), params={"n_samples": 8, "return_samples": True})

    assert out["quantiles"].shape == (3, len(QUANTILE_LEVELS))
    assert out["samples"].shape == (3, 8)
    assert out["mean"].shape == out["std"].shape == (3,)
    assert all(out[k].dtype == np.float64 for k in ("quantiles", "samples", "mean", "std"))
    assert np.all(np.diff(out["quantiles"], axis=1) >= 0)
    prices = CLOSE[:, None] * (1 + out["samples"])
    assert np.abs(prices - 0.01 * np.round(prices / 0.01)).max() < 1e-6
    np.testing.assert_allclose(out["mean"], out["samples"].mean(axis=1))
    assert out["spread_factor"] == SPREAD and out["calibrated"] is True


def test_same_seed_same_forecast_and_bundle_default_sample_count(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    params = {"n_samples": 8, "seed": 7, "return_samples": True}

    first = model.predict(windows(), params=params)
    again = model.predict(windows(), params=params)
    other = model.predict(windows(), params={**params, "seed": 8})

    for key in ("quantiles", "samples", "mean", "std"):
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["samples"], other["samples"])
    assert model.predict(windows(2), params={"return_samples": True})["samples"].shape == (2, 16)


def test_quantiles_only_unless_samples_are_asked_for(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")

    out = model.predict(windows(), params={"n_samples": 8})

    assert set(out) == {"quantiles", "mean", "std", "spread_factor", "calibrated"}


def test_the_bundles_spread_factor_is_applied_and_a_raw_bundle_says_so(tmp_path: Path) -> None:
    def pyfunc(spread_factor: float | None) -> DiffusionPyfunc:
        model = DiffusionPyfunc()
        bundle = tiny_bundle(tmp_path / f"{spread_factor}.pt", spread_factor)
        model.load_context(PythonModelContext(artifacts={"bundle": str(bundle)}, model_config={}))
        return model

    params = {"n_samples": 2_000, "seed": 1}
    raw = pyfunc(None).predict(None, windows(), params)
    spread = pyfunc(SPREAD).predict(None, windows(), params)

    assert raw["calibrated"] is False and raw["spread_factor"] == 1.0
    np.testing.assert_allclose(spread["std"] / raw["std"], SPREAD, rtol=0.05)  # snapping noise
    np.testing.assert_allclose(spread["quantiles"][:, 4], raw["quantiles"][:, 4], atol=1e-4)


PATH_NAME = "diffstock-tiny-paths"
HORIZONS = (10, 20, 30)


@pytest.fixture(scope="module")
def path_model(store: MLflowResource, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Version 1 of `PATH_NAME` in the store: a tiny path model (10, 20, 30 s), spread by 1.5."""
    config = dataclasses.replace(CONFIG, path_horizons=HORIZONS)
    bundle = tiny_bundle(tmp_path_factory.mktemp("paths") / "paths.pt", SPREAD, config)
    with store.start_run("path pyfunc test"):
        info = log_diffusion_model(bundle, PATH_NAME)
    return f"models:/{PATH_NAME}/{info.registered_model_version}"


def test_a_path_model_returns_its_paths_through_the_registry(path_model: str) -> None:
    """A path bundle, logged and loaded back as a pyfunc: per-horizon quantiles of paths on the
    price grid at every horizon, whose 30 s end point is the scalar answer."""
    horizons = HORIZONS
    model = mlflow.pyfunc.load_model(path_model)
    assert model.metadata.metadata["path_horizons"] == list(horizons)
    params = {"n_samples": 400, "seed": 3, "return_samples": True}
    out = model.predict(windows(), params)

    assert out["path_horizons"].tolist() == list(horizons)
    paths, quantiles = out["paths"], out["path_quantiles"]
    assert paths.shape == (len(CLOSE), 400, len(horizons))
    assert quantiles.shape == (len(CLOSE), len(horizons), len(QUANTILE_LEVELS))
    assert (np.diff(quantiles, axis=-1) >= 0).all()
    prices = CLOSE[:, None, None] * np.exp(paths)  # on the $0.01 grid at every horizon
    np.testing.assert_allclose(prices, np.round(prices, 2), atol=1e-6)
    np.testing.assert_allclose(out["samples"], np.expm1(paths[..., -1]))  # the end point
    np.testing.assert_allclose(
        quantiles[:, -1, 4], np.quantile(paths[..., -1], 0.5, axis=1), atol=1e-12
    )
    assert out["calibrated"] is True and out["spread_factor"] == SPREAD
    again = model.predict(windows(), params)
    np.testing.assert_array_equal(again["paths"], paths)  # same seed, same paths

    answer = model.predict(windows(), {"n_samples": 50})  # paths only when asked for
    assert "paths" not in answer and answer["path_quantiles"].shape[:2] == (3, 3)


def test_wrong_inputs_give_clear_errors(store: MLflowResource) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    short = {**windows(), "x": np.zeros((3, N // 2, F), dtype=np.float32)}
    ragged = {**windows(), "close": np.full(2, 100.0)}
    missing = {k: v for k, v in windows().items() if k != "close"}
    cases = [
        (short, None, r"x has shape \(3, 10, 5\); expected \(B, 20, 5\)"),
        (ragged, None, r"close has shape \(2,\); expected \(3,\)"),
        (missing, None, "inputs lack 'close'"),
        (windows(), {"n_samples": 1}, "n_samples is 1; expected 2 to 10,000"),
    ]
    for inputs, params, sentence in cases:
        # the loaded model's own copy of `InvalidRequest`: an MlflowException, HTTP 400
        with pytest.raises(MlflowException, match=sentence) as refused:
            model.predict(inputs, params=params)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
        assert type(refused.value).__name__ == InvalidRequest.__name__


def test_logged_model_has_signature_example_and_levels(store: MLflowResource) -> None:
    info = mlflow.models.get_model_info(f"models:/{NAME}/1")

    assert info.signature.inputs is None, "inputs are checked by the model, not by MLflow"
    assert {p.name: p.default for p in info.signature.params} == {
        "n_samples": 16,
        "seed": 0,
        "return_samples": False,
    }
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"
    assert info.metadata["quantile_levels"] == list(QUANTILE_LEVELS)
    assert info.metadata["feature_names"] == [f"feature_{i}" for i in range(F)]
    assert info.metadata["window_length"] == N
    assert info.metadata["limits"]["max_windows"] == LIMITS.max_windows
    assert info.metadata["spread_factor"] == SPREAD and info.metadata["calibrated"] is True
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


# --- over HTTP: one `mlflow models serve` for every request below -------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(store: MLflowResource, model_uri: str, workers: int, folder: Path) -> Iterator[str]:
    """`mlflow models serve` of `model_uri` on a loopback port: its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "models", "serve"),
                *("-m", model_uri, "--env-manager", "local"),
                *("-h", "127.0.0.1", "-p", str(port)),
            ],
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": store.tracking_uri,
                "MLFLOW_MODELS_WORKERS": str(workers),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_ping(url, process, log_path, timeout=90)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(store: MLflowResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The registered model served on a loopback port by 2 workers: its base URL."""
    with serving(store, f"models:/{NAME}/1", 2, tmp_path_factory.mktemp("serve")) as url:
        yield url


def post(url: str, body: dict) -> tuple[int, dict, float]:
    """POST `body` as JSON (NaN and Infinity written as JavaScript does): status, JSON, seconds."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response), time.perf_counter() - start
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), time.perf_counter() - start


def body(batch: int = 3, params: dict | None = None, **replace: object) -> dict:
    inputs = {k: v.tolist() for k, v in windows(batch).items()}
    return {"inputs": {**inputs, **replace}, "params": params or {}}


@pytest.mark.e2e
def test_served_model_answers_one_window_and_a_batch(server: str) -> None:
    status, one, _ = post(server, body(1, {"n_samples": 100}))
    status_batch, batch, _ = post(server, body(3, {"seed": 3, "return_samples": True}))

    assert status == status_batch == 200
    assert np.array(one["predictions"]["quantiles"]).shape == (1, len(QUANTILE_LEVELS))
    assert "samples" not in one["predictions"]
    assert one["predictions"]["calibrated"] is True
    assert one["predictions"]["spread_factor"] == SPREAD
    quantiles = np.array(batch["predictions"]["quantiles"])
    assert quantiles.shape == (3, len(QUANTILE_LEVELS))
    assert np.all(np.diff(quantiles, axis=1) >= 0)
    assert np.array(batch["predictions"]["samples"]).shape == (3, 16)


@pytest.mark.e2e
def test_a_served_path_model_answers_with_paths(
    store: MLflowResource, path_model: str, tmp_path: Path
) -> None:
    with serving(store, path_model, 1, tmp_path) as url:
        status, answer, _ = post(url, body(3, {"seed": 3, "return_samples": True}))
    assert status == 200
    predictions = answer["predictions"]
    assert predictions["path_horizons"] == list(HORIZONS)
    assert np.array(predictions["path_quantiles"]).shape == (3, 3, len(QUANTILE_LEVELS))
    paths = np.array(predictions["paths"])
    assert paths.shape == (3, 16, 3)
    np.testing.assert_allclose(predictions["samples"], np.expm1(paths[..., -1]))


def _with(array: np.ndarray, index: tuple, value: float) -> list:
    array = array.copy()
    array[index] = value
    return array.tolist()


NAN, INF = float("nan"), float("inf")
FEATURES = ", ".join(f"feature_{i}" for i in range(F))
# request -> the one sentence it is refused with (a regular expression)
BAD_REQUESTS = {
    "sigma NaN": (
        body(sigma=[NAN, 1e-3, 1e-3]),
        r"sigma\[0\] is nan; expected a finite volatility > 0 for every window",
    ),
    "sigma zero": (body(sigma=[1e-3, 0.0, 1e-3]), r"sigma\[1\] is 0.0; expected a finite"),
    "close negative": (
        body(close=[100.0, -5.0, 10.0]),
        r"close\[1\] is -5.0; expected a finite price >= 0.01 for every window",
    ),
    "close infinite": (body(close=[INF, 10.0, 10.0]), r"close\[0\] is inf; expected a finite"),
    "x NaN": (
        body(x=_with(windows()["x"], (2, 4, 1), NAN)),
        r"x\[2, 4, 1\] \(feature feature_1\) is nan, and 1 values in all are not finite",
    ),
    "window too short": (
        body(x=np.zeros((3, N - 5, F)).tolist()),
        rf"x has shape \(3, 15, 5\); expected \(B, 20, 5\): B windows of 20 seconds of the 5 "
        rf"features {FEATURES}$",
    ),
    "a feature missing": (
        body(x=np.zeros((3, N, F - 1)).tolist()),
        r"x has shape \(3, 20, 4\); expected \(B, 20, 5\)",
    ),
    "close missing": (
        {"inputs": {k: v for k, v in body()["inputs"].items() if k != "close"}},
        r"inputs lack 'close'; expected the keys 'x', 'sigma' and 'close'$",
    ),
    "sigma for fewer windows": (
        body(sigma=[1e-3, 1e-3]),
        r"sigma has shape \(2,\); expected \(3,\): one 30 s volatility per window of x$",
    ),
    "x as text": (body(x="windows"), r"x must hold numbers, got an array of shape \(\) of <U7"),
    "inputs not an object": ({"inputs": [[1.0, 2.0]]}, r"inputs must be an object with the keys"),
    "n_samples 0": (body(params={"n_samples": 0}), r"n_samples is 0; expected 2 to 10,000$"),
    "n_samples 10 million": (
        body(params={"n_samples": 10_000_000}),
        r"n_samples is 10000000; expected 2 to 10,000$",
    ),
    "too many draws": (
        body(7, {"n_samples": 10_000}, close=[10.0] * 7),
        r"7 windows x 10,000 samples = 70,000 draws is over the 64,000 a request may ask for",
    ),
    "too many windows": (
        body(LIMITS.max_windows + 1, close=[10.0] * (LIMITS.max_windows + 1)),
        rf"x holds {LIMITS.max_windows + 1} windows; a request takes 1 to {LIMITS.max_windows}$",
    ),
    "negative seed": (body(params={"seed": -1}), r"seed is -1; expected 0 to 2\*\*63 - 1$"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_requests_are_refused_fast_with_one_sentence(server: str, case: str) -> None:
    request, sentence = BAD_REQUESTS[case]

    status, answer, seconds = post(server, request)

    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    message = answer["message"]
    assert re.search(sentence, message), message
    assert "\n" not in message and len(message) < 300, "one sentence, not the input read back"
    assert seconds < 1.0, f"refused in {seconds:.2f} s: checks come before any sampling"
    with urllib.request.urlopen(f"{server}/ping", timeout=5) as ping:
        assert ping.status == 200, "the server stays up"


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

"""The diffusion forecaster as an MLflow pyfunc model: raw windows in, return quantiles out.

From Python (`mlflow.pyfunc.load_model(uri).predict(inputs, params=...)`), `inputs` is a dict of
arrays (any real dtype; `x` is used as float32, `sigma` and `close` as float64):

    {"x": [B, N, F] raw feature windows (as the `windows` asset stores them),
     "sigma": [B] the windows' 30 s volatility, "close": [B] anchor prices}

and `params` may hold `n_samples` (default: the bundle's sampler), `seed` (default 0) and
`return_samples` (default false). The result is a dict: `quantiles [B, 9]` at
`QUANTILE_LEVELS` (also in the model's metadata), `mean [B]`, `std [B]` (float64 arrays),
`samples [B, n_samples]` returns on the price grid only if asked for, and `spread_factor` /
`calibrated`: the factor applied to every window's spread (fitted on the training days, as in
`forecasts`) and whether the bundle carried one (false: raw draws, factor 1).

A path model (`ModelConfig.path_horizons`, e.g. the `demo_paths` profile) answers from one draw
of whole paths: `path_horizons [H]` (seconds after the anchor), `path_quantiles [B, H, 9]` of
the cumulative log return at each horizon (the price on the grid at every one) and, with
`return_samples`, `paths [B, n_samples, H]`; its `quantiles`, `mean`, `std` and `samples` are
those of the same paths' 30 s end point as a simple return. The spread factor scales every
horizon's deviations from its median.

Over HTTP (`mlflow models serve -m models:/NAME/VERSION --env-manager local`), POST to
`/invocations` with `Content-Type: application/json`:

    {"inputs": {"x": [[[...F numbers] ...N rows] ...B windows], "sigma": [...B], "close": [...B]},
     "params": {"n_samples": 1000, "seed": 0}}

and the answer is `{"predictions": {"quantiles": [[...9] ...B], "mean": ..., "std": ...,
"spread_factor": 1.08, "calibrated": true}}`.

Every request is checked here before any sampling (`parse_request`): a bad one is refused with
HTTP 400 and one sentence naming the field, what was expected and what came (`InvalidRequest`).
The logged signature therefore declares no input schema (MLflow would refuse a wrong shape or a
missing key itself, with a dump of the whole input as its message): the expected inputs are in
the model's metadata and checked here. Limits per request: `LIMITS`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModelContext
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

import diffstock_ml
from diffstock_ml.device import select_device
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS
from diffstock_ml.model.bundle import ModelBundle, load_bundle
from diffstock_ml.model.forecast import Forecast, PathForecast

INPUTS = ("x", "sigma", "close")
# What the served model imports (diffstock_ml itself travels as code): pinned to this environment.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "polars", "pyarrow", "exchange-calendars")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for: a request above them is refused before any sampling."""

    min_samples: int = 2  # a standard deviation needs two
    max_samples: int = 10_000
    max_windows: int = 256
    # windows x n_samples: 64 windows x 1,000 samples, ~7 s of DDIM-50 on 2 quiet cores, well
    # inside the server's 60 s request timeout
    max_draws: int = 64_000


LIMITS = Limits()
MAX_SEED = 2**63 - 1


class InvalidRequest(MlflowException):
    """A refused request: HTTP 400 (INVALID_PARAMETER_VALUE) whose message is one sentence.

    MLflow's scoring server rewrites the message of any MlflowException raised in `predict` to
    "Failed to predict data '<the whole input>'. Error: ..." (`scoring_server.invocations`);
    this exception keeps its own sentence, so a client reads what is wrong, not its input back.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._sentence

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_sentence"):  # set once, in MlflowException.__init__
            self._sentence = value


class Request(NamedTuple):
    """A checked request: arrays with their working dtypes and the sampling params."""

    x: np.ndarray  # [B, N, F] float32
    sigma: np.ndarray  # [B] float64
    close: np.ndarray  # [B] float64
    n_samples: int
    seed: int
    return_samples: bool


class DiffusionPyfunc(mlflow.pyfunc.PythonModel):
    """Loads a `save_bundle` file (artifact `bundle`) and samples forecasts of raw windows."""

    # MLflow's type-hint validation only understands `list[...]` inputs; `parse_request`
    # validates our dict of arrays instead.
    _skip_type_hint_validation = True

    def load_context(self, context: PythonModelContext) -> None:
        """Load the bundle on `model_config["device"]`, else `$DIFFSTOCK_DEVICE` (`auto`).

        The served model runs outside the Dagster project, so it reads its variables itself;
        torch's threads are set as `torch_threads` says. One tiny forecast warms the model up.
        """
        config = context.model_config or {}
        preference = config.get("device") or os.environ.get("DIFFSTOCK_DEVICE", "auto")
        threads = torch_threads(config)
        if threads is not None:
            torch.set_num_threads(threads)
        self.bundle: ModelBundle = load_bundle(
            Path(context.artifacts["bundle"]), device=select_device(preference)
        )
        n, f = self.bundle.window_length, len(self.bundle.feature_names)
        self.bundle.predict(np.zeros((1, n, f), np.float32), [1e-3], [100.0], n_samples=2)

    def predict(
        self,
        context: PythonModelContext,
        model_input,  # dict[str, np.ndarray]: see the module docstring
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Quantiles, mean and std (and samples if asked) of the 30 s return of each window;
        of the whole path too for a path model."""
        request = parse_request(model_input, params, self.bundle)
        sampling = {"n_samples": request.n_samples, "seed": request.seed, "calibrated": True}
        inputs = (request.x, request.sigma, request.close)
        if self.bundle.model.config.path_horizons:
            paths = self.bundle.sample_paths(*inputs, **sampling)
            # the 30 s end point as a simple return: on the price grid, as the paths are
            result = Forecast(torch.expm1(paths.samples[..., -1]))
        else:
            result = self.bundle.predict(*inputs, **sampling)
        out: dict[str, Any] = {
            "quantiles": result.quantiles(QUANTILE_LEVELS).numpy(),
            "mean": result.mean().numpy(),
            "std": result.std().numpy(),
        }
        if request.return_samples:
            out["samples"] = result.samples.numpy()
        if self.bundle.model.config.path_horizons:
            out.update(path_outputs(paths, request.return_samples))
        out["spread_factor"] = self.bundle.spread_factor or 1.0
        out["calibrated"] = self.bundle.calibrated
        return out


def path_outputs(paths: PathForecast, return_samples: bool) -> dict[str, np.ndarray]:
    """`path_horizons [H]`, `path_quantiles [B, H, 9]` at `QUANTILE_LEVELS` and, if asked,
    `paths [B, S, H]` (cumulative log returns, the price on the grid at every horizon)."""
    b, s, h = paths.samples.shape
    by_horizon = Forecast(paths.samples.permute(0, 2, 1).reshape(b * h, s))
    out = {
        "path_horizons": np.asarray(paths.horizons, dtype=np.int64),
        "path_quantiles": by_horizon.quantiles(QUANTILE_LEVELS).reshape(b, h, -1).numpy(),
    }
    if return_samples:
        out["paths"] = paths.samples.numpy()
    return out


def torch_threads(model_config: Mapping[str, Any]) -> int | None:
    """Torch threads for each copy of the model: `model_config["torch_threads"]`, else
    `$DIFFSTOCK_TORCH_THREADS`, else, when `$MLFLOW_MODELS_WORKERS` says how many server workers
    share this machine, its cores divided among them; None (torch's default) otherwise.

    Several workers each using every core fight over them: a 2-core host serving 2 workers
    wants 1 thread each.
    """
    chosen = model_config.get("torch_threads") or os.environ.get("DIFFSTOCK_TORCH_THREADS")
    if chosen:
        return max(1, int(chosen))
    workers = os.environ.get("MLFLOW_MODELS_WORKERS")
    if not workers:
        return None
    return max(1, len(os.sched_getaffinity(0)) // max(1, int(workers)))


def parse_request(
    model_input: Any, params: Mapping[str, Any] | None, bundle: ModelBundle, limits: Limits = LIMITS
) -> Request:
    """The checked request, or `InvalidRequest` naming the first thing wrong with it.

    Cheap (no torch work), so a refusal takes milliseconds.
    """
    if not isinstance(model_input, Mapping):
        raise InvalidRequest(
            f"inputs must be an object with the keys {_keys()}, got {_kind(model_input)}"
        )
    missing = [key for key in INPUTS if key not in model_input]
    if missing:
        raise InvalidRequest(f"inputs lack {_keys(missing)}; expected the keys {_keys()}")
    x = _numbers(model_input["x"], "x", np.float32)
    n, f = bundle.window_length, len(bundle.feature_names)
    if x.ndim != 3 or x.shape[1:] != (n, f):
        raise InvalidRequest(
            f"x has shape {tuple(x.shape)}; expected (B, {n}, {f}): B windows of {n} seconds of "
            f"the {f} features {', '.join(bundle.feature_names)}"
        )
    windows = len(x)
    if not 1 <= windows <= limits.max_windows:
        raise InvalidRequest(
            f"x holds {windows} windows; a request takes 1 to {limits.max_windows:,}"
        )
    values = {}
    for name, what in (("sigma", "30 s volatility"), ("close", "anchor price")):
        values[name] = _numbers(model_input[name], name, np.float64)
        if values[name].ndim > 1 or values[name].size != windows:
            raise InvalidRequest(
                f"{name} has shape {tuple(values[name].shape)}; expected ({windows},): "
                f"one {what} per window of x"
            )
        values[name] = values[name].reshape(windows)
    sigma, close = values["sigma"], values["close"]
    tick = bundle.sampler.tick
    _require_all(sigma, np.isfinite(sigma) & (sigma > 0), "sigma", "a finite volatility > 0")
    _require_all(close, np.isfinite(close) & (close >= tick), "close", f"a finite price >= {tick}")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        b, t, k = (int(i) for i in bad[0])
        raise InvalidRequest(
            f"x[{b}, {t}, {k}] (feature {bundle.feature_names[k]}) is {x[b, t, k]}, and "
            f"{len(bad)} values in all are not finite; expected finite raw features"
        )
    n_samples, seed, return_samples = _sampling(params or {}, windows, bundle, limits)
    return Request(x, sigma, close, n_samples, seed, return_samples)


def _sampling(
    params: Mapping[str, Any], windows: int, bundle: ModelBundle, limits: Limits
) -> tuple[int, int, bool]:
    """The checked `n_samples`, `seed` and `return_samples` of a request of `windows` windows."""
    n_samples = _integer(params, "n_samples", bundle.sampler.n_samples)
    if not limits.min_samples <= n_samples <= limits.max_samples:
        raise InvalidRequest(
            f"n_samples is {n_samples}; expected {limits.min_samples} to {limits.max_samples:,}"
        )
    if windows * n_samples > limits.max_draws:
        raise InvalidRequest(
            f"{windows} windows x {n_samples:,} samples = {windows * n_samples:,} draws is over "
            f"the {limits.max_draws:,} a request may ask for; send fewer windows or samples"
        )
    seed = _integer(params, "seed", 0)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidRequest(f"seed is {seed}; expected 0 to 2**63 - 1")
    return_samples = params.get("return_samples", False)
    if not isinstance(return_samples, bool | np.bool_):
        raise InvalidRequest(f"return_samples is {return_samples!r}; expected true or false")
    return n_samples, seed, bool(return_samples)


def _keys(keys: tuple[str, ...] | list[str] = INPUTS) -> str:
    quoted = [repr(k) for k in keys]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _numbers(value: Any, name: str, dtype: type) -> np.ndarray:
    """`value` as an array of `dtype`, refusing text, objects and nested lists of uneven length."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # nested lists of uneven lengths
        raise InvalidRequest(f"{name} must be a rectangular array of numbers ({error})") from None
    if array.dtype.kind not in "biuf":
        raise InvalidRequest(f"{name} must hold numbers, got {_kind(value)} of {array.dtype}")
    return array.astype(dtype, copy=False)


def _require_all(values: np.ndarray, ok: np.ndarray, name: str, expected: str) -> None:
    if not ok.all():
        i = int(np.argmin(ok))
        raise InvalidRequest(f"{name}[{i}] is {values[i]}; expected {expected} for every window")


def _integer(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    try:
        whole = not isinstance(value, bool | np.bool_) and float(value).is_integer()
    except (ValueError, TypeError, OverflowError):
        whole = False
    if not whole:
        raise InvalidRequest(f"{name} is {value!r}; expected an integer")
    return int(value)


def model_signature(bundle: ModelBundle) -> ModelSignature:
    """Outputs and the sampling params; no input schema (`parse_request` checks the inputs)."""
    f64 = np.dtype(np.float64)
    return ModelSignature(
        outputs=Schema(
            [
                TensorSpec(f64, (-1, len(QUANTILE_LEVELS)), "quantiles"),
                TensorSpec(f64, (-1,), "mean"),
                TensorSpec(f64, (-1,), "std"),
                TensorSpec(f64, (-1, -1), "samples"),  # only with return_samples
                # path models only: per-horizon quantiles, the horizons, the paths if asked
                TensorSpec(f64, (-1, -1, len(QUANTILE_LEVELS)), "path_quantiles"),
                TensorSpec(np.dtype(np.int64), (-1,), "path_horizons"),
                TensorSpec(f64, (-1, -1, -1), "paths"),
                TensorSpec(f64, (), "spread_factor"),
                TensorSpec(np.dtype(np.bool_), (), "calibrated"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("n_samples", "long", bundle.sampler.n_samples),
                ParamSpec("seed", "long", 0),
                ParamSpec("return_samples", "boolean", False),
            ]
        ),
    )


def model_metadata(bundle: ModelBundle, limits: Limits = LIMITS) -> dict[str, Any]:
    """What a client needs: the inputs expected, the limits, the levels and the calibration."""
    n, f = bundle.window_length, len(bundle.feature_names)
    return {
        "inputs": {
            "x": f"float32 [B, {n}, {f}] raw windows of feature_names",
            "sigma": "float64 [B] 30 s volatility, finite and > 0",
            "close": f"float64 [B] anchor price, finite and >= {bundle.sampler.tick}",
        },
        "limits": dataclasses.asdict(limits),
        "quantile_levels": list(QUANTILE_LEVELS),
        "feature_names": list(bundle.feature_names),
        "window_length": n,
        "sampler": dataclasses.asdict(bundle.sampler),
        "path_horizons": list(bundle.model.config.path_horizons),  # empty: a 30 s model
        "spread_factor": bundle.spread_factor or 1.0,
        "calibrated": bundle.calibrated,
    }


def input_example(bundle: ModelBundle, windows: int = 2) -> dict[str, np.ndarray]:
    """`windows` all-zero raw windows at a $100 anchor price (small: only shapes matter)."""
    n, f = bundle.window_length, len(bundle.feature_names)
    return {
        "x": np.zeros((windows, n, f), dtype=np.float32),
        "sigma": np.full(windows, 1e-4),
        "close": np.full(windows, 100.0),
    }


def pip_requirements() -> list[str]:
    """The served model's requirements pinned to this environment's versions."""
    pins = []
    for name in REQUIREMENTS:
        version = importlib.metadata.version(name).split("+", 1)[0]  # 2.4.0+cpu -> 2.4.0
        pins.append(f"{name}=={version}")
    return pins


def log_diffusion_model(
    bundle_path: Path,
    registered_model_name: str | None = None,
    input_example_windows: int = 2,
) -> ModelInfo:
    """Log the bundle as the pyfunc model `model` of the active run (and register it if named).

    The model is logged as code (this file) with a clean copy of `diffstock_ml`, so serving
    needs only the pinned requirements, not this project installed.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_diffusion_model needs an active run: call it inside `start_run`")
    bundle = load_bundle(Path(bundle_path), device="cpu")
    example = input_example(bundle, input_example_windows)
    with tempfile.TemporaryDirectory(prefix="diffstock-code-") as scratch:
        library = Path(scratch) / "diffstock_ml"
        shutil.copytree(
            Path(diffstock_ml.__file__).parent,
            library,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
        )
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=Path(__file__),
            artifacts={"bundle": str(bundle_path)},
            code_paths=[str(library)],
            signature=model_signature(bundle),
            input_example=(example, {"n_samples": 8, "seed": 0}),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
            metadata=model_metadata(bundle),
        )


# MLflow "models from code": loading the logged model runs this file and takes this instance.
mlflow.models.set_model(DiffusionPyfunc())

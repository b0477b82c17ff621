"""The diffusion forecaster as an MLflow pyfunc model: raw windows in, return quantiles out.

From Python (`mlflow.pyfunc.load_model(uri).predict(inputs, params=...)`), `inputs` is a dict of
numpy arrays with exactly these dtypes (the signature is enforced before `predict` runs):

    {"x": float32 [B, N, F] raw feature windows (as the `windows` asset stores them),
     "sigma": float64 [B] the windows' 30 s volatility, "close": float64 [B] anchor prices}

and `params` may hold `n_samples` (default: the bundle's sampler) and `seed` (default 0). The
result is a dict of float64 arrays: `quantiles [B, 9]` at `QUANTILE_LEVELS` (also in the model's
metadata), `samples [B, n_samples]` returns on the price grid, `mean [B]` and `std [B]`.

Over HTTP (`mlflow models serve -m models:/NAME/VERSION --env-manager local`), POST to
`/invocations` with `Content-Type: application/json`:

    {"inputs": {"x": [[[...F numbers] ...N rows] ...B windows], "sigma": [...B], "close": [...B]},
     "params": {"n_samples": 200, "seed": 0}}

and the answer is `{"predictions": {"quantiles": [[...9] ...B], "samples": ..., "mean": ...,
"std": ...}}`.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModelContext
from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

import diffstock_ml
from diffstock_ml.device import select_device
from diffstock_ml.model.bundle import QUANTILE_LEVELS, ModelBundle, load_bundle

INPUTS = ("x", "sigma", "close")
# What the served model imports (diffstock_ml itself travels as code): pinned to this environment.
REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "polars", "pyarrow", "exchange-calendars")


class DiffusionPyfunc(mlflow.pyfunc.PythonModel):
    """Loads a `save_bundle` file (artifact `bundle`) and samples forecasts of raw windows."""

    # MLflow's type-hint validation only understands `list[...]` inputs; the tensor signature
    # logged with the model validates our dict of arrays instead.
    _skip_type_hint_validation = True

    def load_context(self, context: PythonModelContext) -> None:
        """Load the bundle on `model_config["device"]`, else `$DIFFSTOCK_DEVICE` (`auto`).

        The served model runs outside the Dagster project, so it reads the variable itself.
        """
        preference = (context.model_config or {}).get("device") or os.environ.get(
            "DIFFSTOCK_DEVICE", "auto"
        )
        self.bundle: ModelBundle = load_bundle(
            Path(context.artifacts["bundle"]), device=select_device(preference)
        )

    def predict(
        self,
        context: PythonModelContext,
        model_input,  # dict[str, np.ndarray]: see the module docstring
        params: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Quantiles, samples, mean and std of the 30 s return of each window."""
        x, sigma, close = _unpack(model_input)
        params = params or {}
        n_samples = params.get("n_samples")
        result = self.bundle.predict(
            x,
            sigma,
            close,
            n_samples=None if n_samples is None else int(n_samples),
            seed=int(params.get("seed") or 0),
        )
        return {
            "quantiles": result.quantiles(QUANTILE_LEVELS).numpy(),
            "samples": result.samples.numpy(),
            "mean": result.mean().numpy(),
            "std": result.std().numpy(),
        }


def _unpack(model_input: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(x, sigma, close)` from the input dict, with a clear error for anything else."""
    if not isinstance(model_input, Mapping):
        raise TypeError(
            f"expected a dict of arrays with keys {list(INPUTS)}, got {type(model_input).__name__}"
        )
    missing = [key for key in INPUTS if key not in model_input]
    if missing:
        raise ValueError(f"input is missing {missing}; expected keys {list(INPUTS)}")
    x = np.asarray(model_input["x"], dtype=np.float32)
    sigma = np.asarray(model_input["sigma"], dtype=np.float64).reshape(-1)
    close = np.asarray(model_input["close"], dtype=np.float64).reshape(-1)
    if not len(x) == len(sigma) == len(close):
        raise ValueError(
            f"x, sigma and close must hold the same number of windows, "
            f"got {len(x)}, {len(sigma)} and {len(close)}"
        )
    return x, sigma, close


def model_signature(bundle: ModelBundle) -> ModelSignature:
    """Tensor inputs with the bundle's window shape, tensor outputs and the sampling params."""
    n, f = bundle.window_length, len(bundle.feature_names)
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    return ModelSignature(
        inputs=Schema(
            [
                TensorSpec(f32, (-1, n, f), "x"),
                TensorSpec(f64, (-1,), "sigma"),
                TensorSpec(f64, (-1,), "close"),
            ]
        ),
        outputs=Schema(
            [
                TensorSpec(f64, (-1, len(QUANTILE_LEVELS)), "quantiles"),
                TensorSpec(f64, (-1, -1), "samples"),
                TensorSpec(f64, (-1,), "mean"),
                TensorSpec(f64, (-1,), "std"),
            ]
        ),
        params=ParamSchema(
            [
                ParamSpec("n_samples", "long", bundle.sampler.n_samples),
                ParamSpec("seed", "long", 0),
            ]
        ),
    )


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
            metadata={
                "quantile_levels": list(QUANTILE_LEVELS),
                "feature_names": list(bundle.feature_names),
                "window_length": bundle.window_length,
                "sampler": dataclasses.asdict(bundle.sampler),
            },
        )


# MLflow "models from code": loading the logged model runs this file and takes this instance.
mlflow.models.set_model(DiffusionPyfunc())

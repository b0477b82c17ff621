"""Cost of the path target: the `demo_paths` model against the scalar `demo` model, one process.

Prints one JSON object with, for each model (untrained weights: the cost does not depend on
them), the training windows/s of loss + backward + AdamW step at the demo profile's batch and K
(the loader's path targets included) and the latency of one window x 1,000 samples with the
default sampler (`SamplerConfig()`: the angle solver, 5 steps), snapped to the grid (the path
model at all 30 horizons). The two models take turns in every round, so a noisy neighbour on a
shared host slows them alike; medians over rounds.

    python benchmarks/paths_model.py [--rounds 15] [--threads 2]

Data: the synthetic `tiny` market (4 symbols x 3 days, 120 s windows), generated into a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from diffstock_ml.batches import Normaliser, WindowLoader
from diffstock_ml.model import DiffusionForecaster, SamplerConfig
from diffstock_ml.model.bundle import make_bundle
from diffstock_ml.model.forecast import to_model_target, to_path_target
from diffstock_ml.pipeline import windows_from_raw
from diffstock_ml.synthetic import PROFILES as MARKETS
from diffstock_ml.synthetic import generate_market
from diffstock_ml.train.loop import adamw
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays

MODELS = ("demo", "demo_paths")
LATENCY_SAMPLES = 1_000


def tiny_days(root: Path) -> list:
    raw = root / "raw"
    generate_market(MARKETS["tiny"], raw, workers=1)
    return [
        load_day_arrays(windows_from_raw(day, root / "windows")) for day in sorted(raw.iterdir())
    ]


def step(model, optimizer, batch, k: int) -> None:
    """One training step on the model's own target (30 s z, or the standardised path)."""
    config = model.config
    if config.path_horizons:
        z = to_path_target(batch.path, batch.sigma, config)
    else:
        z = to_model_target(batch.target, batch.sigma, config)
    optimizer.zero_grad()
    model.loss(batch.x, z, k).backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = path_cost(args.rounds)
    result["threads"] = args.threads
    print(json.dumps(result, indent=1))


def path_cost(rounds: int) -> dict:
    """Training windows/s and one 1,000-sample forecast's latency of both models (medians of
    `rounds` interleaved rounds) at torch's current thread count; also what `model.py` reports."""
    with tempfile.TemporaryDirectory() as folder:
        days = tiny_days(Path(folder))
    normaliser = Normaliser.fit(days[:1])
    train = PROFILES["demo"].train
    setups = {}
    for name in MODELS:
        torch.manual_seed(0)
        config = PROFILES[name].model
        model = DiffusionForecaster(config, len(days[0].feature_names)).train()
        loader = WindowLoader(
            days,
            batch_size=train.batch_size,
            normaliser=normaliser,
            path_horizons=config.path_horizons,
        )
        bundle = make_bundle(
            config,
            model.state_dict(),
            normaliser,
            days[0].feature_names,
            120,
            SamplerConfig(n_samples=LATENCY_SAMPLES),
        )
        setups[name] = (model, adamw(model.parameters(), train), iter(loader), bundle)
    day, anchor = days[2], days[2].anchors[1_000]
    x = np.asarray(day.x[anchor[0], anchor[1] - 119 : anchor[1] + 1])[None]
    sigma, close = day.sigma[anchor[0], anchor[1]][None], day.close[anchor[0], anchor[1]][None]
    rates = {name: [] for name in MODELS}
    latency = {name: [] for name in MODELS}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, (model, optimizer, batches, bundle) in setups.items():
            start = time.perf_counter()
            for _ in range(3):
                step(model, optimizer, next(batches), train.k_noise)
            rate = 3 * train.batch_size / (time.perf_counter() - start)
            draw = bundle.sample_paths if bundle.model.config.path_horizons else bundle.predict
            start = time.perf_counter()
            draw(x, sigma, close, seed=round_)
            if round_:
                rates[name].append(rate)
                latency[name].append(1e3 * (time.perf_counter() - start))
    result = {
        name: {
            "train_windows_per_s": round(statistics.median(rates[name]), 1),
            "latency_ms_1x1000": round(statistics.median(latency[name]), 1),
            "latency_ms_iqr": [
                round(float(q), 1) for q in np.quantile(latency[name], [0.25, 0.75])
            ],
        }
        for name in MODELS
    }
    result["rounds"] = rounds
    result["precision"] = "auto (" + ("bfloat16" if _bf16() else "float32") + ")"
    return result


def _bf16() -> bool:
    from diffstock_ml.device import has_native_bfloat16

    return has_native_bfloat16(torch.device("cpu"))


if __name__ == "__main__":
    main()

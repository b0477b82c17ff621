"""Benchmark of the served model: `mlflow models serve` against the same prediction in process.

Logs a bundle as the pyfunc in a temporary MLflow store and starts the real server on 127.0.0.1
(nothing else is reached) with `MLFLOW_MODELS_WORKERS` workers. Then, with bounded requests:
- one client: one window x 1,000 samples, served and in process alternately (in process with
  torch's default threads and with the threads one worker uses), so a busy host slows all alike;
- batched: 64 windows x the bundle's 200 samples per request, the same way, then from 2 clients;
- 4 concurrent clients of one-window requests (served only);
- refused requests (`n_samples = 0`): status, latency, message.
Prints one JSON object: p50/p99 in ms, windows/s, and the ratios served / in process.
Targets: served p50 <= 1.5x in process for one client; batched windows/s >= in process / 1.5.

    python benchmarks/serving.py [--bundle PATH] [--workers 2] [--requests 20] [--batch 64]
        [--out F] [--check]

`--check` exits 1 when a target is missed.

Without --bundle it uses an untrained `demo`-profile model (sampling costs the same). With 20
requests, p99 is the slowest one or two: read it as the tail. The host's load average is printed
too: other work on a 2-core host moves every figure (~2 minutes on a quiet host).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from diffstock_assets.model.pyfunc import log_diffusion_model
from diffstock_ml.batches import Normaliser
from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.model.bundle import load_bundle, save_bundle
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.train.profiles import PROFILES

HOST = "127.0.0.1"


def demo_bundle(folder: Path) -> Path:
    """An untrained model of the `demo` profile on the 25 features and 120 s windows."""
    config = PROFILES["demo"].model
    features = len(FEATURE_COLUMNS)
    return save_bundle(
        folder / "bundle.pt",
        config,
        DiffusionForecaster(config, n_features=features).state_dict(),
        Normaliser((0.0,) * features, (1.0,) * features),
        FEATURE_COLUMNS,
        WindowConfig().length,
    )


def windows(bundle_path: Path, count: int) -> dict[str, np.ndarray]:
    bundle = load_bundle(bundle_path)
    rng = np.random.default_rng(0)
    shape = (count, bundle.window_length, len(bundle.feature_names))
    return {
        "x": (0.5 * rng.standard_normal(shape)).astype(np.float32),
        "sigma": np.full(count, 1e-3),
        "close": np.round(rng.uniform(10, 200, count), 2),
    }


def summary(
    seconds: list[float], windows_per_request: int = 1, cpu_s: float | None = None
) -> dict[str, float]:
    """p50/p99 latency, windows/s at the median, and CPU ms per request when `cpu_s` is known.

    CPU time is the steadier figure on a shared host: it counts the work, not the waiting.
    """
    ms = np.array(seconds) * 1e3
    result = {
        "requests": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "windows_per_s": round(windows_per_request * 1e3 / float(np.median(ms)), 1),
    }
    if cpu_s is not None:
        result["cpu_ms_per_request"] = round(cpu_s * 1e3 / len(ms), 1)
    return result


ONE_WINDOW_SAMPLES = 1_000


def one_params(seed: int) -> dict[str, int]:
    return {"n_samples": ONE_WINDOW_SAMPLES, "seed": seed}


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Client:
    """One keep-alive HTTP connection posting JSON to `/invocations`."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=120)

    def post(self, body: bytes) -> tuple[int, bytes, float]:
        start = time.perf_counter()
        self.connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        content = response.read()
        return response.status, content, time.perf_counter() - start


def request_body(inputs: dict, params: dict) -> bytes:
    body = {"inputs": {k: v.tolist() for k, v in inputs.items()}, "params": params}
    return json.dumps(body).encode()


def concurrent(served: Served, bodies: list[bytes], clients: int, windows_per_request: int) -> dict:
    """Latencies of `bodies` sent by `clients` at once, and the windows/s they got together."""
    cpu = cpu_seconds(served.group)
    start = time.perf_counter()
    latencies = load(served.port, bodies, clients)
    wall = time.perf_counter() - start
    return {
        **summary(latencies, windows_per_request, cpu_seconds(served.group) - cpu),
        "windows_per_s": round(len(bodies) * windows_per_request / wall, 1),
    }


def load(port: int, bodies: list[bytes], clients: int) -> list[float]:
    """Send `bodies` from `clients` concurrent connections; every answer must be a 200."""
    latencies: list[float] = []
    failures: list[str] = []
    share = [bodies[i::clients] for i in range(clients)]

    def run(mine: list[bytes]) -> None:
        client = Client(port)
        for body in mine:
            status, content, seconds = client.post(body)
            if status != 200:
                failures.append(f"{status}: {content[:300]!r}")
            latencies.append(seconds)

    threads = [threading.Thread(target=run, args=(mine,)) for mine in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, first: {failures[0]}")
    return latencies


class Served(NamedTuple):
    port: int
    group: int  # the server's process group: the CPU time of all its workers is counted
    startup_s: float


def cpu_seconds(group: int) -> float:
    """CPU seconds used so far by the live processes of process group `group` (Linux /proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp; then utime and stime, fields 14 and 15 of stat
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(uri: str, env: dict, workers: int, log: Path) -> Iterator[Served]:
    """`mlflow models serve` of `uri` on a free loopback port, in its own process group."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "models", "serve", "-m", uri),
        *("--env-manager", "local", "-h", HOST, "-p", str(port)),
    ]
    # the worker count through MLflow's own variable, so each worker can size its torch threads
    env = {**env, "MLFLOW_MODELS_WORKERS": str(workers)}
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = time.perf_counter()
        wait_for_ping(port, process, log)
        yield Served(port, process.pid, time.perf_counter() - started)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def interleaved(
    model, served: Served, inputs: dict, params: list[dict], windows_per_request: int, threads: int
) -> dict[str, dict]:
    """The same predictions in process (torch's default threads, then the `threads` one server
    worker uses) and served, alternately: a busy host slows all three alike."""
    default = torch.get_num_threads()
    local = {"in_process": default, f"in_process_{threads}_threads": threads}
    runs: dict[str, list[float]] = {name: [] for name in (*local, "served")}
    cpu = dict.fromkeys(runs, 0.0)
    for p in params:
        for name, count in local.items():
            torch.set_num_threads(count)
            before = time.process_time()
            runs[name].append(timed(lambda p=p: model.predict(inputs, params=p)))
            cpu[name] += time.process_time() - before
        torch.set_num_threads(default)
        before = cpu_seconds(served.group)
        # a new connection each time: the server drops one left idle for 5 s (keep-alive)
        status, content, seconds = Client(served.port).post(request_body(inputs, p))
        cpu["served"] += cpu_seconds(served.group) - before
        if status != 200:
            raise RuntimeError(f"the server answered {status}: {content[:300]!r}")
        runs["served"].append(seconds)
    return {name: summary(runs[name], windows_per_request, cpu[name]) for name in runs}


def refusals(port: int, one: dict, count: int) -> dict[str, object]:
    """Latency of refused requests (`n_samples = 0`) and the status they got."""
    client = Client(port)
    body = request_body(one, {"n_samples": 0})
    answers = [client.post(body) for _ in range(count)]
    ms = np.array([seconds for _, _, seconds in answers]) * 1e3
    return {
        "statuses": sorted({status for status, _, _ in answers}),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "message": json.loads(answers[0][1]).get("message", "")[:200],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_ping(port: int, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{log.read_text()}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the server did not answer /ping in {timeout} s:\n{log.read_text()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="a bundle file (default: untrained demo)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20, help="one-window requests per run")
    parser.add_argument("--batch", type=int, default=64, help="windows per batched request")
    parser.add_argument("--batches", type=int, default=4, help="batched requests per run")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    # stopped with SIGTERM, still stop the server (it runs in its own process session)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory(prefix="diffstock-bench-serving-") as scratch:
        root = Path(scratch)
        bundle = args.bundle or demo_bundle(root)
        tracking = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(tracking)
        experiment = mlflow.create_experiment("serving", artifact_location=str(root / "artifacts"))
        with mlflow.start_run(experiment_id=experiment):
            uri = log_diffusion_model(bundle).model_uri
        one, batch = windows(bundle, 1), windows(bundle, args.batch)
        model = mlflow.pyfunc.load_model(uri)
        model.predict(one, params={"n_samples": 8})  # warm-up
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking}
        threads = max(1, len(os.sched_getaffinity(0)) // args.workers)  # as each worker sets
        load_before = os.getloadavg()[0]
        with server(uri, env, args.workers, root / "serve.log") as served:
            load(served.port, [request_body(one, {"n_samples": 8})] * 4, args.workers)
            singles = [one_params(i) for i in range(args.requests)]
            single = interleaved(model, served, one, singles, 1, threads)
            batched = [{"seed": i} for i in range(args.batches)]
            batches = interleaved(model, served, batch, batched, args.batch, threads)
            bodies = [request_body(one, p) for p in singles * 2]
            four = concurrent(served, bodies, 4, 1)
            bodies = [request_body(batch, p) for p in batched]
            batch_two = concurrent(served, bodies, 2, args.batch)
            refused = refusals(served.port, one, 20)

    ratios = {
        "served_over_in_process_p50_1_client": single["served"]["p50_ms"]
        / single["in_process"]["p50_ms"],
        "in_process_over_served_batch_windows_per_s": batches["in_process"]["windows_per_s"]
        / batches["served"]["windows_per_s"],
        # what the server sustains: both workers busy
        "in_process_over_served_batch_windows_per_s_2_clients": batches["in_process"][
            "windows_per_s"
        ]
        / batch_two["windows_per_s"],
    }
    # what the server adds to the same work (the worker's thread count in process)
    overhead = {
        "served_over_in_process_same_threads_p50_1_client": single["served"]["p50_ms"]
        / single[f"in_process_{threads}_threads"]["p50_ms"],
        "served_over_in_process_same_threads_p50_batch": batches["served"]["p50_ms"]
        / batches[f"in_process_{threads}_threads"]["p50_ms"],
    }
    result = {
        "host": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # other work on the host: the figures mean little when this exceeds the cores
            "load_average_1min_at_start_and_end": [load_before, os.getloadavg()[0]],
        },
        "model": str(args.bundle or "untrained demo profile"),
        "workers": args.workers,
        "server_startup_s": round(served.startup_s, 1),
        "one_window": f"1 window x {ONE_WINDOW_SAMPLES:,} samples",
        "batch": f"{args.batch} windows x the bundle's samples per request",
        "clients_1": single,
        "clients_4_served": four,
        "batch_2_clients_served": batch_two,
        "batch_1_client": batches,
        "refused_n_samples_0": refused,
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "targets_met": {k: v <= 1.5 for k, v in ratios.items()},
        "server_overhead": {k: round(v, 2) for k, v in overhead.items()},
    }
    result["meets_targets"] = all(result["targets_met"].values())
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if args.check and not result["meets_targets"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The real Dagster UI: `dagster dev`, a GraphQL-launched run, and a headless Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import WriteFile, bar_line, utc

from diffstock_assets.groups import EVALUATION, FEATURES, INGEST, MODEL

ROOT = Path(__file__).resolve().parents[2]
# Debian's chromium; DIFFSTOCK_CHROMIUM points the test at another binary.
CHROMIUM = Path(os.environ.get("DIFFSTOCK_CHROMIUM") or "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "ui"
DAY = "20251103"
JOB = "ingest_job"
GROUPS = [INGEST, FEATURES, MODEL, EVALUATION]
ASSETS = ["clean_bars", "features", "windows", "diffusion_model", "evaluation_report"]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
GRACE_S = 15
SIGINT_GRACE_S = 3  # a clean Ctrl-C shutdown is not under test; on 2 busy cores it takes >15 s

REPOSITORIES = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes { name location { name } jobs { name } }
    }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      eventConnection { events { __typename ... on MessageEvent { message } } }
    }
    ... on Error { message }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($partition: String!) {
  assetOrError(assetKey: {path: ["clean_bars"]}) {
    __typename
    ... on Asset { assetMaterializations(partitions: [$partition]) { partition runId } }
    ... on Error { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


def _pids_with_env(marker: str) -> list[int]:
    """Processes (Linux /proc) whose environment holds `marker`: everything the server spawned."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ.split(b"\0") and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _stop(process: subprocess.Popen[bytes], marker: str) -> None:
    """Ctrl-C the server's process group (SIGINT, as a terminal does), SIGKILL what is left of
    the group once the server has exited or after a grace period, reap stragglers."""
    pgid = process.pid  # start_new_session=True: the server leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=SIGINT_GRACE_S)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=GRACE_S)
    # Children that left the group (code servers, run workers) still carry our DAGSTER_HOME.
    for pid in _pids_with_env(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and (_group_alive(pgid) or _pids_with_env(marker)):
        time.sleep(0.2)
    assert not _group_alive(pgid), "dagster dev left processes in its group"
    assert not _pids_with_env(marker), "dagster processes were left behind"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies count as alive for killpg; ignore a group whose only members are reaped zombies.
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Server:
    def __init__(self, url: str, stderr: Path) -> None:
        self.url = url
        self.stderr = stderr

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]


@pytest.fixture
def dagster_server(tmp_path: Path, write_file: WriteFile, raw_root: Path) -> Iterator[Server]:
    # One tiny day (one line, forward-filled to a full session) keeps the run short; no
    # _SUCCESS marker, so the new_trading_days sensor leaves the day alone for two minutes.
    write_file(DAY, "AMD.csv", [bar_line("AMD", utc(DAY, "14:30:00"), 100.0)])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # The UI's one-time "Join the Dagster community" dialog would cover the pages.
    (home / ".nux").mkdir()
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(raw_root),
        "DIFFSTOCK_PROFILE": "tiny",
    }
    env.pop("DIFFSTOCK_LAKE", None)
    stdout, stderr = tmp_path / "dagster_dev.out", tmp_path / "dagster_dev.err"
    command = [sys.executable, "-m", "dagster", "dev", "-m", "dagster_project.definitions"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None:
                pytest.fail(f"dagster dev exited with {process.returncode}:\n{_tail(stderr)}")
            if time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not answer in {SERVER_TIMEOUT_S} s:\n{_tail(stderr)}")
            time.sleep(1)
        yield Server(url, stderr)
    finally:
        _stop(process, f"DAGSTER_HOME={home}")


def _launch_and_wait(server: Server) -> str:
    repositories = server.graphql(REPOSITORIES)["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    (repository,) = [r for r in repositories["nodes"] if JOB in {j["name"] for j in r["jobs"]}]
    selector = {
        "repositoryLocationName": repository["location"]["name"],
        "repositoryName": repository["name"],
        "jobName": JOB,
    }
    params = {
        "selector": selector,
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }
    launched = server.graphql(LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        run = server.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]
        status = run.get("status")
        if status in {"SUCCESS", "FAILURE", "CANCELED"} or time.monotonic() > deadline:
            break
        time.sleep(2)
    if status != "SUCCESS":
        events = run.get("eventConnection", {}).get("events", [])
        messages = "\n".join(e.get("message", "") for e in events[-25:])
        pytest.fail(f"run {run_id} ended {status}:\n{messages}\n{_tail(server.stderr)}")
    return run_id


def _in_ci() -> bool:
    """Whether CI is set to a true value (`.ci/run` exports CI=1, as most CI services do)."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


def _missing_browser() -> str | None:
    """What the headless browser test lacks and how to install it; None when nothing."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"playwright is not importable ({error}): pip install playwright"
    return None


@pytest.fixture
def browser_ready() -> None:
    """Before starting any server: fail in CI, skip elsewhere, when the browser is missing."""
    if (missing := _missing_browser()) is None:
        return
    if _in_ci():
        pytest.fail(f"CI is set, so the UI test cannot skip: {missing}", pytrace=False)
    pytest.skip(missing)


def _screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copy(path, tmp_path / path.name)
    return path


@pytest.mark.e2e
def test_ui_shows_a_materialised_day(
    browser_ready: None, dagster_server: Server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    run_id = _launch_and_wait(dagster_server)
    asset = dagster_server.graphql(MATERIALIZATIONS, {"partition": DAY})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    assert {(m["partition"], m["runId"]) for m in asset["assetMaterializations"]} == {(DAY, run_id)}

    url = dagster_server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)

            # Global lineage; `expanded` opens every group box (else only group names show).
            expanded = ",".join(f"global@global:{group}" for group in GROUPS)
            page.goto(f"{url}/asset-groups?expanded={quote(expanded)}")
            for name in ASSETS:
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            _screenshot(page, "asset_graph", tmp_path)

            page.goto(f"{url}/assets")
            for name in ASSETS:
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            _screenshot(page, "asset_catalog", tmp_path)

            page.goto(f"{url}/assets/clean_bars")
            expect(page.get_by_text("clean_bars").first).to_be_visible()
            expect(page.get_by_text("Latest materialization").first).to_be_visible()
            expect(page.get_by_text(DAY, exact=True).first).to_be_visible()
            _screenshot(page, "clean_bars", tmp_path)
        finally:
            browser.close()

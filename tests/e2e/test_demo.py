"""The README's run command, end to end on the tiny profile, into a persistent instance."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from diffstock_assets.partitions import trading_days

ROOT = Path(__file__).resolve().parents[2]
DAYS = ["20251031", "20251103", "20251104"]


@pytest.mark.e2e
def test_demo_command_builds_every_day_into_the_instance(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIFFSTOCK_", "DAGSTER_HOME"))}
    env["DIFFSTOCK_DATA"] = str(tmp_path)
    env["DIFFSTOCK_PROFILE"] = "tiny"  # 1/1/1-day splits and a small model: trains in seconds
    command = [sys.executable, "-m", "dagster_project.demo", "--profile", "tiny"]
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    assert "3/3 trading days materialised" in completed.stdout
    assert f"DAGSTER_HOME={tmp_path / 'dagster_home'} dagster dev" in completed.stdout

    assert sorted(p.name for p in (tmp_path / "demo" / "raw").iterdir()) == DAYS
    assert (tmp_path / "demo" / "raw_latent").is_dir()  # beside the raw folder, not inside
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        for asset in ("clean_bars", "features", "windows"):
            status = instance.get_status_by_partition(dg.AssetKey(asset), DAYS, trading_days)
            assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}, asset
        model = instance.get_latest_materialization_event(dg.AssetKey("diffusion_model"))
        assert model.asset_materialization.partition == DAYS[-1]
    assert "mlflow ui --backend-store-uri sqlite:///" in completed.stdout

    # a second run keeps the generated market (the pipeline itself is rerun by other tests)
    from dagster_project.demo import ensure_demo_market
    from dagster_project.settings import Settings

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "demo" / "raw").rglob("*.csv")}
    ensure_demo_market(Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path)}), "tiny")
    assert {p: p.stat().st_mtime_ns for p in before} == before

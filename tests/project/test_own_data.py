"""A researcher's own data: any history since 2000, any number of sessions, clear errors."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from conftest import WriteFile, bar_line, utc

from dagster_project import demo
from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.model.config import DiffusionModelConfig
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import RawDataResource


def test_every_session_since_2000_is_a_partition() -> None:
    keys = trading_days.get_partition_keys()
    assert keys[0] == "20000103"
    assert {"20011010", "20131007", "20131011", "20200316"} <= set(keys)
    assert "20010911" not in keys and "20121029" not in keys  # markets closed (9/11, Sandy)


def test_folders_outside_the_calendar_are_listed_as_ignored(
    write_file: WriteFile, raw_root: Path
) -> None:
    for day in ("19991231", "20131007", "20131012"):  # before 2000, a session, a Saturday
        write_file(day, "AMD.csv", [bar_line("AMD", utc("20131007", "13:30:00"), 10.0)])
    keys, ignored = RawDataResource(root=str(raw_root)).session_keys()
    assert keys == ["20131007"]
    assert ignored == ["19991231: not an NYSE session", "20131012: not an NYSE session"]


def test_diffstock_split_overrides_the_profile_and_the_as_of_mapping(tmp_path: Path) -> None:
    settings = Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_SPLIT": "3,1,1"})
    profile = settings.resolved_profile()
    assert (profile.name, profile.split, profile.days) == ("demo", (3, 1, 1), 5)
    defs = build_definitions(settings)
    for asset in ("diffusion_model", "forecasts"):
        mapping = defs.resolve_assets_def(asset).get_partition_mapping(dg.AssetKey("windows"))
        assert mapping.start_offset == -4, asset


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3,1", "three whole numbers of days train,val,test such as 3,1,1, got '3,1'"),
        ("3,x,1", "three whole numbers"),
        ("3,0,1", "at least one day per part"),
    ],
)
def test_a_bad_split_names_the_variable_and_the_form(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"DIFFSTOCK_SPLIT: .*{message[:20]}"):
        Settings.from_env({"DIFFSTOCK_SPLIT": value})


def test_the_model_run_config_re_divides_the_same_sessions() -> None:
    profile = Settings.from_env({"DIFFSTOCK_SPLIT": "3,1,1"}).resolved_profile()
    assert DiffusionModelConfig(split="2,2,1").resolve_split(profile).split == (2, 2, 1)
    assert DiffusionModelConfig().resolve_split(profile) is profile
    with pytest.raises(ValueError, match="covers 4 days, but the model maps back 5 sessions"):
        DiffusionModelConfig(split="2,1,1").resolve_split(profile)


def _main(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys, **env: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))  # restored afterwards
    monkeypatch.setenv("DIFFSTOCK_DATA", str(tmp_path / "data"))
    for key in ("DIFFSTOCK_PROFILE", "DIFFSTOCK_SPLIT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = demo.main([])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_main_command_on_a_missing_raw_folder(monkeypatch, tmp_path: Path, capsys) -> None:
    code, _, err = _main(monkeypatch, tmp_path, capsys, DIFFSTOCK_RAW=str(tmp_path / "nope"))
    assert code == 1
    assert err == (
        f"error: the raw folder {tmp_path / 'nope'} does not exist: set DIFFSTOCK_RAW to the "
        "folder that holds your day folders (YYYYMMDD/SYMBOL.csv)\n"
    )


def test_the_main_command_on_an_empty_raw_folder(monkeypatch, tmp_path: Path, capsys) -> None:
    (tmp_path / "raw").mkdir()
    code, _, err = _main(monkeypatch, tmp_path, capsys, DIFFSTOCK_RAW=str(tmp_path / "raw"))
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: no session folders in {tmp_path / 'raw'}")


def test_the_main_command_says_how_many_sessions_it_found_and_needs(
    monkeypatch, tmp_path: Path, capsys, write_file: WriteFile, raw_root: Path
) -> None:
    for day in ("20131007", "20131008", "20131010"):
        write_file(day, "AMD.csv", [bar_line("AMD", utc(day, "13:30:00"), 10.0)])
    code, _, err = _main(monkeypatch, tmp_path, capsys, DIFFSTOCK_RAW=str(raw_root))
    assert code == 1 and err.count("\n") == 1
    assert f"found 3 sessions in {raw_root}, but the demo profile's split 6/2/2 needs 10" in err
    assert "DIFFSTOCK_SPLIT=train,val,test (e.g. 3,1,1)" in err

    code, _, err = _main(
        monkeypatch, tmp_path, capsys, DIFFSTOCK_RAW=str(raw_root), DIFFSTOCK_SPLIT="1,1,1"
    )
    assert code == 1 and err.count("\n") == 1  # 20131009 is a session without a folder
    assert "the model as of 20131010 needs the 3 sessions 20131008..20131010" in err
    assert "1 have no raw folder: 20131009" in err


def test_a_bad_split_stops_the_main_command_in_one_line(monkeypatch, tmp_path, capsys) -> None:
    code, _, err = _main(monkeypatch, tmp_path, capsys, DIFFSTOCK_SPLIT="10")
    assert code == 2 and err.startswith("error: DIFFSTOCK_SPLIT: ") and err.count("\n") == 1


def test_the_main_command_prints_only_that_line_from_a_fresh_interpreter(tmp_path: Path) -> None:
    """As a person runs it: no import-time warnings (Dagster's beta notice on
    `backfill_policy`) and no traceback around the one line."""
    env = {**os.environ, "DIFFSTOCK_RAW": str(tmp_path / "nope"), "DIFFSTOCK_DATA": str(tmp_path)}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "dagster_project.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: the raw folder ") and done.stderr.count("\n") == 1

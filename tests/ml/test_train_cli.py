"""`python -m diffstock_ml.train` on arguments a person gets wrong: one line naming the problem
and the fix, exit 1, no traceback, before any training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diffstock_ml.train.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str], out: Path) -> str:
    assert main([*argv, "--out", str(out), "--profile", "tiny"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()  # nothing written before the check
    return lines[0]


def test_a_missing_window_folder_is_named(tmp_path: Path, capsys) -> None:
    line = _error_line(capsys, ["--windows", str(tmp_path / "20251103")], tmp_path / "run")
    assert "do not exist" in line and "20251103" in line and "`windows` asset" in line


def test_a_folder_the_windows_asset_did_not_write_is_named(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "20251103"
    empty.mkdir()
    line = _error_line(capsys, ["--windows", str(empty)], tmp_path / "run")
    assert "meta.json" in line and str(empty) in line


def test_too_few_days_for_the_split_say_how_many_and_the_fix(
    tiny_windows: list[Path], tmp_path: Path, capsys
) -> None:
    argv = ["--windows", *map(str, tiny_windows[:2])]  # the tiny profile's split needs 3
    line = _error_line(capsys, argv, tmp_path / "run")
    assert "found 2 distinct day folder(s)" in line and "needs exactly 3" in line
    assert "--split" in line
    line = _error_line(capsys, [*argv, "--split", "2", "1", "1"], tmp_path / "run")
    assert "2/1/1" in line and "needs exactly 4" in line


def test_the_command_line_exits_1_with_one_line(tmp_path: Path) -> None:
    """The same through the interpreter, as a person runs it (an unmatched shell glob)."""
    command = [sys.executable, "-m", "diffstock_ml.train", "--windows", str(tmp_path / "2025*")]
    command += ["--out", str(tmp_path / "run")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ")

"""The README stays true: its two commands, the CI command, and the feature list."""

from pathlib import Path

from diffstock_ml.features import FEATURE_COLUMNS, OUTPUT_TABLE

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _setup_commands() -> list[str]:
    block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    assert README.startswith("# diffstock\n\n```bash\n")
    run, test = _setup_commands()
    assert run.startswith("python -m pip install -e . && ")
    assert test.startswith('python -m pip install -e ".[dev]" && ')


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_every_feature_is_documented_in_the_readme() -> None:
    for name in (*FEATURE_COLUMNS, *OUTPUT_TABLE):
        assert f"`{name}`" in README, name

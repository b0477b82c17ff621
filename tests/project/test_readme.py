"""The README stays true: its two commands, the CI command, the feature list and every link."""

import re
from pathlib import Path

import pytest

from diffstock_ml.features import FEATURE_COLUMNS, OUTPUT_TABLE, feature_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ASSETS_DOC = ROOT / "docs" / "assets.md"  # the per-asset reference, feature table included
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _setup_commands() -> list[str]:
    block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _prose(path: Path) -> str:
    """The file without its fenced code blocks (their `#` lines are not headings)."""
    return _FENCE.sub("", path.read_text())


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", _prose(path), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    assert README.startswith("# diffstock\n\n```bash\n")
    run, test = _setup_commands()
    assert run.startswith("python -m pip install -e . && ")
    assert test.startswith('python -m pip install -e ".[dev]" && ')


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_every_feature_is_documented_in_the_assets_doc() -> None:
    doc = ASSETS_DOC.read_text()
    for name in (*FEATURE_COLUMNS, *OUTPUT_TABLE):
        assert f"| `{name}` |" in doc, name
    # the table itself, meanings included, as `feature_table()` renders it
    assert feature_table().strip() in doc
    assert "docs/assets.md" in README  # and the README points there


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(path: Path) -> None:
    broken = []
    for target in _LINK.findall(_prose(path)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"

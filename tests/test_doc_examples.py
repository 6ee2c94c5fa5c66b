"""Every task file the project shows a user must load: README and docs TOML blocks, examples/.

Paths are resolved from this file, so the tests collect the same files from any working
directory (a relative glob silently collects nothing when pytest runs elsewhere).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distill.task import load_task

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def toml_blocks() -> list[tuple[str, str]]:
    """(where, text) of every fenced TOML block in README.md and docs/*.md."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", m.group(1)))
    return found


def test_the_readme_shows_a_task_file() -> None:
    """Guards the collection itself: an empty parametrisation would pass silently."""
    assert any(where.startswith("README.md") for where, _ in toml_blocks())


@pytest.mark.parametrize(("where", "text"), toml_blocks(), ids=lambda v: str(v)[:40])
def test_documented_task_files_load(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(text, encoding="utf-8")
    spec = load_task(path)  # raises UserError naming the key on any problem
    assert spec.demonstrations, where

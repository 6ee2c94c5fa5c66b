"""Every fenced TOML block in the README and the guides is a task file that loads as written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from distill.task import parse_task

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def toml_blocks() -> list[tuple[str, str]]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, m in enumerate(FENCE.finditer(path.read_text(encoding="utf-8")), start=1):
            found.append((f"{path.name}#{n}", m.group(1)))
    return found


@pytest.mark.parametrize(("where", "text"), toml_blocks(), ids=[w for w, _ in toml_blocks()])
def test_documented_task_files_load(where: str, text: str) -> None:
    parse_task(tomllib.loads(text), source=where)  # a UserError names the block and the key


def test_readme_has_task_blocks() -> None:
    assert len([w for w, _ in toml_blocks() if w.startswith("README")]) >= 2

"""Atomic writes leave either the old or the new file, never a half-written one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.files import atomic_dir, atomic_write_json
from common.jsonl import read_jsonl
from distill.errors import UserError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_failed_dir_build_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "onnx"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("crash mid-export")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no examples"),
        ('{"input": "a"}\n', "t.jsonl:1: field 'output' must be a string"),
        ('{"input": "a", "output": 3}\n', "t.jsonl:1: field 'output' must be a string"),
        ('{"input": "a", "output": "b"}\n{bad\n', "t.jsonl:2: invalid JSON"),
        ('{"input": " ", "output": "b"}\n', "t.jsonl:1: field 'input' is empty"),
    ],
)
def test_read_jsonl_errors(tmp_path: Path, content: str, message: str) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        read_jsonl(p)

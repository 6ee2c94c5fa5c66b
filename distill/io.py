"""Atomic artefact writes and validated JSONL reading.

Every artefact goes to a temporary name in the same directory and is renamed into place, so a
crash never leaves a half-written file behind (rename is atomic on POSIX within a filesystem).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill.errors import UserError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) atomically, fsync'd before the rename."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSON Lines atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name, then swap it into place.

    An existing directory at `path` is replaced only after the new one is complete.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_jsonl(
    path: str | Path, required: tuple[str, ...] = ("input", "output"), allowed: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Read a JSONL file of objects whose `required` fields are non-empty strings.

    Raises UserError naming the file and line for: a missing file, non-UTF-8 bytes, bad JSON, a
    missing or non-string field, an unknown field (when `allowed` is given), or no rows at all.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 (byte {exc.start})") from None
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows.append(_parse_row(p, lineno, line, required, allowed))
    if not rows:
        raise UserError(f"{p}: no examples (the file is empty)")
    return rows


def _parse_row(
    p: Path, lineno: int, line: str, required: tuple[str, ...], allowed: tuple[str, ...]
) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise UserError(f"{p}:{lineno}: each line must be a JSON object")
    for key in required:
        value = row.get(key)
        if not isinstance(value, str):
            raise UserError(f"{p}:{lineno}: field '{key}' must be a string (got {value!r:.40})")
        if not value.strip():
            raise UserError(f"{p}:{lineno}: field '{key}' is empty")
    if allowed:
        unknown = sorted(set(row) - set(allowed) - set(required))
        if unknown:
            raise UserError(
                f"{p}:{lineno}: unknown field '{unknown[0]}' (allowed: {', '.join(allowed)})"
            )
    return row


def append_jsonl(fh: Any, row: dict[str, Any]) -> None:
    """Append one row to an open text file and flush+fsync so a kill loses nothing accepted."""
    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())

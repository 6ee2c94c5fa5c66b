"""Atomic artefact writes: files and whole directories appear complete or not at all.

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


def files_size(paths: Iterable[Path]) -> int:
    """Total bytes of the regular files among `paths` (missing ones and folders count 0)."""
    return sum(p.stat().st_size for p in paths if p.is_file())


def read_json(path: Path, expect: type = dict, what: str = "") -> Any:
    """Read a JSON document of type `expect` (dict or list), naming the file when it is
    missing (FileNotFoundError, "{path}: {what} not found") or broken (ValueError)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what + ' ' if what else ''}not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, expect):
        kind = "a JSON object" if expect is dict else f"a JSON {expect.__name__}"
        raise ValueError(f"{path}: expected {kind}")
    return data


def read_json_object(path: Path) -> dict[str, Any]:
    """Read a JSON object (see `read_json`)."""
    return read_json(path, dict)


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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` atomically (a PNG, say), fsync'd before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSON Lines atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_text(path, text)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished directory `tmp` onto `target`, replacing any directory there.

    Two renames (old aside, new in) rather than a delete first, so a crash between them
    leaves either the old or the new directory under a known name, never a half-deleted one.
    """
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name, then swap it into place.

    An existing directory at `path` is replaced only after the new one is complete; if the
    block raises, the temporary directory is removed and `path` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

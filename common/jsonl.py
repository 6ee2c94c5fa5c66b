"""Validated reading of JSON Lines files (test sets, training data, label-mode inputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import UserError


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
    rows = [
        parse_row(f"{p}:{lineno}", line, required, allowed)
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not rows:
        raise UserError(f"{p}: no examples (the file is empty)")
    return rows


def parse_row(
    where: str, line: str, required: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One JSON object with its `required` string fields checked; `where` prefixes errors."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: invalid JSON ({exc.msg})") from None
    return check_row(where, row, required, allowed)


def check_row(
    where: str, row: Any, required: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`row` if it is an object whose `required` fields are non-empty strings, else UserError."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: each line must be a JSON object")
    for key in required:
        value = row.get(key)
        if not isinstance(value, str):
            raise UserError(f"{where}: field '{key}' must be a string (got {value!r:.40})")
        if not value.strip():
            raise UserError(f"{where}: field '{key}' is empty")
    if allowed:
        unknown = sorted(set(row) - set(allowed) - set(required))
        if unknown:
            raise UserError(
                f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(allowed)})"
            )
    return row

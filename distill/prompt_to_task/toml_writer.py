"""Write a task spec as TOML (no writer ships with Python; the subset needed here is small)."""

from __future__ import annotations

from typing import Any

from distill.prompt_to_task.parser import ParsedPrompt


def toml_string(s: str) -> str:
    """A TOML basic string: multi-line text uses escaped newlines, control characters \\u escapes."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def render_task_toml(
    parsed: ParsedPrompt, *, name: str, tables: dict[str, dict[str, Any]] | None = None
) -> str:
    """The task.toml text: notes as comments, then name, instruction, demonstrations, tables."""
    lines = [f"# Written by `distill init` (parsed with: {parsed.method}). Edit freely."]
    lines += [f"# Note: {' '.join(n.split())}" for n in parsed.notes]
    lines += [f"name = {toml_string(name)}", f"instruction = {toml_string(parsed.instruction)}"]
    for demo in parsed.demonstrations:
        lines += ["", "[[demonstrations]]", f"input = {toml_string(demo.input)}"]
        lines.append(f"output = {toml_string(demo.output)}")
    for table, values in (tables or {}).items():
        lines += ["", f"[{table}]"] + [
            f"{k} = {_value(v)}" for k, v in values.items() if v is not None
        ]
    return "\n".join(lines) + "\n"

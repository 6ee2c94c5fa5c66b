"""The task spec: a TOML file with an instruction and demonstrations, validated into dataclasses.

    name = "dates"
    instruction = "Rewrite the date in the format MM/DD/YYYY."
    [[demonstrations]]
    input = "20.08.2010"
    output = "08/20/2010"
    license = "cc-by-4.0"   # optional: the data and model cards' license (default "unknown")
    [generate]          # optional; keys mirror `distill generate` flags
    num_examples = 200
    [train]             # optional; keys mirror `distill train` flags
    epochs = 3

Every problem is a UserError naming the file and the key, never a traceback.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import UserError
from distill.stages import STAGES

TABLE_KEYS = STAGES  # one optional table per stage
TOP_LEVEL_KEYS = (
    "name",
    "instruction",
    "demonstrations",
    "description",
    "license",
    *TABLE_KEYS,
)


@dataclass(frozen=True)
class Demonstration:
    """One input/output pair written by the user."""

    input: str
    output: str
    # Optional: why the output is right, shown to the teacher before "Answer: <output>" in
    # chain-of-thought label prompts. Without it the teacher writes one (generate/rationale.py).
    rationale: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A validated task: what the teacher is asked to do and what the student learns."""

    name: str
    instruction: str
    demonstrations: tuple[Demonstration, ...]
    description: str = ""
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None
    # The license of the data and models made from this task (a hub license id such as
    # "cc-by-4.0"); "" leaves it "unknown" on the cards: the teacher's terms may restrict use.
    license: str = ""

    def table(self, name: str) -> dict[str, Any]:
        """The raw optional table (`generate`, `train`, ...), empty when absent."""
        return dict(self.tables.get(name, {}))


def load_task(path: str | Path) -> TaskSpec:
    """Read and validate a task TOML file; raise UserError naming the file and key on any problem."""
    p = Path(path)
    data = _read_toml(p)
    return parse_task(data, source=str(p), path=p)


def _read_toml(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise UserError(f"{p}: task file not found")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{p}: not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{p}: invalid TOML ({exc})") from None


def parse_task(
    data: dict[str, Any], source: str = "task.toml", path: Path | None = None
) -> TaskSpec:
    """Validate a parsed TOML document into a TaskSpec."""
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise UserError(
            f"{source}: unknown key '{unknown[0]}' (allowed: {', '.join(TOP_LEVEL_KEYS)})"
        )
    name = _required_str(data, "name", source)
    instruction = _required_str(data, "instruction", source)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{source}: key 'description' must be a string")
    license_ = data.get("license", "")
    if not isinstance(license_, str):
        raise UserError(f"{source}: key 'license' must be a string (a license id, e.g. \"mit\")")
    demos = _demonstrations(data, source)
    tables = {k: _table(data, k, source) for k in TABLE_KEYS if k in data}
    spec = TaskSpec(name, instruction, demos, description, tables, path, license_.strip())
    validate_tables(spec, source)
    return spec


def _required_str(data: dict[str, Any], key: str, source: str) -> str:
    if key not in data:
        raise UserError(f"{source}: missing key '{key}'")
    value = data[key]
    if not isinstance(value, str):
        raise UserError(f"{source}: key '{key}' must be a string (got {type(value).__name__})")
    if not value.strip():
        raise UserError(f"{source}: key '{key}' is empty")
    return value.strip()


def _demonstrations(data: dict[str, Any], source: str) -> tuple[Demonstration, ...]:
    demos = data.get("demonstrations")
    if demos is None:
        raise UserError(
            f"{source}: missing key 'demonstrations' (add at least one [[demonstrations]] with input and output)"
        )
    if not isinstance(demos, list) or not demos:
        raise UserError(
            f"{source}: key 'demonstrations' needs at least one [[demonstrations]] table"
        )
    out = []
    for i, demo in enumerate(demos, start=1):
        where = f"{source}: demonstrations[{i}]"
        if not isinstance(demo, dict):
            raise UserError(f"{where} must be a table with 'input' and 'output'")
        extra = sorted(set(demo) - {"input", "output", "rationale"})
        if extra:
            raise UserError(
                f"{where}: unknown key '{extra[0]}' (allowed: input, output, rationale)"
            )
        fields = []
        for key in ("input", "output"):
            value = demo.get(key)
            if value is None:
                raise UserError(f"{where}: missing key '{key}'")
            if not isinstance(value, str):
                raise UserError(f"{where}: key '{key}' must be a string")
            if not value.strip():
                raise UserError(f"{where}: key '{key}' is empty")
            fields.append(value)
        rationale = demo.get("rationale", "")
        if not isinstance(rationale, str):
            raise UserError(f"{where}: key 'rationale' must be a string")
        if "rationale" in demo and not rationale.strip():
            raise UserError(
                f"{where}: key 'rationale' is empty (remove it to have the teacher write one)"
            )
        out.append(Demonstration(*fields, rationale=rationale.strip()))
    return tuple(out)


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data[key]
    if not isinstance(value, dict):
        raise UserError(f"{source}: '{key}' must be a table ([{key}])")
    return value


def validate_tables(spec: TaskSpec, source: str) -> None:
    """Check every optional table against its stage's config dataclass (unknown keys, types)."""
    from distill.configs import build_config
    from distill.stages import STAGE_CONFIGS

    for name, table in spec.tables.items():
        build_config(STAGE_CONFIGS[name](), table, source=source, section=name)

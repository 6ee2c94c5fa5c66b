"""The generate stage: the teacher writes (or labels) the training set into RUN/data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.jsonl import read_jsonl
from distill.errors import UserError

if TYPE_CHECKING:
    from distill.generate.config import GenerateConfig
    from distill.task import TaskSpec
    from teachers.config import TeacherConfig


def check_generate(cfg: GenerateConfig) -> None:
    """What the config dataclass cannot check alone: the --inputs file exists."""
    if cfg.inputs and not Path(cfg.inputs).is_file():
        raise UserError(f"--inputs: {cfg.inputs}: file not found")


def excluded_inputs(path: str | Path | None) -> list[str]:
    """Inputs that must never appear in the data (a test set's `input` fields)."""
    return [r["input"] for r in read_jsonl(path, required=("input",))] if path else []


def generate_data(
    task: TaskSpec,
    cfg: GenerateConfig,
    teacher_cfg: TeacherConfig,
    out_dir: Path,
    exclude_inputs: list[str] | None = None,
) -> dict[str, Any]:
    """Generate (or resume generating) into `out_dir`; returns the manifest (see generate/run)."""
    from distill.generate.run import run_generate

    check_generate(cfg)
    return run_generate(task, cfg, teacher_cfg, Path(out_dir), exclude_inputs=exclude_inputs or [])

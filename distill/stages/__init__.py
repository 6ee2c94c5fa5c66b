"""The pipeline's stages: one library implementation each, called by its own subcommand and by
`distill run` alike (the commands only parse flags and print).

    generate.py  the teacher writes the data           (`distill generate`)
    train.py     the student learns it                 (`distill train`)
    refine.py    active rounds where the student fails (`distill refine`, `distill run --rounds`)
    export.py    int8 ONNX behind the quality gate     (`distill export`)
    evaluate.py  student and teacher scored            (`distill eval`)
    run.py       all four in order, skipping what is up to date (`distill run`)

This module is the one list of stages with settings: each maps to its config dataclass, which
is both a task.toml table and a set of flags. Imported lazily so that `distill --help` and task
validation never import torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill.task import TaskSpec


def _teacher() -> type:
    from teachers.config import TeacherConfig

    return TeacherConfig


def _generate() -> type:
    from distill.generate.config import GenerateConfig

    return GenerateConfig


def _train() -> type:
    from students.config import TrainConfig

    return TrainConfig


def _refine() -> type:
    from distill.refine.config import RefineConfig

    return RefineConfig


def _export() -> type:
    from exports.config import ExportConfig

    return ExportConfig


def _eval() -> type:
    from distill.evaluation.config import EvalConfig

    return EvalConfig


# Stage (and task.toml table) -> its config dataclass, in pipeline order.
STAGE_CONFIGS: dict[str, Callable[[], type]] = {
    "teacher": _teacher,
    "generate": _generate,
    "train": _train,
    "refine": _refine,
    "export": _export,
    "eval": _eval,
}
STAGES: tuple[str, ...] = tuple(STAGE_CONFIGS)


def stage_config(
    stage: str,
    task: TaskSpec | None,
    args: argparse.Namespace | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """The stage's config: defaults < task.toml [stage] table < `extra` < flags in `args`."""
    from distill.configs import build_config

    table = task.table(stage) if task else {}
    source = str(task.path) if task and task.path else "task.toml"
    return build_config(
        STAGE_CONFIGS[stage](), table, args, source=source, section=stage, extra=extra
    )

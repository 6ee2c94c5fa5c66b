"""Which config dataclass each task.toml table (and each subcommand's flags) maps to.

Imported lazily so that `distill --help` and task validation never import torch.
"""

from __future__ import annotations

from collections.abc import Callable


def _teacher() -> type:
    from teachers.config import TeacherConfig

    return TeacherConfig


def _generate() -> type:
    from distill.generate.config import GenerateConfig

    return GenerateConfig


def _train() -> type:
    from students.config import TrainConfig

    return TrainConfig


def _export() -> type:
    from exports.config import ExportConfig

    return ExportConfig


def _eval() -> type:
    from distill.evaluation.config import EvalConfig

    return EvalConfig


STAGE_CONFIGS: dict[str, Callable[[], type]] = {
    "teacher": _teacher,
    "generate": _generate,
    "train": _train,
    "export": _export,
    "eval": _eval,
}

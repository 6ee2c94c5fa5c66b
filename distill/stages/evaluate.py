"""The eval stage: score one target (student ONNX or torch dir, teacher, predictions file).

Errors are the user's to fix and come back as one-line UserErrors naming `flag` (the option
that named the target), the same for `distill eval` and `distill run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import UserError

if TYPE_CHECKING:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.records import EvalReport
    from distill.task import TaskSpec
    from teachers.config import TeacherConfig


def check_eval(cfg: EvalConfig) -> None:
    """Load non-built-in metrics before any prediction, so a typo fails in a second, not later."""
    from distill.evaluation.config import BUILTIN_METRICS
    from distill.evaluation.loading import load_metric

    for name in cfg.metrics:
        if name not in BUILTIN_METRICS:
            try:
                load_metric(name)
            except ValueError as exc:
                raise UserError(f"--metrics: {exc}") from None


def evaluate_one(
    target: str,
    data: Path,
    *,
    task: TaskSpec | None,
    cfg: EvalConfig,
    teacher_cfg: TeacherConfig | None,
    flag: str = "--model",
) -> EvalReport:
    """The report of `target` on the JSONL test file `data` (schema: evaluation/engine.py)."""
    from distill.evaluation.engine import evaluate_target
    from teachers.errors import BudgetExceeded, TeacherFatalError

    try:
        return evaluate_target(target, Path(data), task=task, cfg=cfg, teacher_cfg=teacher_cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"{flag}: {exc}") from None
    except (TeacherFatalError, BudgetExceeded) as exc:
        raise UserError(f"{flag} {target}: {exc}") from None

"""Small helpers shared by subcommands: the task file and config merging."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from distill.configs import build_config
from distill.stages import STAGE_CONFIGS
from distill.task import TaskSpec, load_task

T = TypeVar("T")


def maybe_task(path: str | None) -> TaskSpec | None:
    """Load the task file when one was given."""
    return load_task(path) if path else None


def stage_config(
    stage: str, task: TaskSpec | None, args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> Any:
    """The stage's config: defaults < task.toml [stage] table < `extra` < flags."""
    table = task.table(stage) if task else {}
    source = str(task.path) if task and task.path else "task.toml"
    return build_config(
        STAGE_CONFIGS[stage](), table, args, source=source, section=stage, extra=extra
    )

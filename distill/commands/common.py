"""Small helpers shared by subcommands: the task file and config merging."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
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


def with_registered_extra_data(cfg: Any, data_dir: Path) -> Any:
    """Use `DATA/extra_data.json` (written by `distill retrieve-data --choose`) when the user
    gave no `extra_data` of their own, so a chosen dataset joins training without extra flags."""
    index = data_dir / "extra_data.json"
    if cfg.extra_data or not index.is_file():
        return cfg
    items = json.loads(index.read_text(encoding="utf-8")).get("extra_data", [])
    if items:
        print(f"training also on {len(items)} dataset(s) registered in {index}")
    return dataclasses.replace(cfg, extra_data=list(items))

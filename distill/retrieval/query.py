"""The query both retrieval commands take: a task file or a bare instruction."""

from __future__ import annotations

import argparse
import os
from typing import Any

from distill.errors import UserError


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """--task FILE or --instruction TEXT (exactly one); shared with retrieve-model."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--task",
        metavar="TASK.toml",
        help="task file: its instruction and demonstrations are the query",
    )
    group.add_argument(
        "--instruction", metavar="TEXT", help="query with this instruction instead of a task file"
    )


def task_query_parts(args: argparse.Namespace) -> tuple[Any, str, list[tuple[str, str]]]:
    """(task spec or None, instruction, demonstration pairs) from --task or --instruction."""
    from distill.task import load_task

    if args.task:
        spec = load_task(args.task)
        return spec, spec.instruction, [(d.input, d.output) for d in spec.demonstrations]
    if args.instruction and args.instruction.strip():
        return None, args.instruction.strip(), []
    raise UserError("--task or --instruction: give the task file or the instruction to search for")


def check_online(online: bool) -> None:
    """--online needs the hub: refuse clearly when HF_HUB_OFFLINE says it is off limits."""
    if online and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UserError(
            "--online: HF_HUB_OFFLINE is set; unset it or use the shipped catalog / --catalog FILE"
        )

"""`distill refine`: active rounds on a trained run (the teacher is asked where the student
fails). Parsing and printing only: the work is `distill.stages.refine`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

HELP = """Active rounds on RUN (data/ + model/), after LLM2LLM: the teacher labels unused pool
inputs, the student answers them, the teacher writes new examples like the ones the student got
wrong, and the student retrains from its current weights; RUN/model is replaced only by a round
that raised the validation score. Resumable: rerun the same command to continue."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--task, --out, --exclude, plus every RefineConfig and TeacherConfig field."""
    from distill.configs import add_config_args
    from distill.refine.config import RefineConfig
    from teachers.config import TeacherConfig

    parser.add_argument("--task", required=True, metavar="TASK.toml", help="task spec file")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory (data/, model/)")
    parser.add_argument(
        "--exclude",
        metavar="TEST.jsonl",
        help="held-out inputs (JSONL, field 'input') that must never join the training data",
    )
    add_config_args(parser, RefineConfig)
    add_config_args(parser, TeacherConfig)


def run(args: argparse.Namespace) -> int:
    """Load the task and settings, run the rounds, print one line per round."""
    from distill.stages import stage_config
    from distill.stages.generate import excluded_inputs
    from distill.stages.refine import refine_model
    from distill.task import load_task

    task = load_task(args.task)
    teacher_cfg = stage_config("teacher", task, args)
    cfg = stage_config("refine", task, args)
    if cfg.rounds is None:
        cfg = dataclasses.replace(cfg, rounds=1)
    exclude = excluded_inputs(args.exclude)
    manifest = refine_model(
        task, cfg, teacher_cfg, Path(args.out), exclude_inputs=exclude,
        log=lambda text: print(text, flush=True),
    )  # fmt: skip
    teacher = manifest["teacher"]
    print(
        f"{manifest['rounds_run']} round(s), stopped: {manifest['stopped']}; teacher: "
        f"{teacher['requests_sent']} requests sent, ${teacher['cost_usd']:.4f}; model "
        + ("replaced" if manifest["model_replaced"] else "unchanged")
        + f" -> {Path(args.out) / 'refine' / 'manifest.json'}"
    )
    return 0

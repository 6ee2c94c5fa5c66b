"""`distill run`: generate, train, export, then evaluate student and teacher side by side.

Writes RUN/report.html at the end (`distill report RUN` rebuilds it). Parsing and printing
only: the stages are `distill.stages` (the same functions `distill
generate/train/export/eval` call), chained and skipped when up to date by `distill.stages.run`.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from distill.configs import add_config_args
from distill.stages import STAGE_CONFIGS, STAGES

HELP = "generate, train, export and evaluate in one go (student vs teacher table at the end)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--task/--out/--test plus every stage's flags (a name shared by stages sets all of them)."""
    parser.add_argument("--task", required=True, help="task spec (TOML)")
    parser.add_argument("--out", required=True, help="run directory (data/, model/, onnx/)")
    parser.add_argument(
        "--test",
        default=None,
        help="labelled test JSONL (input, output); "
        "default: the held-out validation split of the generated data",
    )
    parser.add_argument(
        "--skip-teacher-eval",
        action="store_true",
        help="evaluate only the student (saves teacher calls)",
    )
    parser.add_argument(
        "--show-errors",
        type=int,
        default=10,
        metavar="N",
        help="worst N test examples per target in RUN/report.html (0: none; default 10)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo train/export/eval even when their inputs did not change",
    )
    seen: set[str] = set()
    for stage in STAGES:
        cls = STAGE_CONFIGS[stage]()
        names = {f.name for f in dataclasses.fields(cls)}
        add_config_args(parser, cls, skip=tuple(seen & names))
        seen |= names


def run(args: argparse.Namespace) -> int:
    """Build every stage's settings (all validated before any work), then run the pipeline."""
    from distill.stages import stage_config
    from distill.stages.run import RunOptions, StageConfigs, run_pipeline
    from distill.task import load_task

    task = load_task(args.task)
    cfgs = StageConfigs(**{stage: stage_config(stage, task, args) for stage in STAGES})
    opts = RunOptions(
        root=Path(args.out),
        test=Path(args.test) if args.test else None,
        force=args.force,
        skip_teacher_eval=args.skip_teacher_eval,
        show_errors=args.show_errors,
    )
    run_pipeline(task, cfgs, opts, log=lambda text: print(text, flush=True))
    return 0

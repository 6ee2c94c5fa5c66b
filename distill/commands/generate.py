"""`distill generate`: the teacher writes (or labels) a deduplicated, voted training set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = """Generate training data with the teacher: synthesize input/output pairs from the task's
instruction and demonstrations, or label --inputs (self-consistency vote over k samples).
Dedups (exact + MinHash), blocks leaks of demonstrations and --exclude test inputs, filters bad
outputs, and resumes after a crash: rerun the same command to continue."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--task, --out, --exclude, plus every GenerateConfig and TeacherConfig field."""
    from distill.configs import add_config_args
    from distill.generate.config import GenerateConfig
    from teachers.config import TeacherConfig

    parser.add_argument("--task", required=True, metavar="TASK.toml", help="task spec file")
    parser.add_argument("--out", required=True, metavar="DIR", help="run data directory")
    parser.add_argument(
        "--exclude",
        metavar="TEST.jsonl",
        help="held-out inputs (JSONL, field 'input') that must never appear in the data",
    )
    add_config_args(parser, GenerateConfig)
    add_config_args(parser, TeacherConfig)


def run(args: argparse.Namespace) -> int:
    """Load the task and settings, generate, print the outcome; exit 1 on a budget stop."""
    from distill.generate.calibration import summary_line
    from distill.stages import stage_config
    from distill.stages.generate import excluded_inputs, generate_data
    from distill.task import load_task

    task = load_task(args.task)
    teacher_cfg = stage_config("teacher", task, args)
    cfg = stage_config("generate", task, args)
    exclude = excluded_inputs(args.exclude)
    manifest = generate_data(task, cfg, teacher_cfg, Path(args.out), exclude_inputs=exclude)
    counts = manifest["counts"]
    print(
        f"{counts['accepted']} accepted, {counts['rejected']} rejected "
        f"({counts['duplicates_removed']} duplicates, {counts['near_duplicates_removed']} "
        f"near-duplicates, {counts['leaks_blocked']} leaks blocked); "
        f"train {manifest['splits']['train']} / validation {manifest['splits']['validation']} "
        f"/ test {manifest['splits'].get('test', 0)}; "
        f"cost ${manifest['cost_usd']:.4f} -> {args.out}"
    )
    if "inputs" in counts:
        n = counts["inputs"]
        print(
            f"inputs: {n['total']} given, {n['labelled']} labelled, {n['rejected']} rejected, "
            f"{n['left']} left" + (" (--num-examples reached)" if n["left"] else "")
        )
    if line := summary_line(manifest.get("calibration")):
        print(line)
    if manifest["stopped"] in ("batch_pending", "cancelled"):
        print(f"distill generate: {manifest['message']}", file=sys.stderr)
        return 0
    if manifest["stopped"] == "budget":
        print(
            f"distill generate: stopped at the budget ({manifest['message']}); everything is kept. "
            "Raise --budget-usd and rerun the same command to continue.",
            file=sys.stderr,
        )
        return 1
    return 0

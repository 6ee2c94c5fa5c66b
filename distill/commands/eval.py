"""`distill eval`: score a student (ONNX or torch) or a teacher on a test set.

    distill eval --model runs/dates/onnx --data test.jsonl --out runs/dates/eval/onnx.json
    distill eval --model teacher:embedded --task dates.toml --data test.jsonl
    distill eval --compare runs/d/onnx runs/d/model teacher:embedded --task d.toml --data t.jsonl
    distill eval --model runs/d/onnx --data test.jsonl --show-errors 10 --metrics em,chrf,bertscore

Writes a JSON report per target (scores with bootstrap 95% intervals, latency, throughput,
tokens and dollars per 1,000 inputs, size) and the per-example predictions next to it, and
prints a Markdown table. `--compare` also accepts reports written earlier (*.json) and
prediction files (*.jsonl with a `prediction` field per line, in the test file's order).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from distill.configs import add_config_args
from distill.errors import UserError

if TYPE_CHECKING:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.records import EvalReport
    from distill.task import TaskSpec
    from teachers.config import TeacherConfig

HELP = "score a student or a teacher on a test set: quality with bootstrap CIs, latency, cost, size"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: what to score, on what, where to write; then the [eval] and [teacher] settings."""
    from distill.evaluation.config import EvalConfig
    from teachers.config import TeacherConfig

    parser.add_argument(
        "--model",
        dest="target",
        metavar="TARGET",
        help="RUN/onnx, RUN/model, teacher:embedded | teacher:openai:MODEL | teacher:http://HOST/v1, "
        "or a predictions .jsonl",
    )
    parser.add_argument("--data", required=True, help="test JSONL with 'input' and 'output'")
    parser.add_argument("--task", help="task TOML (required for teacher targets)")
    parser.add_argument(
        "--out", help="report JSON (default: eval/<target name>.json); predictions go next to it"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="TARGET",
        help="several targets (or earlier report .json files) scored on the same data, side by side",
    )
    parser.add_argument(
        "--show-errors", type=int, default=0, metavar="N", help="print the worst N cases"
    )
    parser.add_argument(
        "--teacher-model", help="model name for a teacher:http://... base URL (the [teacher] model)"
    )
    add_config_args(parser, EvalConfig)
    add_config_args(parser, TeacherConfig, skip=("teacher", "model"))


def run(args: argparse.Namespace) -> int:
    """Evaluate each target, write reports, print the table (and the worst errors)."""
    from distill.evaluation.reports import compare_markdown, errors_text
    from distill.stages import stage_config
    from distill.stages.evaluate import check_eval
    from distill.task import load_task

    targets = ([args.target] if args.target else []) + list(args.compare or [])
    if not targets:
        raise UserError("--model or --compare: name at least one target to evaluate")
    if args.show_errors < 0:
        raise UserError(f"--show-errors: must be >= 0 (got {args.show_errors})")
    if args.out and len(targets) > 1 and not args.out.endswith("/"):
        raise UserError("--out: one file for several targets; give a folder ending in / instead")
    task = load_task(args.task) if args.task else None
    cfg = stage_config("eval", task, args)
    teacher_cfg = _teacher_config(task, args, targets)
    check_eval(cfg)
    flags = ["--model"] * bool(args.target) + ["--compare"] * len(args.compare or [])
    reports = [
        _one(t, f, args, task, cfg, teacher_cfg) for t, f in zip(targets, flags, strict=True)
    ]
    print(compare_markdown(reports), end="")
    for rep in reports:
        if args.show_errors:
            print()
            print(errors_text(rep, args.show_errors), end="")
    return 0


def _teacher_config(
    task: TaskSpec | None, args: argparse.Namespace, targets: list[str]
) -> TeacherConfig | None:
    """The [teacher] settings, only when a teacher is among the targets."""
    from distill.stages import stage_config

    if not any(t.startswith("teacher:") for t in targets):
        return None
    spec = next(t for t in targets if t.startswith("teacher:"))[len("teacher:") :]
    extra = {"teacher": spec, "model": args.teacher_model}
    return stage_config("teacher", task, args, extra=extra)


def _one(
    target: str,
    flag: str,
    args: argparse.Namespace,
    task: TaskSpec | None,
    cfg: EvalConfig,
    teacher_cfg: TeacherConfig | None,
) -> EvalReport:
    """Score one target (distill.stages.evaluate), or load a saved report; write its files."""
    from distill.evaluation.reports import load_report, write_report
    from distill.stages.evaluate import evaluate_one

    if target.endswith(".json") and Path(target).is_file():
        try:
            return load_report(Path(target))
        except (ValueError, OSError) as exc:
            raise UserError(f"{flag}: {exc}") from None
    report = evaluate_one(
        target, Path(args.data), task=task, cfg=cfg, teacher_cfg=teacher_cfg, flag=flag
    )
    out = _out_path(args, target)
    written = write_report(report, out)
    print(f"wrote {out} and {written['predictions_file']}")
    return report


def _out_path(args: argparse.Namespace, target: str) -> Path:
    """--out FILE, or --out DIR/<slug>.json, or eval/<slug>.json."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", target.strip("/")).strip("_") or "target"
    if args.out and not args.out.endswith("/"):
        return Path(args.out)
    folder = Path(args.out) if args.out else Path("eval")
    return folder / f"{slug}.json"

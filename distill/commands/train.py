"""`distill train`: fine-tune the student on generated (and optional extra) data."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fine-tune a small seq2seq student on RUN/data (train.jsonl + validation.jsonl)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --out, --task and one flag per TrainConfig field."""
    from distill.configs import add_config_args
    from students.config import TrainConfig

    parser.add_argument(
        "--data",
        required=True,
        help="data dir with train.jsonl (+ validation.jsonl) or one .jsonl file",
    )
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--task", help="task.toml (instruction and [train] settings)")
    add_config_args(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    """Train (distill.stages.train) and print where the model went and its best epoch."""
    from distill.stages import stage_config
    from distill.stages.train import train_model
    from distill.task import load_task

    task = load_task(args.task) if args.task else None
    cfg = stage_config("train", task, args)
    out = Path(args.out)
    metrics = train_model(task, cfg, Path(args.data), out)
    best = metrics.get("best") or {}
    shown = ", ".join(f"{k}={v:.4f}" for k, v in best.items() if isinstance(v, float))
    print(
        f"saved {out} ({metrics['num_parameters']:,} parameters; best epoch {metrics['best_epoch']}: {shown})"
    )
    return 0

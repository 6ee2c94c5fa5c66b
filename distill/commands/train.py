"""`distill train`: fine-tune the student on generated (and optional extra) data."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from distill.errors import UserError

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
    """Resolve data, instruction and settings, then train; user mistakes become UserError."""
    from distill.commands.common import maybe_task, stage_config, with_registered_extra_data

    task = maybe_task(args.task)
    cfg = stage_config("train", task, args)
    data = Path(args.data)
    if data.is_dir():
        cfg = with_registered_extra_data(cfg, data)
    manifest = _manifest(data)
    instruction, name = _instruction(task, manifest, args)
    out = Path(args.out)
    train_path, val_path = _split_paths(data, out, cfg.seed)
    card = _card(manifest)
    metrics = _train(cfg, train_path, val_path, out, instruction, name, card)
    best = metrics.get("best") or {}
    shown = ", ".join(f"{k}={v:.4f}" for k, v in best.items() if isinstance(v, float))
    print(
        f"saved {out} ({metrics['num_parameters']:,} parameters; best epoch {metrics['best_epoch']}: {shown})"
    )
    return 0


def _train(cfg, train_path, val_path, out, instruction, name, card) -> dict:  # type: ignore[no-untyped-def]
    from distill.configs import config_error
    from students.train import train_student

    try:
        return train_student(
            cfg, train_path, val_path, out, instruction=instruction, task_name=name, card=card
        )
    except (ValueError, FileNotFoundError) as exc:
        raise config_error(exc) from None


def _manifest(data: Path) -> dict:
    path = (data if data.is_dir() else data.parent) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc.msg})") from None


def _card(manifest: dict) -> dict:
    """Model-card facts from the generate manifest (distill/generate/run.py `_finish`).

    Keys read: `teacher` {teacher, model}, `splits` {train, validation}, `cost_usd`, `mode`;
    every one is optional (hand-made data has no manifest) and a missing one is left out.
    """
    teacher = manifest.get("teacher")
    teacher = teacher if isinstance(teacher, dict) else {}
    model, kind = teacher.get("model"), teacher.get("teacher")
    card: dict = {"teacher": f"{model} ({kind})" if model and kind else model or kind or "unknown"}
    splits = manifest.get("splits")
    if isinstance(splits, dict) and splits:
        card["generated examples"] = ", ".join(f"{k} {v}" for k, v in splits.items())
    if isinstance(manifest.get("cost_usd"), int | float):
        card["teacher cost (USD)"] = manifest["cost_usd"]
    if isinstance(manifest.get("mode"), str):
        card["generation mode"] = manifest["mode"]
    return card


def _instruction(task, manifest: dict, args: argparse.Namespace) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    if task is not None:
        return task.instruction, task.name
    info = manifest.get("task") if isinstance(manifest.get("task"), dict) else {}
    if isinstance(info.get("instruction"), str) and info["instruction"].strip():
        return info["instruction"], str(info.get("name", "task"))
    raise UserError(f"--task: needed ({args.data} has no manifest.json with task.instruction)")


def _split_paths(data: Path, out: Path, seed: int) -> tuple[Path, Path | None]:
    """A data dir gives train.jsonl (+ validation.jsonl); one .jsonl file is split 90/10."""
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise UserError(f"--data: {data} has no train.jsonl")
        val = data / "validation.jsonl"
        return train, val if val.is_file() else None
    if not data.is_file():
        raise UserError(f"--data: {data} not found")
    return _split_file(data, out, seed)


def _split_file(data: Path, out: Path, seed: int) -> tuple[Path, Path | None]:
    from common.files import atomic_write_jsonl
    from common.jsonl import read_jsonl

    rows = read_jsonl(data)
    random.Random(seed).shuffle(rows)
    n_val = len(rows) // 10
    split = out / "split"
    atomic_write_jsonl(split / "train.jsonl", rows[n_val:])
    if not n_val:
        return split / "train.jsonl", None
    atomic_write_jsonl(split / "validation.jsonl", rows[:n_val])
    return split / "train.jsonl", split / "validation.jsonl"

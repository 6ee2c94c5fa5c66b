"""The train stage: a data dir (or one JSONL file) -> a trained student dir.

Resolves what `students.train.train_student` needs from what a user has: the instruction from
the task file or the generate manifest, the splits from the data dir (or a 90/10 split of one
file), extra data registered by `distill retrieve-data`, and model-card facts from the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.files import atomic_write_jsonl
from common.jsonl import read_jsonl
from distill.configs import config_error
from distill.errors import UserError

if TYPE_CHECKING:
    from distill.task import TaskSpec
    from students.config import TrainConfig


def check_train(cfg: TrainConfig) -> None:
    """Refuse an unknown student before any data is read or any teacher is asked."""
    from students.presets import check_student

    try:
        check_student(cfg.student)
    except ValueError as exc:
        raise config_error(exc) from None


def train_model(
    task: TaskSpec | None, cfg: TrainConfig, data: Path, out: Path, *, data_flag: str = "--data"
) -> dict[str, Any]:
    """Train a student on `data` into `out`; returns the training metrics (metrics.json)."""
    from students.train import train_student

    check_train(cfg)
    data, out = Path(data), Path(out)
    if data.is_dir():
        cfg = with_registered_extra_data(cfg, data)
    manifest = read_manifest(data)
    instruction, name = _instruction(task, manifest, data)
    train_path, val_path = _split_paths(data, out, cfg.seed, data_flag)
    try:
        return train_student(
            cfg,
            train_path,
            val_path,
            out,
            instruction=instruction,
            task_name=name,
            card=model_card_facts(manifest),
        )
    except (ValueError, FileNotFoundError) as exc:
        raise config_error(exc) from None


def with_registered_extra_data(cfg: TrainConfig, data_dir: Path) -> TrainConfig:
    """Use `DATA/extra_data.json` (written by `distill retrieve-data --choose`) when the user
    gave no `extra_data` of their own, so a chosen dataset joins training without extra flags."""
    index = data_dir / "extra_data.json"
    if cfg.extra_data or not index.is_file():
        return cfg
    items = json.loads(index.read_text(encoding="utf-8")).get("extra_data", [])
    if items:
        print(f"training also on {len(items)} dataset(s) registered in {index}")
    return dataclasses.replace(cfg, extra_data=list(items))


def read_manifest(data: Path) -> dict[str, Any]:
    """The generate manifest beside the data ({} for hand-made data without one)."""
    path = (data if data.is_dir() else data.parent) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc.msg})") from None


def model_card_facts(manifest: dict[str, Any]) -> dict[str, Any]:
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


def _instruction(task: TaskSpec | None, manifest: dict, data: Path) -> tuple[str, str]:
    if task is not None:
        return task.instruction, task.name
    info = manifest.get("task") if isinstance(manifest.get("task"), dict) else {}
    if isinstance(info.get("instruction"), str) and info["instruction"].strip():
        return info["instruction"], str(info.get("name", "task"))
    raise UserError(f"--task: needed ({data} has no manifest.json with task.instruction)")


def _split_paths(data: Path, out: Path, seed: int, flag: str) -> tuple[Path, Path | None]:
    """A data dir gives train.jsonl (+ validation.jsonl); one .jsonl file is split 90/10."""
    if data.is_dir():
        train = data / "train.jsonl"
        if not train.is_file():
            raise UserError(f"{flag}: {data} has no train.jsonl")
        val = data / "validation.jsonl"
        # generate writes an empty validation.jsonl when the data is too small to split
        return train, val if val.is_file() and val.stat().st_size else None
    if not data.is_file():
        raise UserError(f"{flag}: {data} not found")
    return _split_file(data, out, seed)


def _split_file(data: Path, out: Path, seed: int) -> tuple[Path, Path | None]:
    rows = read_jsonl(data)
    random.Random(seed).shuffle(rows)
    n_val = len(rows) // 10
    split = out / "split"
    atomic_write_jsonl(split / "train.jsonl", rows[n_val:])
    if not n_val:
        return split / "train.jsonl", None
    atomic_write_jsonl(split / "validation.jsonl", rows[:n_val])
    return split / "train.jsonl", split / "validation.jsonl"

"""The train stage: a data dir (or one JSONL file) -> a trained student dir.

Resolves what `students.train.train_student` needs from what a user has: the instruction from
the task file or the generate manifest, the splits from the data dir (or a 90/10 split of one
file), extra data registered by `distill retrieve-data`, and model-card facts from the manifest.
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
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
            labels=list(manifest.labels),
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


@dataclass(frozen=True)
class ManifestFacts:
    """What training uses from a generate manifest (distill.generate.records.Manifest).

    Parsed once, tolerantly: hand-made data has no manifest, and a hand-edited one may lack or
    mistype any key; what is missing or malformed is None (or empty), never an error.
    """

    task_name: str | None = None
    instruction: str | None = None
    teacher: str | None = None  # the teacher spec: embedded, openai, a URL
    model: str | None = None  # the teacher's model name
    splits: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    mode: str | None = None
    license: str | None = None  # the task file's `license`
    labels: tuple[str, ...] = ()  # the closed label set generate held the outputs to (rules)

    @classmethod
    def parse(cls, data: Any) -> ManifestFacts:
        data = data if isinstance(data, dict) else {}
        task, teacher = _dict(data.get("task")), _dict(data.get("teacher"))
        cost = data.get("cost_usd")
        labels = _dict(data.get("rules")).get("labels")
        return cls(
            task_name=_str(task.get("name")),
            instruction=_str(task.get("instruction")),
            teacher=_str(teacher.get("teacher")),
            model=_str(teacher.get("model")),
            splits=_dict(data.get("splits")),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
            mode=_str(data.get("mode")),
            license=_str(task.get("license")),
            labels=tuple(labels) if _strings(labels) else (),
        )


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, str) for x in value)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_manifest(data: Path) -> ManifestFacts:
    """The generate manifest beside the data (empty facts for hand-made data without one)."""
    path = (data if data.is_dir() else data.parent) / "manifest.json"
    if not path.is_file():
        return ManifestFacts()
    try:
        return ManifestFacts.parse(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc.msg})") from None


def model_card_facts(manifest: ManifestFacts | dict[str, Any]) -> dict[str, Any]:
    """Model-card lines from the generate manifest; a fact the manifest lacks is left out."""
    facts = manifest if isinstance(manifest, ManifestFacts) else ManifestFacts.parse(manifest)
    model, kind = facts.model, facts.teacher
    card: dict = {"teacher": f"{model} ({kind})" if model and kind else model or kind or "unknown"}
    if facts.splits:
        card["generated examples"] = ", ".join(f"{k} {v}" for k, v in facts.splits.items())
    if facts.cost_usd is not None:
        card["teacher cost (USD)"] = facts.cost_usd
    if facts.mode:
        card["generation mode"] = facts.mode
    if facts.license:
        card["license"] = facts.license
    return card


def _instruction(task: TaskSpec | None, manifest: ManifestFacts, data: Path) -> tuple[str, str]:
    if task is not None:
        return task.instruction, task.name
    if manifest.instruction:
        return manifest.instruction, manifest.task_name or "task"
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

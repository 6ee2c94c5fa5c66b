"""`distill train --min-label-prob`: only the teacher labels its own distribution backs enough.

The rule is exact (`students.data.drop_unsure`), training sees only the kept rows and says how
many it dropped, validation keeps every row, and misuse exits 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import tiny_t5_dir

from distill.cli import main
from students import train as train_mod
from students.config import TrainConfig
from students.data import drop_unsure


def row(i: int, label: str, p: float | None) -> dict:
    """One example; `p` is the probability its teacher gave `label` (None: no distribution)."""
    out: dict = {"input": f"input number {i} cat", "output": label}
    if p is not None:
        other = "no" if label == "yes" else "yes"
        out["label_probs"] = {label: p, other: round(1.0 - p, 6)}
    return out


def test_drop_unsure_keeps_exactly_the_rows_at_or_above_the_bound() -> None:
    rows = [
        row(0, "yes", 0.9),
        row(1, "no", 0.5),  # exactly the bound: kept
        row(2, "yes", 0.49),
        row(3, "no", None),  # no distribution: no evidence against it, kept
        {"input": "x", "output": "maybe", "label_probs": {"yes": 0.6, "no": 0.4}},  # unnamed: 0
    ]
    kept, dropped = drop_unsure(rows, 0.5)
    assert [r["input"] for r in kept] == ["input number 0 cat", "input number 1 cat",
                                           "input number 3 cat"]  # fmt: skip
    assert dropped == 2
    assert drop_unsure(rows, 0.0) == (rows, 0)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_training_sees_only_the_confident_rows_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [row(i, "yes" if i % 2 else "no", 0.9 if i < 10 else 0.4) for i in range(16)]
    train = write(tmp_path / "train.jsonl", rows)
    val = write(tmp_path / "val.jsonl", rows[12:])  # all below the bound, all kept
    cfg = TrainConfig(student=str(tiny_t5_dir(tmp_path / "s")), epochs=1, batch_size=2,
                      warmup_ratio=0.0, patience=0, threads=1, min_steps=0,
                      min_label_prob=0.6)  # fmt: skip
    metrics = train_mod.train_student(
        cfg, train, val, tmp_path / "m", instruction="", task_name="t"
    )
    assert metrics["train_examples"] == 10
    assert metrics["train_examples_dropped_unsure"] == 6
    assert metrics["global_steps"] == 5  # 10 rows, batch 2, one epoch
    assert metrics["validation_examples"] == 4


def task_toml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "task.toml"
    path.write_text(
        'name = "t"\ninstruction = "Answer yes or no."\n'
        '[[demonstrations]]\ninput = "a"\noutput = "yes"\n'
        '[[demonstrations]]\ninput = "b"\noutput = "no"\n' + extra
    )
    return path


def test_min_label_prob_without_label_probs_is_a_user_error(tmp_path: Path, capsys) -> None:
    data = write(tmp_path / "train.jsonl", [{"input": "a b", "output": "yes"}] * 4)
    student = tiny_t5_dir(tmp_path / "s")
    capsys.readouterr()  # the tiny model's own save progress is not the command's output
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--student",
               str(student), "--task", str(task_toml(tmp_path)), "--min-label-prob", "0.5"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--min-label-prob: no training example carries `label_probs`" in err[0]
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").glob("*.safetensors"))


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_a_bound_outside_0_1_exits_2_with_one_line(tmp_path: Path, capsys, value: str) -> None:
    rc = main(["train", "--data", "d", "--out", "m", f"--min-label-prob={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--min-label-prob: must be in [0, 1]" in err[0], err


def test_the_task_file_key_reaches_the_train_config(tmp_path: Path) -> None:
    from distill.stages import stage_config
    from distill.task import load_task

    path = task_toml(tmp_path, "[train]\nmin_label_prob = 0.6\n")
    assert stage_config("train", load_task(path), None).min_label_prob == 0.6

"""`distill train` through the CLI: bad input gives one line and exit 2; presets and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import tiny_t5_dir

from distill.cli import main
from students.presets import PRESETS, resolve_student

TASK = (
    'name = "dates"\ninstruction = "Rewrite the date as MM/DD/YYYY."\n'
    '[[demonstrations]]\ninput = "20.08.2010"\noutput = "08/20/2010"\n'
)


def _write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["train", *argv])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_t5_dir(tmp_path_factory.mktemp("tiny") / "t5")


def test_empty_data(tmp_path, capsys, tiny) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("")
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    code, err = _run(
        capsys,
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m"),
        "--task",
        str(task),
        "--student",
        str(tiny),
    )
    assert code == 2 and "no examples" in err and "Traceback" not in err


def test_missing_output_field(tmp_path, capsys, tiny) -> None:
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}, {"input": "c"}])
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    code, err = _run(
        capsys,
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m"),
        "--task",
        str(task),
        "--student",
        str(tiny),
    )
    assert code == 2 and "train.jsonl:2" in err and "'output'" in err


def test_unknown_student_lists_presets(tmp_path, capsys) -> None:
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}])
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    code, err = _run(
        capsys,
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m"),
        "--task",
        str(task),
        "--student",
        "flan-t5-smal",
    )
    assert code == 2 and "--student" in err and "Did you mean 'flan-t5-small'" in err
    assert all(name in err for name in PRESETS)
    assert len(err.strip().splitlines()) == 1


def test_offline_hub_id_is_a_clear_error() -> None:
    from students.presets import load_student

    with pytest.raises(ValueError, match=r"^student: .*hub failed"):
        load_student(resolve_student("nobody-here/no-such-model"), "nobody-here/no-such-model")


def test_cap_below_prompt_length(tmp_path, capsys, tiny) -> None:
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}])
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    code, err = _run(
        capsys,
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m"),
        "--task",
        str(task),
        "--student",
        str(tiny),
        "--max-source-length",
        "5",
    )
    assert code == 2 and err.strip().splitlines()[-1].startswith("distill train: error:")
    assert "--max-source-length: 5 tokens leaves no room" in err


def test_no_instruction(tmp_path, capsys, tiny) -> None:
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}])
    code, err = _run(
        capsys,
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "m"),
        "--student",
        str(tiny),
    )
    assert code == 2 and "--task: needed" in err


def test_ema_decay_out_of_range_names_the_flag(tmp_path, capsys, tiny) -> None:
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}])
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    code, err = _run(
        capsys,
        *("--data", str(tmp_path / "data"), "--out", str(tmp_path / "m")),
        *("--task", str(task), "--student", str(tiny), "--ema-decay", "1"),
    )
    assert (
        code == 2 and "--ema-decay: must be in [0, 1) (got 1.0)" in err and "Traceback" not in err
    )
    assert not (tmp_path / "m").exists()


def test_train_via_cli_with_manifest_and_single_file(tmp_path, capsys, tiny) -> None:
    rows = [{"input": f"in {i}", "output": f"Out {i}"} for i in range(20)]
    data = _write(tmp_path / "data" / "all.jsonl", rows)
    (tmp_path / "data" / "manifest.json").write_text(
        json.dumps(
            {  # the keys distill generate writes (distill/generate/run.py)
                "task": {"name": "t", "instruction": "Copy."},
                "teacher": {"teacher": "openai", "model": "gpt-test"},
                "splits": {"train": 18, "validation": 2},
                "cost_usd": 0.25,
            }
        )
    )
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m"),
            "--student",
            str(tiny),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    meta = json.loads((tmp_path / "m" / "distill.json").read_text())
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert meta["instruction"] == "Copy." and meta["task_name"] == "t"
    assert metrics["train_examples"] == 18 and metrics["validation_examples"] == 2
    assert not (tmp_path / "m" / "checkpoints").exists()
    card = (tmp_path / "m" / "README.md").read_text()
    assert "- teacher: gpt-test (openai)" in card
    assert "- generated examples: train 18, validation 2" in card
    assert "- teacher cost (USD): 0.25" in card


def test_empty_validation_split_trains_without_validation(tmp_path, capsys, tiny) -> None:
    """generate writes an empty validation.jsonl when the data is too small to split."""
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    _write(tmp_path / "data" / "train.jsonl", [{"input": "a", "output": "b"}] * 4)
    (tmp_path / "data" / "validation.jsonl").write_text("")
    argv = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--task", str(task),
            "--student", str(tiny), "--epochs", "1", "--threads", "1"]  # fmt: skip
    code, err = _run(capsys, *argv)
    assert code == 0, err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["validation_examples"] == 0


def test_export_gate_skips_an_empty_validation_split(tmp_path) -> None:
    from common.meta import StudentMeta, write_meta
    from distill.stages.export import heldout_pairs

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_meta(model_dir, StudentMeta("{input}", 0, 0, 1))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validation.jsonl").write_text("")
    assert heldout_pairs(model_dir, None, 64) == ([], "none")


@pytest.mark.parametrize(
    ("manifest", "teacher"),
    [
        ({}, "unknown"),
        ({"teacher": "not a dict"}, "unknown"),
        ({"teacher": {"model": "m"}}, "m"),
        ({"teacher": {"teacher": "embedded"}}, "embedded"),
        ({"teacher": {"teacher": "openai", "model": "m"}, "splits": None}, "m (openai)"),
    ],
)
def test_model_card_reads_generate_manifest_tolerantly(manifest: dict, teacher: str) -> None:
    from distill.stages.train import model_card_facts as _card

    card = _card(manifest)
    assert card["teacher"] == teacher and "generated examples" not in card

"""benchmarks/train_seeds.py: arms x seeds through the real `distill train` and `distill eval`
(a tiny T5 student), the pairing arithmetic on hand-made scores, reuse of finished runs and
refusal of runs made with other settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import train_seeds  # noqa: E402
from tiny_models import tiny_t5_dir  # noqa: E402

TASK = (
    'name = "labels"\ninstruction = "Label the word."\n'
    '[[demonstrations]]\ninput = "red"\noutput = "colour"\n'
)


def test_an_arm_spec_becomes_distill_train_flags_with_switches_for_true_and_false() -> None:
    name, flags = train_seeds.parse_arm("copy_as_written=false,lr=1e-3,label_decoding=True")
    assert name == "copy_as_written=false,lr=1e-3,label_decoding=True"
    assert flags == ["--no-copy-as-written", "--lr", "1e-3", "--label-decoding"]
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        train_seeds.parse_arm("lr")


def test_paired_averages_each_input_over_seeds_before_the_mean() -> None:
    """One seed: right on 3 of 4 against 2 of 4 is +25 points. Two seeds: input 0 gains in
    one seed (+50 averaged), input 1 in both (+100): +75 over the two inputs."""
    one = train_seeds.paired([[1, 0, 1, 0]], [[1, 1, 1, 0]])
    assert one["diff"] == 25.0
    two = train_seeds.paired([[1, 0], [0, 0]], [[1, 1], [1, 1]])
    assert two["diff"] == 75.0 and two["ci95"][0] >= 50.0 and two["ci95"][1] <= 100.0
    same = train_seeds.paired([[1, 0, 1]], [[1, 0, 1]])
    assert same == {"diff": 0.0, "ci95": [0.0, 0.0]}


@pytest.mark.slow  # eight CLI processes (four trainings, four evals): about a minute
def test_arms_and_seeds_train_score_pair_and_are_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train_seeds, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_seeds, "RESULTS", tmp_path / "results")
    student = tiny_t5_dir(tmp_path / "tiny")
    words = ["red", "blue", "cat", "dog", "green", "cow", "pink", "hen", "grey", "owl"]
    label = {
        w: "colour" if w in ("red", "blue", "green", "pink", "grey") else "animal" for w in words
    }
    data = tmp_path / "data"
    data.mkdir()
    for name, part in (("train", words[:6]), ("validation", words[6:8])):
        rows = [{"input": w, "output": label[w]} for w in part]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"input": w, "output": label[w]}) + "\n" for w in words[6:]))
    teacher = tmp_path / "teacher.predictions.jsonl"  # right on 3 of the 4 test words
    teacher.write_text("".join(
        json.dumps({"input": w, "prediction": "?", "scores": {"em": float(i < 3)}}) + "\n"
        for i, w in enumerate(words[6:])
    ))  # fmt: skip
    (tmp_path / "task.toml").write_text(TASK)
    argv = [
        *("--name", "t", "--data", str(data), "--task", str(tmp_path / "task.toml")),
        *("--test", str(test), "--teacher", str(teacher), "--seeds", "0,1"),
        *("--base", f"student={student},epochs=1,threads=1,batch_size=2", "--arm", "lr=0.01"),
    ]
    assert train_seeds.main(argv) == 0
    out = json.loads((tmp_path / "results" / "train_seeds_t.json").read_text())
    assert (out["test_n"], out["seeds"], out["teacher"]) == (4, [0, 1], 75.0)
    assert list(out["arms"]) == ["default", "lr=0.01"]
    for arm in out["arms"].values():
        assert len(arm["per_seed"]) == 2 and arm["mean"] == sum(arm["per_seed"]) / 2
        assert arm["vs_teacher"]["diff"] == pytest.approx(arm["mean"] - 75.0)
    lr = out["arms"]["lr=0.01"]
    assert lr["vs_default"]["diff"] == pytest.approx(lr["mean"] - out["arms"]["default"]["mean"])
    assert out["arms"]["default"]["vs_default"] == {"diff": 0.0, "ci95": [0.0, 0.0]}
    spec = json.loads((tmp_path / "runs" / "t" / "lr=0.01-s1" / "spec.json").read_text())
    assert spec["seed"] == 1 and spec["flags"][-2:] == ["--lr", "0.01"]
    md = (tmp_path / "results" / "train_seeds_t.md").read_text()
    assert "| lr=0.01 | " in md and "Teacher: 75.0." in md

    def no_training(*args, **kwargs):
        raise AssertionError("a finished (arm, seed) was trained again")

    monkeypatch.setattr(subprocess, "call", no_training)
    assert train_seeds.main(argv) == 0
    changed = [
        a if not a.startswith("student=") else a.replace("epochs=1", "epochs=2") for a in argv
    ]
    with pytest.raises(SystemExit, match="made with other settings"):
        train_seeds.main(changed)

"""benchmarks/paired_runs.py: two runs' students paired input by input, on hand-made
prediction files (the exact counts are known), and its refusal of unpaired runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import paired_runs  # noqa: E402


def write_run(root: Path, name: str, right: list[bool]) -> None:
    """Run `name` whose int8 student answered inputs 0..n-1, right where `right` says."""
    path = root / name / "eval" / "student_onnx.predictions.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"index": i, "input": f"x{i}", "reference": "a", "prediction": "a" if ok else "b"}
        for i, ok in enumerate(right)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(paired_runs, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(paired_runs, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    return tmp_path


def test_pairs_count_each_side_and_the_mean_is_per_task(dirs: Path) -> None:
    """Baseline right on 2 of 4, run on 3 of 4 (one more, none fewer): +25 points; a second
    intent pair at -25: the intent mean is 0; sentiment's own pair stands alone."""
    runs = dirs / "runs"
    write_run(runs, "intent-a", [True, True, False, False])
    write_run(runs, "intent-b", [True, True, True, False])
    write_run(runs, "intent-c", [True, False, False, False])
    write_run(runs, "sentiment-a", [False, False])
    write_run(runs, "sentiment-b", [True, False])
    pairs = ["intent-a:intent-b", "intent-a:intent-c", "sentiment-a:sentiment-b"]
    assert paired_runs.main(["--name", "t", "--pairs", *pairs]) == 0
    out = json.loads((dirs / "results" / "paired_t.json").read_text())
    first = out["pairs"][0]
    assert (first["baseline_em"], first["em"], first["n"]) == (50.0, 75.0, 4)
    assert first["diff"]["diff"] == 25.0
    assert (first["diff"]["student_only"], first["diff"]["teacher_only"]) == (1, 0)
    assert out["pairs"][1]["diff"]["diff"] == -25.0
    assert out["mean_diff"] == {"intent": 0.0, "sentiment": 50.0}
    md = (dirs / "results" / "paired_t.md").read_text()
    assert "| intent-a | intent-b | 4 | 50.0 | 75.0 | +25.0 [" in md
    assert "Mean difference on intent over 2 pair(s): +0.00 points." in md


def test_runs_scored_on_different_rows_are_refused(dirs: Path) -> None:
    runs = dirs / "runs"
    write_run(runs, "intent-a", [True, True])
    write_run(runs, "intent-b", [True, True, True])
    with pytest.raises(SystemExit, match="different test rows"):
        paired_runs.main(["--name", "t", "--pairs", "intent-a:intent-b"])


def write_scored(root: Path, spec: str, chrf: list[float]) -> None:
    """Eval target `spec` (RUN/TARGET) whose per-example chrF++ scores are `chrf`."""
    path = root / spec.split("/")[0] / "eval" / f"{spec.split('/')[1]}.predictions.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"input": f"x{i}", "reference": "r", "prediction": "p", "scores": {"chrf": c}}
        for i, c in enumerate(chrf)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_chrf_against_the_teacher_pooled_over_seeds(dirs: Path) -> None:
    """`RUN@teacher` is the run's teacher; --metric chrf reads eval's sentence chrF++. Seed a is
    +20 and 0 points above the teacher on the two inputs, seed b 0 and -40: the means are +10
    and -20, their mean -5; pooled, the inputs' averaged differences are +10 and -20, so -5 with
    a bootstrap interval inside [-20, +10], one input better and one worse."""
    runs = dirs / "runs"
    write_scored(runs, "temporal-a/teacher", [0.5, 0.5])
    write_scored(runs, "temporal-a/student_onnx", [0.7, 0.5])
    write_scored(runs, "temporal-b/student_onnx", [0.5, 0.1])
    pairs = ["temporal-a@teacher:temporal-a", "temporal-a@teacher:temporal-b"]
    assert paired_runs.main(["--name", "t", "--metric", "chrf", "--pairs", *pairs]) == 0
    out = json.loads((dirs / "results" / "paired_t.json").read_text())
    assert out["metric"] == "chrf"
    assert [(p["baseline_chrf"], p["chrf"]) for p in out["pairs"]] == [(50.0, 60.0), (50.0, 30.0)]
    assert [p["diff"]["diff"] for p in out["pairs"]] == [10.0, -20.0]
    assert out["mean_diff"] == {"temporal": -5.0}
    pool = out["pooled_diff"]["temporal"]
    assert pool["diff"] == -5.0 and -20.0 <= pool["ci95"][0] < pool["ci95"][1] <= 10.0
    assert (pool["student_only"], pool["teacher_only"]) == (1, 1)
    md = (dirs / "results" / "paired_t.md").read_text()
    assert "| temporal-a@teacher | temporal-a | 2 | 50.0 | 60.0 | +10.0 [" in md
    assert "| baseline chrF++ | chrF++ |" in md
    assert "then a paired bootstrap): -5.0 [" in md


def test_a_single_pair_has_no_pooled_line_and_unknown_targets_are_refused(dirs: Path) -> None:
    runs = dirs / "runs"
    write_run(runs, "intent-a", [True, False])
    write_run(runs, "intent-b", [True, True])
    assert paired_runs.main(["--name", "t", "--pairs", "intent-a:intent-b"]) == 0
    assert json.loads((dirs / "results" / "paired_t.json").read_text())["pooled_diff"] == {}
    assert "Pooled" not in (dirs / "results" / "paired_t.md").read_text()
    with pytest.raises(SystemExit, match="one of student_onnx, student_torch, teacher"):
        paired_runs.main(["--name", "t", "--pairs", "intent-a@gold:intent-b"])

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

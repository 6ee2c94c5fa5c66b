"""benchmarks/levers.py's budget arithmetic: what counts as a teacher call, and the round's pool."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import levers  # noqa: E402


def _lines(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_teacher_spend_counts_issued_requests_demo_rationales_and_the_round(tmp_path: Path) -> None:
    """3 issued label requests (one failed: still a call), 3 rationalise requests, and a round
    of 4 label + 2 write-similar requests: 12 calls; characters of every answer written."""
    arm = levers.Arm("combined", {})
    data = tmp_path / "combined" / "data"
    _lines(data / "journal.jsonl", [
        {"event": "issue", "index": 0}, {"event": "issue", "index": 1},
        {"event": "done", "index": 0, "text": "abc"}, {"event": "issue", "index": 2},
        {"event": "done", "index": 1, "text": None, "error": "x"},
        {"event": "done", "index": 2, "text": "de"},
    ])  # fmt: skip
    demos = [{"input": "i", "output": "o", "rationale": "r" * n} for n in (5, 6, 7)]
    (data / "demo_rationales.json").write_text(json.dumps(demos))
    refine = tmp_path / "combined" / "refine"
    round_ = {"teacher": {"label": {"requests": 4}, "similar": {"requests": 2}}}
    (refine / "round-1").mkdir(parents=True)
    (refine / "manifest.json").write_text(json.dumps({"rounds": [round_]}))
    _lines(
        refine / "round-1" / "journal.jsonl", [{"id": "a", "text": "xyz"}, {"id": "b", "text": "q"}]
    )
    assert levers.teacher_spend(tmp_path, arm) == {
        "teacher_calls": 3 + 3 + 6,
        "teacher_chars": 3 + 2 + 18 + 4,
    }


def test_an_arm_reusing_data_is_charged_for_that_data() -> None:
    soft = next(a for a in levers.ARMS if a.name == "soft")
    assert levers.arm_data(Path("r"), soft) == Path("r/imitation/data")


def test_round_pool_fits_the_worst_case_round_in_the_calls() -> None:
    assert levers.round_pool(33) == 24  # 24 labels + 8 write-similar = 32 <= 33
    assert levers.round_pool(4) == 3  # 3 + 1
    assert levers.round_pool(1) == 0
    for calls in range(1, 200):
        pool = levers.round_pool(calls)
        assert pool + -(-pool // 3) <= calls < (pool + 1) + -(-(pool + 1) // 3)


def test_table_scores_the_chosen_metric() -> None:
    """With --metric chrf the table's score, CI and title are chrF++ (temporal's teacher has 1.5%
    exact matches: an EM table there would compare nothing)."""
    row = {
        "arm": "imitation", "teacher_calls": 101, "teacher_chars": 900, "train_examples": 74,
        "metric": "chrf", "chrf": 33.9, "chrf_ci95": [31.7, 36.3], "precision": "int8",
        "vs_imitation": {"diff": 0.0, "ci95": [0.0, 0.0]},
        "vs_teacher": {"diff": -3.1, "ci95": [-4.0, -2.2]}, "ece": None,
    }  # fmt: skip
    teacher = {"n": 200, "metrics": {"em": {"score": 0.015}, "chrf": {"score": 0.370}}}
    table = levers.markdown([row], teacher, "temporal", 100, "chrf")
    assert "teacher 37.0 chrF++)" in table and "| ONNX chrF++ [95% CI]" in table
    assert "| 33.9 [31.7, 36.3] (int8) | +0.0 [+0.0, +0.0] | -3.1 [-4.0, -2.2] |" in table

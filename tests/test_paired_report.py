"""The student-minus-teacher table of `distill run` (report.md, the model cards, report.html):
paired bootstrap differences on hand-made reports whose counts are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.evaluation.metrics import paired_bootstrap
from distill.evaluation.reports import paired_markdown, paired_vs_teacher
from distill.stages.report import write_run_report

REFS = ["a", "b", "c", "d"]


def report(kind: str, name: str, preds: list[str], inputs: list[str] | None = None) -> dict:
    """A report as eval writes it: em the mean of its per-example scores, chrf a corpus score
    that is not (as sacrebleu's chrF++ is not)."""
    inputs = inputs or [f"x{i}" for i in range(len(REFS))]
    examples = [
        {"index": i, "input": x, "reference": r, "prediction": p,
         "scores": {"em": float(p == r), "chrf": 1.0 if p == r else 0.2}}
        for i, (x, r, p) in enumerate(zip(inputs, REFS, preds, strict=True))
    ]  # fmt: skip
    em = sum(e["scores"]["em"] for e in examples) / len(examples)
    return {
        "target": name, "kind": kind, "name": name, "n": len(examples),
        "metrics": {"em": {"score": em, "ci95": [0.0, 1.0]},
                    "chrf": {"score": 0.123, "ci95": [0.0, 1.0]}},
        "settings": {"bootstrap_samples": 500}, "examples": examples,
    }  # fmt: skip


def test_paired_bootstrap_counts_and_bounds_the_difference() -> None:
    """Base right on 2 of 4, other on 3 (one more, none fewer): +25 points, 1 better, 0 worse,
        an interval inside [0, +100] (a resample's mean lies there: 0 when it never draws the row
    that differs, 100 when it draws only that one); no resampling: a point."""
    got = paired_bootstrap([1, 1, 0, 0], [1, 1, 1, 0], samples=2000)
    assert (got["diff"], got["better"], got["worse"]) == (25.0, 1, 0)
    assert 0.0 <= got["ci95"][0] < got["ci95"][1] <= 100.0
    assert paired_bootstrap([1, 0], [0, 0], samples=0) == {
        "diff": -50.0, "ci95": [-50.0, -50.0], "better": 0, "worse": 1
    }  # fmt: skip
    with pytest.raises(ValueError, match="no examples"):
        paired_bootstrap([], [])


def test_each_student_is_paired_with_the_teacher_on_exact_match_only() -> None:
    """Teacher right on a, b; the int8 student on a, b, c (+25: c alone); the torch student on
    a only (-25: b alone). chrF++ is a corpus score, not a mean of the rows: not paired. A
    student scored on other inputs is left out."""
    reports = [
        report("onnx", "student ONNX int8 (onnx)", ["a", "b", "c", "x"]),
        report("model", "student torch (model)", ["a", "x", "x", "x"]),
        report("onnx", "elsewhere", ["a", "b", "c", "d"], inputs=["y0", "y1", "y2", "y3"]),
        report("teacher", "teacher embedded", ["a", "b", "x", "x"]),
    ]
    rows = paired_vs_teacher(reports)
    assert [(r["target"], r["metric"], r["diff"], r["better"], r["worse"]) for r in rows] == [
        ("student ONNX int8 (onnx)", "em", 25.0, 1, 0),
        ("student torch (model)", "em", -25.0, 0, 1),
    ]
    lines = paired_markdown(reports).splitlines()
    assert lines[0] == ""
    assert lines[1] == (
        "| student - teacher | em (points, paired 95% CI) "
        "| rows only the student / only the teacher gets |"
    )
    onnx = rows[0]["ci95"]
    assert lines[3] == (
        f"| student ONNX int8 (onnx) | +25.0 [{onnx[0]:+.1f}, {onnx[1]:+.1f}] | 1 / 0 (em) |"
    )
    assert lines[4].startswith("| student torch (model) | -25.0 [") and len(lines) == 5


def test_no_teacher_or_no_rows_no_table() -> None:
    students = [report("onnx", "s", ["a", "b", "c", "d"])]
    assert paired_vs_teacher(students) == [] and paired_markdown(students) == ""
    teacher = report("teacher", "t", ["a", "b", "c", "d"])
    bare = {**teacher, "examples": []}
    assert paired_markdown([*students, bare]) == ""


def test_the_page_shows_the_paired_table(tmp_path: Path) -> None:
    """report.html holds the same cells as report.md's paired table."""
    reports = [
        report("onnx", "student ONNX int8 (onnx)", ["a", "b", "c", "x"]),
        report("teacher", "teacher embedded", ["a", "b", "x", "x"]),
    ]
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps({"test": "t.jsonl", "reports": reports}))
    page = write_run_report(run).read_text(encoding="utf-8")
    (row,) = paired_vs_teacher(reports)
    low, high = row["ci95"]
    assert "<th>student - teacher</th>" in page
    assert f'<td class="num">+25.0 [{low:+.1f}, {high:+.1f}]</td>' in page
    assert '<td class="num">1 / 0 (em)</td>' in page

"""benchmarks/run_time.py: stage times from the CLI's stage announcements, and its table."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import run_time  # noqa: E402


def test_each_stage_lasts_until_the_next_announcement_and_the_last_until_the_end() -> None:
    marks = [(1.0, "generate"), (301.0, "train"), (451.0, "export"), (481.0, "eval")]
    assert run_time.stage_times(marks, 541.0) == {
        "generate": 300.0,
        "train": 150.0,
        "export": 30.0,
        "eval": 60.0,
    }


def test_stage_lines_are_the_ones_distill_run_prints() -> None:
    """The pattern matches the pipeline's `== stage: ...` lines and nothing a stage logs."""
    assert run_time.STAGE.match("== generate: 300 examples from teacher 'embedded' -> x").group(1)
    assert run_time.STAGE.match("== train: x is up to date (same data and settings), skipping")
    assert not run_time.STAGE.match("quality gate: {}")
    assert not run_time.STAGE.match("=== generate")


def test_markdown_lists_stages_in_minutes_and_the_teacher_work() -> None:
    summary = {
        "task": "t",
        "examples": 300,
        "command": "distill run --task t.toml --out RUN --num-examples 300",
        "stages_s": {"generate": 360.0, "train": 150.0},
        "total_s": 540.0,
        "teacher": {"requests": 122, "teacher_pairs": 482, "accepted": 300, "yield": 0.6266},
    }
    md = run_time.markdown(summary)
    assert "| generate | 6.0 min (360 s) |" in md and "| **total** | **9.0 min** |" in md
    assert "122 requests, 482 pairs, 300 accepted (yield 0.63)" in md
    assert "Rejected:" not in md  # a summary from before the reasons were recorded
    summary["teacher"] |= {
        "rejected_by_reason": {"duplicate": 59, "leak": 104, "unparsable": 8},
        "repeats_within_answer": 56,
    }
    assert run_time.markdown(summary).endswith(
        "Rejected: leak 104, duplicate 59, unparsable 8 (56 of them repeats inside one answer).\n"
    )

"""`distill generate` with the real embedded teacher (llama.cpp): slow, run in CI's slow step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.task import load_task
from teachers.config import TeacherConfig

pytestmark = pytest.mark.slow


def test_embedded_teacher_writes_a_handful_of_valid_examples(tmp_path):
    task = load_task(Path(__file__).parents[1] / "examples" / "dates.toml")
    cfg = GenerateConfig(
        num_examples=3,
        pairs_per_request=3,
        output_regex=r"\d\d/\d\d/\d{4}",
        max_tokens=256,
        max_consecutive_failures=20,
    )
    # generous timeout: a timed-out request is retried from scratch, and a busy CPU is slow
    teacher_cfg = TeacherConfig(teacher="embedded", max_in_flight=2, timeout_s=1800.0)
    m = run_generate(task, cfg, teacher_cfg, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 == m["counts"]["accepted"]
    demos = {d.input for d in task.demonstrations}
    for row in rows:
        assert re.fullmatch(r"\d\d/\d\d/\d{4}", row["output"])
        assert row["input"].strip() and row["input"] not in demos
    assert m["teacher_accounting"]["completion_tokens"] > 0
    assert sum(m["splits"].values()) == 3  # train, validation, test

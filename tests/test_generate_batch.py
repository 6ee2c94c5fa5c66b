"""Batch mode of `distill generate` against the loopback server's Batch API and batch files.

The responder (shared with test_generate_run) is a pure function of the request body, so a
batch run and a streamed run over the same inputs must produce the same data and votes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_generate_run import TASK, phrase, reverse, rows
from test_generate_run import responder as answer

from distill.errors import UserError
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, run_batch_file

# Nothing listens here: batch-file runs must never contact the teacher.
DEAD_URL = "http://127.0.0.1:9/v1"


def write_inputs(path: Path, n: int = 6) -> Path:
    texts = [phrase(k) for k in range(n)] + ["a hard one to call", phrase(0)]
    path.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
    return path


def label_cfg(inputs: Path, **kw) -> GenerateConfig:
    return GenerateConfig(inputs=str(inputs), num_examples=50, **kw)


def outcome(out: Path, m: dict) -> tuple:
    """What must match between a batch and a streamed run: the data, rejections, votes."""
    examples = sorted((e["input"], e["output"]) for e in rows(out / "examples.jsonl"))
    c = m["counts"]
    return examples, c["rejected_by_reason"], c["vote_agreement_histogram"]


def streamed(tmp_path: Path, cfg: GenerateConfig) -> tuple:
    with FakeOpenAIServer(answer) as server:
        tcfg = TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=8)
        m = run_generate(TASK, cfg, tcfg, tmp_path / "streamed")
    return outcome(tmp_path / "streamed", m)


def results_for(requests: Path, dest: Path, keep=lambda i: True) -> Path:
    """Run a request file as `vllm run-batch` would (shuffled, to prove order does not matter)."""
    lines = run_batch_file(requests.read_text().splitlines(), answer)
    lines = [x for i, x in enumerate(lines) if keep(i)]
    random.Random(0).shuffle(lines)
    dest.write_text("".join(x + "\n" for x in lines))
    return dest


def test_batch_file_round_trip_equals_streamed_run(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    tcfg = TeacherConfig(teacher=DEAD_URL, model="fake")
    out, req = tmp_path / "batch", tmp_path / "requests.jsonl"
    m = run_generate(TASK, label_cfg(inputs, batch_file=str(req)), tcfg, out)
    assert m["stopped"] == "batch_pending" and m["counts"]["accepted"] == 0
    lines = [json.loads(x) for x in req.read_text().splitlines()]
    assert len(lines) == 7 * 3  # 3 votes for each distinct input
    assert {x["url"] for x in lines} == {"/v1/chat/completions"}
    assert len({x["custom_id"] for x in lines}) == 21
    results = results_for(req, tmp_path / "results.jsonl")
    m = run_generate(TASK, label_cfg(inputs, batch_results=str(results)), tcfg, out)
    assert m["stopped"] is None and m["complete"]
    assert outcome(out, m) == streamed(tmp_path, label_cfg(inputs))
    assert m["sessions"][-1]["batch"] == {"ingested": 21, "ignored": 0, "pending": 0}
    before = (out / "examples.jsonl").read_text()
    # ingesting the same file again counts nothing twice
    again = run_generate(TASK, label_cfg(inputs, batch_results=str(results)), tcfg, out)
    assert (out / "examples.jsonl").read_text() == before
    assert outcome(out, again) == outcome(out, m)


def test_partial_results_resume_with_the_same_custom_ids(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    tcfg = TeacherConfig(teacher=DEAD_URL, model="fake")
    out, req = tmp_path / "batch", tmp_path / "requests.jsonl"
    run_generate(TASK, label_cfg(inputs, batch_file=str(req)), tcfg, out)
    first = [json.loads(x)["custom_id"] for x in req.read_text().splitlines()]
    half = results_for(req, tmp_path / "half.jsonl", keep=lambda i: i % 2 == 0)
    m = run_generate(TASK, label_cfg(inputs, batch_results=str(half)), tcfg, out)
    assert m["stopped"] == "batch_pending" and m["sessions"][-1]["batch"]["pending"] == 10
    # the next batch file holds exactly the requests still out, with their custom_ids
    req2 = tmp_path / "requests2.jsonl"
    run_generate(TASK, label_cfg(inputs, batch_file=str(req2)), tcfg, out)
    second = [json.loads(x)["custom_id"] for x in req2.read_text().splitlines()]
    assert second == [c for i, c in enumerate(first) if i % 2 == 1]
    rest = results_for(req2, tmp_path / "rest.jsonl")
    m = run_generate(TASK, label_cfg(inputs, batch_results=str(rest)), tcfg, out)
    assert m["complete"] and outcome(out, m) == streamed(tmp_path, label_cfg(inputs))


def test_batch_file_refuses_the_embedded_teacher(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    cfg = label_cfg(inputs, batch_file=str(tmp_path / "r.jsonl"))
    with pytest.raises(UserError, match=r"--teacher: batch mode needs"):
        run_generate(TASK, cfg, TeacherConfig(), tmp_path / "out")


def test_batch_settings_are_checked():
    with pytest.raises(ValueError, match=r"^batch_file: cannot be combined with batch"):
        GenerateConfig(batch=True, batch_file="x.jsonl")
    with pytest.raises(ValueError, match=r"^cancel: "):
        GenerateConfig(cancel=True)
    assert reverse("a b") == "b a"

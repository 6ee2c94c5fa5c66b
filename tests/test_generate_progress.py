"""Generate makes progress or stops: defaults, stall guard, and no teacher work past the target.

Against the loopback OpenAI server (`FakeOpenAIServer`), with the responder of
test_generate_run (pairs and labels derived from each request's seed).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_generate_run import TASK, _task_file, label_input, phrase, responder, reverse, rows
from test_generate_run import teacher as teacher_cfg

from distill.cli import main
from distill.configs import build_config
from distill.errors import UserError
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from teachers.testing import FakeOpenAIServer


def write_inputs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"input": phrase(i)}) + "\n" for i in range(n)))
    return path


def test_chain_of_thought_in_synthesize_mode_is_refused_by_name():
    """CoT synthesize sent no label request and accepted nothing, forever: refuse it up front."""
    with pytest.raises(UserError, match=r"key 'chain_of_thought'.*label or synthesize-label"):
        build_config(GenerateConfig, {"chain_of_thought": True}, source="t.toml", section="g")
    assert GenerateConfig(chain_of_thought=True, mode="synthesize-label").chain_of_thought


def test_undecidable_answers_stop_the_run(tmp_path):
    """Valid answers that never become an example (the old CoT-synthesize loop) stop the run."""
    cfg = GenerateConfig(num_examples=5, max_consecutive_failures=2)
    cfg.chain_of_thought = True  # bypass the config check: the guard must catch it anyway
    with FakeOpenAIServer(responder) as server:
        with pytest.raises(UserError, match=r"in a row.*no usable example|accepted no example"):
            run_generate(TASK, cfg, teacher_cfg(server), tmp_path)
        assert len(server.requests) <= 2 + 8
    assert json.loads((tmp_path / "manifest.json").read_text())["stopped"] == "failures"


def test_votes_that_never_agree_stop_the_run(tmp_path):
    """Every answer is a valid label but no vote ever reaches agreement: stop, do not spin.

    The server refuses (401) after 600 requests, so the unfixed loop ends as 'fatal', not 'failures'.
    """

    def disagree(body: dict, index: int) -> str:
        if label_input(body) is not None:
            return f"guess {int(body['seed'])}"  # every vote different
        return responder(body, index)

    def refuse_late(body: dict, index: int) -> str | None:
        return "401" if index >= 600 else None

    cfg = GenerateConfig(
        num_examples=20, mode="synthesize-label", max_consecutive_failures=5, votes=3
    )
    with FakeOpenAIServer(disagree, fault_fn=refuse_late) as server:
        with pytest.raises(UserError, match=r"accepted no example"):
            run_generate(TASK, cfg, teacher_cfg(server), tmp_path)
        assert len(server.requests) <= 5 * 3 + 8 + 8
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stopped"] == "failures" and manifest["counts"]["accepted"] == 0


def test_label_mode_labels_every_input_by_default(tmp_path, capsys):
    task, inputs = _task_file(tmp_path), write_inputs(tmp_path / "in.jsonl", 130)
    with FakeOpenAIServer(responder) as server:
        base = ["generate", "--task", str(task), "--inputs", str(inputs)]
        base += ["--teacher", server.base_url, "--model", "fake", "--max-in-flight", "16"]
        assert main([*base, "--out", str(tmp_path / "all")]) == 0
        out_all = capsys.readouterr().out
        assert main([*base, "--out", str(tmp_path / "cap"), "--num-examples", "50"]) == 0
        out_cap = capsys.readouterr().out
    examples = rows(tmp_path / "all" / "examples.jsonl")
    assert len(examples) == 130 and all(e["output"] == reverse(e["input"]) for e in examples)
    assert "inputs: 130 given, 130 labelled, 0 rejected, 0 left" in out_all
    assert len(rows(tmp_path / "cap" / "examples.jsonl")) == 50
    assert "inputs: 130 given, 50 labelled, 0 rejected, 80 left" in out_cap


def test_target_met_cancels_requests_in_flight_and_resume_pays_nothing_twice(tmp_path):
    """Requests still in flight when the target is met are cancelled, not waited for.

    The first six answers hold one pair each (yield 1, so the sampler keeps about the
    remaining target in flight); later ones hold three, so the fast ones meet the target
    while the slow ones (odd seeds from 7 on, 20 s) are still in flight.
    """

    def surprise(body: dict, index: int) -> str:
        seed = int(body["seed"])
        k = 1 if seed < 6 else 3
        return json.dumps(
            [
                {"input": p, "output": reverse(p)}
                for p in map(phrase, range(10 * seed, 10 * seed + k))
            ]
        )

    def slow_odd(body: dict, index: int) -> str | None:
        return "slow" if int(body["seed"]) >= 7 and int(body["seed"]) % 2 else None

    cfg = GenerateConfig(num_examples=12, pairs_per_request=1)
    with FakeOpenAIServer(surprise, fault_fn=slow_odd, slow_s=20.0) as server:
        t0 = time.monotonic()
        m = run_generate(TASK, cfg, teacher_cfg(server), tmp_path)
        wall = time.monotonic() - t0
        sent = len(server.requests)
        assert wall < 10.0  # the slow answers (20 s) were not waited for
        c = m["counts"]
        assert c["accepted"] == 12 and c["cancelled_in_flight"] > 0
        journal = rows(tmp_path / "journal.jsonl")
        assert sum(r["event"] == "cancel" for r in journal) == c["cancelled_in_flight"]
        again = run_generate(TASK, cfg, teacher_cfg(server), tmp_path)
        assert len(server.requests) == sent and again["counts"]["accepted"] == 12
        bigger = GenerateConfig(num_examples=14, pairs_per_request=1)
        server.fault_fn = None
        m = run_generate(TASK, bigger, teacher_cfg(server), tmp_path)
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    assert m["counts"]["accepted"] == 14
    assert len(bodies) == len(set(bodies))  # no cancelled request was sent again

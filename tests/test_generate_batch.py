"""Batch mode of `distill generate` against the loopback server's Batch API and batch files.

The responder (shared with test_generate_run) is a pure function of the request body, so a
batch run and a streamed run over the same inputs must produce the same data and votes.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_generate_run import SYNTH_CAP_2_PAIRS, TASK, phrase, reverse, rows
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
    kw.setdefault("votes", 3)  # the vote paths are what batching must keep
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


def test_a_batch_session_killed_before_its_manifest_still_counts_its_tokens_and_cost(tmp_path):
    """Batch answers are journaled with their session's running totals, as streamed ones are:
    a session that ingested half the results and was killed before writing its manifest (its
    manifest never replaced the previous one) still counts in the run's tokens and cost, which
    then equal those of one session that ingested everything."""
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    prices = str(write_prices(tmp_path / "prices.json"))
    tcfg = TeacherConfig(teacher=DEAD_URL, model="fake", prices_file=prices)
    whole, req = tmp_path / "whole", tmp_path / "requests.jsonl"
    run_generate(TASK, label_cfg(inputs, batch_file=str(req)), tcfg, whole)
    results = results_for(req, tmp_path / "results.jsonl")
    once = run_generate(TASK, label_cfg(inputs, batch_results=str(results)), tcfg, whole)
    assert once["complete"] and once["cost_usd"] > 0

    out, req = tmp_path / "killed", tmp_path / "requests2.jsonl"
    run_generate(TASK, label_cfg(inputs, batch_file=str(req)), tcfg, out)
    before = (out / "manifest.json").read_bytes()
    half = results_for(req, tmp_path / "half.jsonl", keep=lambda i: i % 2 == 0)
    m = run_generate(TASK, label_cfg(inputs, batch_results=str(half)), tcfg, out)
    assert 0 < m["cost_usd"] < once["cost_usd"]
    (out / "manifest.json").write_bytes(before)  # the kill: this session's manifest is lost
    m = run_generate(TASK, label_cfg(inputs, batch_results=str(results)), tcfg, out)
    assert m["complete"] and outcome(out, m) == outcome(whole, once)
    assert m["tokens"] == once["tokens"] and m["tokens"]["prompt"] > 0
    assert m["cost_usd"] == pytest.approx(once["cost_usd"])


def test_batch_file_refuses_the_embedded_teacher(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    cfg = label_cfg(inputs, batch_file=str(tmp_path / "r.jsonl"))
    with pytest.raises(UserError, match=r"--teacher: batch mode needs"):
        run_generate(TASK, cfg, TeacherConfig(), tmp_path / "out")


def test_batch_settings_are_checked():
    with pytest.raises(ValueError, match=r"^batch_file: cannot be combined with --batch;"):
        GenerateConfig(batch=True, batch_file="x.jsonl")
    with pytest.raises(ValueError, match=r"^cancel: "):
        GenerateConfig(cancel=True)
    assert reverse("a b") == "b a"


# ---------------------------------------------------------------------- the Batch API

FAST = {"batch": True, "batch_poll_s": 0.01}


def api_teacher(server: FakeOpenAIServer, **kw) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", **kw)


def test_batch_api_run_equals_streamed_run_and_streams_nothing(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        m = run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert server.submissions == 1 and len(server.batch_submissions[0]) == 21
        assert server.requests == []  # no streamed chat request
        # a rerun finds everything answered: it neither submits nor re-attaches
        run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert server.submissions == 1
    assert m["complete"] and outcome(tmp_path / "b", m) == streamed(tmp_path, label_cfg(inputs))


def test_cached_answers_are_never_submitted(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    out = tmp_path / "run"
    with FakeOpenAIServer(answer) as server:
        tcfg = api_teacher(server)
        run_generate(TASK, label_cfg(inputs), tcfg, out)  # streamed: fills the cache
        streamed_requests = len(server.requests)
        cfg = label_cfg(inputs, overwrite=True, **FAST)
        # same settings, a journal started afresh: every answer is in the cache
        (out / "journal.jsonl").unlink()
        for name in ("examples.jsonl", "rejected.jsonl"):
            (out / name).unlink()
        m = run_generate(TASK, cfg, tcfg, out)
        assert server.submissions == 0 and len(server.requests) == streamed_requests
    assert m["teacher_accounting"]["cache_hits"] == 21 and m["complete"]


def test_expired_batch_resubmits_only_the_missing_requests(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        server.add_batch_outcomes("expired:5")
        m = run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        first, second = server.batch_submissions
    assert second == first[5:]  # the same custom_ids (same seeds), nothing answered twice
    assert m["complete"] and outcome(tmp_path / "b", m) == streamed(tmp_path, label_cfg(inputs))


def test_partly_failed_batch_sends_replacement_votes(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        server.add_batch_outcomes("errors:2")
        m = run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        first, second = server.batch_submissions
    assert len(second) == 2 and not set(second) & set(first)  # fresh votes, fresh seeds
    assert m["counts"]["rejected_by_reason"]["request_failed"] == 2
    examples = rows(tmp_path / "b" / "examples.jsonl")
    assert sorted(e["input"] for e in examples) == sorted(phrase(k) for k in range(6))


def test_failed_batch_stops_and_a_rerun_resubmits_it(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        server.add_batch_outcomes("failed")
        with pytest.raises(UserError, match=r"batch batch-0 failed: invalid_request"):
            run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        m = run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert server.batch_submissions[1] == server.batch_submissions[0]
    assert m["complete"]


def write_prices(path: Path) -> Path:
    # USD per 1M tokens; the batch column at half price, as OpenAI's
    prices = {"fake": {"input": 2.0, "output": 8.0, "batch_input": 1.0, "batch_output": 4.0}}
    path.write_text(json.dumps(prices))
    return path


def test_batch_costs_half_of_the_streamed_run(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    prices = str(write_prices(tmp_path / "prices.json"))
    with FakeOpenAIServer(answer) as server:
        tcfg = api_teacher(server, prices_file=prices)
        s = run_generate(TASK, label_cfg(inputs), tcfg, tmp_path / "s")
        b = run_generate(TASK, label_cfg(inputs, **FAST), tcfg, tmp_path / "b")
    assert s["tokens"] == b["tokens"] and s["cost_usd"] > 0
    assert b["cost_usd"] == pytest.approx(s["cost_usd"] / 2)


def test_budget_reserves_the_batch_maximum_and_is_never_exceeded(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    prices = str(write_prices(tmp_path / "prices.json"))
    budget = 0.01
    with FakeOpenAIServer(answer) as server:
        tcfg = api_teacher(server, prices_file=prices, budget_usd=budget)
        cfg = label_cfg(inputs, max_tokens=64, **FAST)
        m = run_generate(TASK, cfg, tcfg, tmp_path / "b")
        sent = [len(x) for x in server.batch_submissions]
    assert m["stopped"] == "budget" and 0 < sum(sent) < 21
    log = rows(tmp_path / "b" / "batches.jsonl")
    assert sum(r["max_cost_usd"] for r in log if r["event"] == "submitted") <= budget
    assert 0 < m["cost_usd"] <= budget


def _default_sigint() -> None:
    """Give the child Ctrl-C's default handling, as a terminal's foreground job has.

    A shell that starts a background job without job control (`nohup cmd &`, some CI
    runners) sets SIGINT to ignored, and children inherit that: Python then never raises
    KeyboardInterrupt and the test would wait out its timeout instead of testing Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupted_batch_run(tmp_path: Path, server: FakeOpenAIServer) -> str:
    """`distill generate --batch` in a subprocess, Ctrl-C'd while its batch is polled."""
    from test_generate_run import _cli, _task_file

    inputs = write_inputs(tmp_path / "inputs.jsonl")
    cmd = _cli(
        "--task", str(_task_file(tmp_path)), "--out", str(tmp_path / "b"),
        "--inputs", str(inputs), "--num-examples", "50", "--teacher", server.base_url,
        "--model", "fake", "--batch", "--batch-poll-s", "0.05", "--votes", "3",
    )  # fmt: skip
    server.hold_batches = True  # the batch takes "hours"
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not server.batches.get("batch-0", {}).get("_polls_seen"):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    server.hold_batches = False
    return stderr


def test_ctrl_c_leaves_the_batch_running_and_a_rerun_reattaches(tmp_path):
    from distill.task import load_task

    with FakeOpenAIServer(answer) as server:
        stderr = interrupted_batch_run(tmp_path, server)
        assert "batch batch-0 is still running" in stderr and "--cancel" in stderr
        assert server.submissions == 1
        task = load_task(tmp_path / "task.toml")
        inputs = tmp_path / "inputs.jsonl"
        m = run_generate(task, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert server.submissions == 1  # re-attached, not resubmitted
    assert m["complete"] and m["counts"]["accepted"] == 6


def test_cancel_keeps_the_answers_and_a_rerun_submits_the_rest(tmp_path):
    from distill.task import load_task

    with FakeOpenAIServer(answer) as server:
        interrupted_batch_run(tmp_path, server)
        task = load_task(tmp_path / "task.toml")
        inputs = tmp_path / "inputs.jsonl"
        cfg = label_cfg(inputs, cancel=True, **FAST)
        m = run_generate(task, cfg, api_teacher(server), tmp_path / "b")
        assert m["stopped"] == "cancelled" and server.batches["batch-0"]["status"] == "cancelled"
        assert server.submissions == 1
        m = run_generate(task, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert server.batch_submissions[1] == server.batch_submissions[0]
    assert m["complete"] and m["counts"]["accepted"] == 6


def test_synthesize_mode_runs_in_rounds_that_anneal_and_grow_the_pool(tmp_path):
    """Synthesize needs the pool and temperature of what was accepted so far: one batch per
    round, each round asking for what the target still needs at the current temperature."""

    def one_pair(body: dict, index: int) -> str:
        p = phrase(int(body["seed"]))
        return json.dumps([{"input": p, "output": reverse(p)}])

    with FakeOpenAIServer(one_pair) as server:
        cfg = GenerateConfig(num_examples=12, pairs_per_request=2, few_shot_accepted=3, **FAST)
        m = run_generate(TASK, cfg, api_teacher(server), tmp_path / "b")
        batches = [b["_lines"] for b in server.batches.values()]
    assert m["complete"] and m["counts"]["accepted"] == 12 and server.requests == []
    temps = [{line["body"]["temperature"] for line in lines} for lines in batches]
    assert len(batches) >= 2 and temps[0] == {0.4} and min(temps[1]) > 0.4
    # batch lines carry the synthesize size, as streamed requests do
    assert {line["body"]["max_tokens"] for lines in batches for line in lines} == {
        SYNTH_CAP_2_PAIRS
    }
    first = {e["input"] for e in rows(tmp_path / "b" / "examples.jsonl")[: len(batches[0])]}
    prompts = [json.dumps(line["body"]["messages"]) for line in batches[1]]
    assert any(text in p for p in prompts for text in first)  # round 2 shows round 1's pool


def test_cli_bad_batch_input_exits_2_with_one_line(tmp_path, capsys):
    from test_generate_run import _task_file

    from distill.cli import main

    task, inputs = _task_file(tmp_path), write_inputs(tmp_path / "inputs.jsonl")
    base = ["generate", "--task", str(task), "--inputs", str(inputs)]
    base += ["--teacher", DEAD_URL, "--model", "fake"]
    cases = {
        ("--batch-results", str(tmp_path / "missing.jsonl")): "--batch-results: cannot read",
        ("--batch", "--batch-file", "x.jsonl"): "--batch-file: cannot be combined with --batch",
        ("--cancel",): "--cancel: cancels the running batch of --batch",
        ("--batch-poll-s", "0"): "--batch-poll-s: must be > 0",
        ("--batch", "--teacher", "openai:gpt-4o-mini", "--api-key-env", "NO_SUCH_KEY_VAR"): (
            "--api-key-env: environment variable NO_SUCH_KEY_VAR is not set"
        ),
        ("--batch", "--teacher", "embedded"): "--teacher: batch mode needs",
    }
    for n, (flags, message) in enumerate(cases.items()):
        assert main([*base, "--out", str(tmp_path / f"o{n}"), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_api_key_is_sent_but_never_written(tmp_path, monkeypatch):
    key = "sk-SENTINEL-batch-0123456789"
    monkeypatch.setenv("BATCH_TEST_KEY", key)
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        server.add_batch_outcomes("failed")
        tcfg = api_teacher(server, api_key_env="BATCH_TEST_KEY")
        with pytest.raises(UserError) as err:
            run_generate(TASK, label_cfg(inputs, **FAST), tcfg, tmp_path / "b")
        run_generate(TASK, label_cfg(inputs, **FAST), tcfg, tmp_path / "b")
        assert key in server.api_keys_seen
    assert key not in str(err.value)
    for path in (tmp_path / "b").rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_a_batch_that_runs_nothing_stops_instead_of_looping(tmp_path):
    inputs = write_inputs(tmp_path / "inputs.jsonl")
    with FakeOpenAIServer(answer) as server:
        server.add_batch_outcomes("expired:0")
        with pytest.raises(UserError, match=r"batch batch-0 \(expired\) answered none"):
            run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        m = run_generate(TASK, label_cfg(inputs, **FAST), api_teacher(server), tmp_path / "b")
        assert (
            server.submissions == 2 and server.batch_submissions[1] == server.batch_submissions[0]
        )
    assert m["complete"]


def test_poll_interval_grows_but_stays_within_20x_the_first_and_5_minutes() -> None:
    """1.5x per poll, capped at 20x --batch-poll-s (a short interval stays short) and 300 s."""
    from distill.generate.batch import next_poll_wait

    waits = [0.05]
    for _ in range(12):
        waits.append(next_poll_wait(waits[-1], 0.05))
    assert waits[:4] == pytest.approx([0.05, 0.075, 0.1125, 0.16875])
    assert max(waits) == pytest.approx(1.0) and waits[-1] == pytest.approx(1.0)
    assert next_poll_wait(250.0, 60.0) == 300.0
    assert next_poll_wait(10.0, 10.0) == 15.0

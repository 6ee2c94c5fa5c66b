"""`run_generate` and `distill generate` end to end against the loopback OpenAI server.

The responder derives everything from the request body (seed, prompt), so answers are a pure
function of the request: what a resumed run is served can be checked exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.errors import UserError
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.generate.dedup import input_key
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer
from teachers.testing import word_phrase as phrase

TASK = TaskSpec(
    name="reverse",
    instruction="Reverse the order of the words.",
    demonstrations=(
        Demonstration("red green blue", "blue green red"),
        Demonstration("one two", "two one"),
    ),
)


def reverse(text: str) -> str:
    return " ".join(reversed(text.split()))


def label_input(body: dict) -> str | None:
    """The input of a label request (demos as chat turns, the input last), else None.

    Synthesize requests ask for JSON in their single user message; label requests do not.
    """
    if any("JSON" in m["content"] for m in body["messages"]):
        return None
    return body["messages"][-1]["content"].strip()


def responder(body: dict, index: int) -> str:
    """Synthesize: 2 fresh pairs from the seed; label: the reversed input (noisy for 'hard')."""
    seed = int(body["seed"])
    text = label_input(body)
    if text is not None:
        if "hard" in text:
            return f"guess {seed % 3}"  # three different answers: agreement 1/3
        return reverse(text)
    return json.dumps(
        [{"input": phrase(2 * seed + j), "output": reverse(phrase(2 * seed + j))} for j in range(2)]
    )


def teacher(server: FakeOpenAIServer, **kw) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=8, **kw)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_synthesize_run_outputs_and_leak_check(tmp_path):
    leak = phrase(2 * 3)  # the first pair of the request with seed 3: must be blocked
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(num_examples=30, pairs_per_request=2, seed=0)
        m = run_generate(TASK, cfg, teacher(server), tmp_path, exclude_inputs=[leak])
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    examples = rows(tmp_path / "examples.jsonl")
    assert len(examples) == 30 and m["counts"]["accepted"] == 30
    assert all(e["output"] == reverse(e["input"]) for e in examples)
    assert len({input_key(e["input"]) for e in examples}) == 30
    assert leak not in {e["input"] for e in examples}
    assert m["counts"]["leaks_blocked"] == 1
    assert [r["input"] for r in rows(tmp_path / "rejected.jsonl")] == [leak]
    assert m["splits"]["train"] + m["splits"]["validation"] + m["splits"]["test"] == 30
    assert m["task"] == {"name": "reverse", "instruction": "Reverse the order of the words."}
    assert len(bodies) == len(set(bodies))  # every request distinct
    from datasets import load_from_disk

    hf = load_from_disk(str(tmp_path / "hf"))
    assert hf["train"].num_rows == m["splits"]["train"]
    assert hf["validation"].num_rows == m["splits"]["validation"]
    # annealing: temperatures rise with the accepted count
    temps = [b["temperature"] for b in server.requests]
    assert temps[0] == 0.4 and max(temps) > 0.4 and all(t <= 1.0 for t in temps)


def test_synthesize_prompts_show_accepted_examples_only_when_asked(tmp_path):
    """By default (few_shot_accepted = 0, chosen by the data ablation) every synthesize prompt
    shows demonstrations and never an accepted example; --few-shot-accepted 3 shows up to 3."""

    def shown(prompt: str) -> list[str]:
        return [json.loads(x)["input"] for x in prompt.splitlines() if x.startswith('{"input"')]

    demos = {d.input for d in TASK.demonstrations}
    for k in (0, 3):
        with FakeOpenAIServer(responder) as server:
            cfg = GenerateConfig(
                num_examples=20, pairs_per_request=2, **({"few_shot_accepted": 3} if k else {})
            )
            run_generate(TASK, cfg, teacher(server), tmp_path / str(k))
            prompts = [b["messages"][1]["content"] for b in server.requests]
        pooled = [len([x for x in shown(p) if x not in demos]) for p in prompts]
        assert all(len(set(shown(p)) & demos) == 2 for p in prompts)  # both demonstrations
        if k == 0:
            assert pooled == [0] * len(prompts)
        else:  # nothing accepted yet when the first request goes out
            assert pooled[0] == 0 and max(pooled) == 3


# The longest demonstration of TASK as a prompt line is 55 characters, which
# `estimate_tokens` reads as 55 // 3 + 4 = 22 tokens; 2 pairs may take 2 x 22 each, plus 32.
SYNTH_CAP_2_PAIRS = 2 * 2 * 22 + 32


def test_synthesize_answers_get_room_sized_from_the_demonstrations(tmp_path):
    """Synthesize requests go out with max_tokens sized from the demonstrations (120 for two
    pairs of TASK), label requests with --max-tokens; --synth-max-tokens and a lower
    --max-tokens override the size, and the resolved size is in the run's settings."""
    cases = [
        ({}, SYNTH_CAP_2_PAIRS, 512),
        ({"synth_max_tokens": 300}, 300, 512),
        ({"max_tokens": 50}, 50, 50),
    ]
    for k, (extra, synth, label) in enumerate(cases):
        cfg = GenerateConfig(
            num_examples=6, pairs_per_request=2, mode="synthesize-label", votes=3, **extra
        )
        with FakeOpenAIServer(responder) as server:
            run_generate(TASK, cfg, teacher(server), tmp_path / str(k))
        sent = {(label_input(b) is None, b["max_tokens"]) for b in server.requests}
        assert sent == {(True, synth), (False, label)}
        manifest = json.loads((tmp_path / str(k) / "manifest.json").read_text())
        assert manifest["synth_max_tokens"] == synth
        assert manifest["settings"]["synth_max_tokens"] == extra.get("synth_max_tokens")


def test_a_synthesize_answer_that_loops_is_cut_and_keeps_its_complete_pairs(tmp_path):
    """A teacher that writes 40 pairs when asked for 2 stops at the synthesize size (120 fake
    tokens: 10 whole pairs of 12 words each) and those 10 pairs are still used; with
    --synth-max-tokens 512 every answer runs on to all 40."""

    def looping(body: dict, index: int) -> str:
        seed = int(body["seed"])
        texts = [phrase(40 * seed + j, 4) for j in range(40)]  # 5 words: 12 a JSON pair
        return json.dumps([{"input": t, "output": reverse(t)} for t in texts])

    for k, (extra, pairs) in enumerate([({}, 10), ({"synth_max_tokens": 512}, 40)]):
        cfg = GenerateConfig(num_examples=30, pairs_per_request=2, **extra)
        with FakeOpenAIServer(looping) as server:
            one_at_a_time = TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=1)
            m = run_generate(TASK, cfg, one_at_a_time, tmp_path / str(k))
            answered = len(server.requests)  # none cancelled: one request at a time
        assert m["counts"]["teacher_pairs"] == pairs * answered
        assert m["tokens"]["completion"] == 12 * pairs * answered
        assert m["counts"]["accepted"] == 30


def test_synth_max_tokens_is_in_the_fingerprint_of_synthesize_runs_only(tmp_path):
    """Changing the synthesize size changes which requests a synthesize run sends, so a rerun
    under another size is refused; a label run sends no synthesize request and keeps its
    fingerprint (runs made before the setting stay resumable)."""
    from distill.generate.run import run_fingerprint

    tcfg = TeacherConfig(teacher="http://127.0.0.1:9/v1", model="fake")
    label = GenerateConfig(inputs="in.jsonl", mode="label")
    _, payload = run_fingerprint(TASK, label, tcfg, ["a b"], [])
    assert "synth_max_tokens" not in payload["settings"]
    _, payload = run_fingerprint(TASK, GenerateConfig(pairs_per_request=2), tcfg, [], [])
    assert payload["settings"]["synth_max_tokens"] == SYNTH_CAP_2_PAIRS
    with FakeOpenAIServer(responder) as server:
        run_generate(TASK, GenerateConfig(num_examples=4), teacher(server), tmp_path)
        with pytest.raises(UserError, match=r"different settings.*--overwrite"):
            cfg = GenerateConfig(num_examples=4, synth_max_tokens=64)
            run_generate(TASK, cfg, teacher(server), tmp_path)


def test_rerun_same_settings_sends_nothing_and_conflict_is_refused(tmp_path):
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(num_examples=10, pairs_per_request=2)
        run_generate(TASK, cfg, teacher(server), tmp_path)
        sent = len(server.requests)
        before = (tmp_path / "examples.jsonl").read_text()
        m = run_generate(TASK, cfg, teacher(server), tmp_path)
        assert len(server.requests) == sent and m["counts"]["accepted"] == 10
        assert (tmp_path / "examples.jsonl").read_text() == before
        # a larger target extends the same run (num_examples is not in the fingerprint)
        m = run_generate(
            TASK, GenerateConfig(num_examples=16, pairs_per_request=2), teacher(server), tmp_path
        )
        assert m["counts"]["accepted"] == 16
        assert (tmp_path / "examples.jsonl").read_text().startswith(before)
        # it names what moved: the seed, and the default pairs_per_request with its size cap
        changed = r"settings\.pairs_per_request, settings\.seed, settings\.synth_max_tokens"
        with pytest.raises(UserError, match=rf"different settings \(changed: {changed}; "):
            run_generate(TASK, GenerateConfig(num_examples=10, seed=5), teacher(server), tmp_path)
        m = run_generate(
            TASK, GenerateConfig(num_examples=4, seed=5, overwrite=True), teacher(server), tmp_path
        )
        assert len(rows(tmp_path / "examples.jsonl")) == 4


def test_fresh_and_overwritten_runs_keep_the_teacher_cache(tmp_path):
    """A cache copied into a fresh directory, or kept across --overwrite, answers every request.

    The cache key is the whole request, so replaying it can only return the answer the teacher
    gave to that identical request: the examples are byte-identical and nothing is re-sent.
    """
    first, second = tmp_path / "first", tmp_path / "second"
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(num_examples=10, pairs_per_request=2)
        run_generate(TASK, cfg, teacher(server), first)
        sent = len(server.requests)
        second.mkdir()
        shutil.copy(first / "teacher_cache.sqlite", second / "teacher_cache.sqlite")
        run_generate(TASK, cfg, teacher(server), second)
        assert len(server.requests) == sent
        assert (second / "examples.jsonl").read_bytes() == (first / "examples.jsonl").read_bytes()
        # --overwrite discards the run's files, not the answers it paid for
        other = GenerateConfig(num_examples=10, pairs_per_request=2, seed=5, overwrite=True)
        run_generate(TASK, other, teacher(server), second)  # another seed: new requests
        after_other = len(server.requests)
        assert after_other > sent
        again = GenerateConfig(num_examples=10, pairs_per_request=2, overwrite=True)
        run_generate(TASK, again, teacher(server), second)
        assert len(server.requests) == after_other
        assert (second / "examples.jsonl").read_bytes() == (first / "examples.jsonl").read_bytes()


def test_label_mode_votes_and_rejects_low_agreement(tmp_path):
    inputs = tmp_path / "inputs.jsonl"
    texts = [phrase(n) for n in range(6)] + ["a hard one to call", phrase(0)]
    inputs.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(inputs=str(inputs), num_examples=50, votes=3)
        m = run_generate(TASK, cfg, teacher(server), tmp_path / "run")
        label_reqs = [label_input(b) for b in server.requests]
    assert m["votes"] == 3 and m["mode"] == "label"
    examples = rows(tmp_path / "run" / "examples.jsonl")
    assert [e["input"] for e in examples] == texts[:6]  # the duplicate last line is dropped
    assert all(e["output"] == reverse(e["input"]) for e in examples)
    c = m["counts"]
    assert c["rejected_by_reason"] == {"duplicate": 1, "low_agreement": 1}
    assert c["vote_agreement_histogram"] == {"0.33": 1, "1.00": 6}
    assert len(label_reqs) == 7 * 3  # k=3 samples per distinct input, no more
    assert m["message"].startswith("inputs exhausted: 6 of 50")


def test_chance_arrivals_join_the_vote(tmp_path):
    """synthesize-label: an input written twice by the teacher already has 2 of its 3 votes."""

    def twice(body: dict, index: int) -> str:
        text = label_input(body)
        if text is not None:
            return reverse(text)
        p = phrase(int(body["seed"]))
        return json.dumps([{"input": p, "output": reverse(p)}] * 2)

    with FakeOpenAIServer(twice) as server:
        cfg = GenerateConfig(num_examples=5, mode="synthesize-label", pairs_per_request=2, votes=3)
        m = run_generate(TASK, cfg, teacher(server), tmp_path)
        labels = [label_input(b) for b in server.requests if label_input(b) is not None]
    examples = rows(tmp_path / "examples.jsonl")
    assert len(examples) == 5 and m["counts"]["vote_agreement_histogram"]["1.00"] >= 5
    for e in examples:
        assert labels.count(e["input"]) == 1  # only the third vote was asked for


def test_garbage_teacher_stops_with_reason(tmp_path):
    with FakeOpenAIServer(lambda body, i: "Sorry, I can't do that.") as server:
        cfg = GenerateConfig(num_examples=5, max_consecutive_failures=6)
        with pytest.raises(UserError, match=r"6 teacher answers in a row.*unparsable"):
            run_generate(TASK, cfg, teacher(server), tmp_path)
        assert len(server.requests) <= 6 + 8  # bounded: the failures plus what was in flight
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stopped"] == "failures" and manifest["counts"]["accepted"] == 0


def test_regex_filter_rejects_with_reason(tmp_path):
    def mixed(body: dict, index: int) -> str:
        s = int(body["seed"])
        return json.dumps([{"input": phrase(s), "output": "BAD" if s % 2 else reverse(phrase(s))}])

    with FakeOpenAIServer(mixed) as server:
        cfg = GenerateConfig(num_examples=6, pairs_per_request=1, output_regex=r"[a-z0-9 ]+")
        m = run_generate(TASK, cfg, teacher(server), tmp_path)
    assert m["counts"]["accepted"] == 6
    rejected = rows(tmp_path / "rejected.jsonl")
    assert rejected and {r["reason"] for r in rejected} == {"output_regex_mismatch"}
    assert all(r["output"] == "BAD" for r in rejected)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "distill", "generate", *args]


def _task_file(tmp_path: Path) -> Path:
    p = tmp_path / "task.toml"
    p.write_text(
        'name = "reverse"\ninstruction = "Reverse the order of the words."\n'
        '[[demonstrations]]\ninput = "red green blue"\noutput = "blue green red"\n'
    )
    return p


def test_cli_bad_inputs_exit_2(tmp_path):
    task = _task_file(tmp_path)
    bad = tmp_path / "bad.jsonl"
    cases = {
        '{"input": "ok"}\n{"input": "x", "label": 1}\n': "bad.jsonl:2: unknown field 'label'",
        "": "no examples",
        '{"input": 5}\n': "bad.jsonl:1: field 'input' must be a string",
    }
    for content, message in cases.items():
        bad.write_text(content)
        proc = subprocess.run(
            _cli(
                "--task",
                str(task),
                "--out",
                str(tmp_path / "o"),
                "--inputs",
                str(bad),
                "--teacher",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def _wait_for_lines(path: Path, n: int, timeout_s: float = 60.0) -> None:
    """Until `path` (a growing JSONL file) has `n` lines, or `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path}: fewer than {n} lines after {timeout_s} s")


def test_resume_after_sigkill_loses_nothing_and_repeats_no_request(tmp_path):
    task, out = _task_file(tmp_path), tmp_path / "data"
    leak = phrase(2 * 5)  # what the request with seed 5 writes: --exclude must block it
    exclude = tmp_path / "test.jsonl"
    exclude.write_text(json.dumps({"input": leak, "output": reverse(leak)}) + "\n")
    with FakeOpenAIServer(responder, latency_s=0.05) as server:
        cmd = _cli(
            "--exclude",
            str(exclude),
            "--task",
            str(task),
            "--out",
            str(out),
            "--teacher",
            server.base_url,
            "--model",
            "fake",
            "--num-examples",
            "60",
            "--pairs-per-request",
            "1",
            "--max-in-flight",
            "4",
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        examples = out / "examples.jsonl"
        _wait_for_lines(examples, 12)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = [json.loads(x) for x in examples.read_text().splitlines() if x.endswith("}")]
        assert 12 <= len(before) < 60
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    after = rows(examples)
    assert len(after) == 60
    assert after[: len(before)] == before  # nothing accepted before the kill was lost
    assert len({input_key(e["input"]) for e in after}) == 60  # no duplicate
    assert len(bodies) == len(set(bodies))  # the server never saw the same request twice
    assert leak not in {e["input"] for e in after}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["leaks_blocked"] == 1
    assert manifest["resumed"]["resumed"] is True
    assert manifest["resumed"]["accepted_before"] >= len(before)


def test_sigterm_exits_143_with_the_resume_hint_and_a_rerun_finishes(tmp_path):
    """SIGTERM goes the Ctrl-C way: logs closed, one line saying how to resume, exit 143; the
    rerun completes the target without sending any request twice."""
    task, out = _task_file(tmp_path), tmp_path / "data"
    # 0.2 s a request, 4 in flight: ~2.5 s of work left after the 10th example, so the signal
    # lands mid-run even when a loaded machine delays this test's polling (0.05 s did not)
    with FakeOpenAIServer(responder, latency_s=0.2) as server:
        cmd = _cli(
            "--task", str(task), "--out", str(out), "--teacher", server.base_url,
            "--model", "fake", "--num-examples", "60", "--pairs-per-request", "1",
            "--max-in-flight", "4",
        )  # fmt: skip
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        examples = out / "examples.jsonl"
        _wait_for_lines(examples, 10)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 143, stderr
        assert "interrupted; run the same command again to resume" in stderr
        assert "Traceback" not in stderr
        before = rows(examples)
        assert 10 <= len(before) < 60
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    after = rows(examples)
    assert len(after) == 60 and after[: len(before)] == before
    assert len(bodies) == len(set(bodies))


def test_budget_stop_keeps_everything_and_rerun_continues(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 1000.0}}))
    out = tmp_path / "run"
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(num_examples=120, pairs_per_request=2, max_tokens=64)
        low = teacher(server, budget_usd=2.0, prices_file=str(prices))
        m = run_generate(TASK, cfg, low, out)
        assert m["stopped"] == "budget" and "budget" in m["message"]
        kept = rows(out / "examples.jsonl")
        assert 0 < len(kept) == m["counts"]["accepted"] < 120
        assert 0 < m["cost_usd"] <= 2.0
        m = run_generate(TASK, cfg, teacher(server, prices_file=str(prices)), out)
    assert m["stopped"] is None and m["counts"]["accepted"] == 120
    assert rows(out / "examples.jsonl")[: len(kept)] == kept
    assert len(m["sessions"]) == 2


def test_teacher_refusal_stops_with_server_message(tmp_path):
    with (
        FakeOpenAIServer(responder, faults=["401"], error_message="bad key") as server,
        pytest.raises(UserError, match=r"refused.*bad key"),
    ):
        run_generate(TASK, GenerateConfig(num_examples=3), teacher(server), tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["stopped"] == "fatal"


def test_label_mode_resumes_after_budget_stop_without_extra_requests(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 1000.0}}))
    inputs = tmp_path / "inputs.jsonl"
    texts = [phrase(n) for n in range(12)]
    inputs.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
    cfg = GenerateConfig(inputs=str(inputs), num_examples=12, max_tokens=32, votes=3)
    with FakeOpenAIServer(responder) as server:
        low = teacher(server, budget_usd=1.0, prices_file=str(prices))
        m = run_generate(TASK, cfg, low, tmp_path / "run")
        assert m["stopped"] == "budget" and m["counts"]["accepted"] < 12
        m = run_generate(TASK, cfg, teacher(server, prices_file=str(prices)), tmp_path / "run")
        labels = [label_input(b) for b in server.requests]
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    assert m["counts"]["accepted"] == 12
    assert sorted(e["input"] for e in rows(tmp_path / "run" / "examples.jsonl")) == sorted(texts)
    assert all(labels.count(t) == 3 for t in texts)  # 3 votes each, none asked twice
    assert len(bodies) == len(set(bodies))


def test_cli_budget_stop_exits_1_and_says_so(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 1000.0}}))
    task, out = _task_file(tmp_path), tmp_path / "data"
    with FakeOpenAIServer(responder) as server:
        proc = subprocess.run(
            _cli("--task", str(task), "--out", str(out), "--teacher", server.base_url,
                 "--model", "fake", "--num-examples", "200", "--budget-usd", "1",
                 "--prices-file", str(prices), "--max-tokens", "32"),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "stopped at the budget" in proc.stderr and "Traceback" not in proc.stderr
    accepted = len(rows(out / "examples.jsonl"))
    assert 0 < accepted < 200 and f"{accepted} accepted" in proc.stdout


def test_a_label_run_from_before_auto_calibration_names_top_logprobs(tmp_path):
    """A label run made without log-probabilities (as every run was before `auto` became the
    default) is refused under the new default with the setting named, and resumes, sending
    nothing, with --label-calibration none."""
    from distill.generate.store import changed_keys

    assert changed_keys({"a": 1, "s": {"x": 1, "y": 2}}, {"a": 1, "s": {"x": 3, "z": 2}}) == [
        "s.x",
        "s.y",
        "s.z",
    ]
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        "".join(json.dumps({"input": f"sentence number {i}"}) + "\n" for i in range(4))
    )
    out = tmp_path / "d"
    old = dict(inputs=str(inputs), labels=["blue green red", "two one"], label_calibration="none")
    with FakeOpenAIServer(lambda body, index: "two one") as server:
        run_generate(TASK, GenerateConfig(**old), teacher(server), out)
        sent = len(server.requests)
        now = {k: v for k, v in old.items() if k != "label_calibration"}
        with pytest.raises(UserError, match=r"\(changed: settings\.top_logprobs; "):
            run_generate(TASK, GenerateConfig(**now), teacher(server), out)
        m = run_generate(TASK, GenerateConfig(**old), teacher(server), out)
        assert len(server.requests) == sent and m["counts"]["accepted"] == 4

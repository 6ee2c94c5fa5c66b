"""Resume rebuilds the live state exactly (label and synthesize-label modes).

A run is interrupted by an exception raised right after the state folded in an answer (the
journal line is written first, as in a crash); replaying the journal must give the very state
the live run had then: accepted rows, label queue (contents and order), open votes, requests
in flight. Run against the loopback OpenAI server; answers are a pure function of the request.
The last test drives the state machine alone, in random answer orders.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from test_generate_run import TASK, phrase, reverse  # the shared word-phrase responder

from distill.generate import run as run_module
from distill.generate import run_generate, store
from distill.generate.config import GenerateConfig
from distill.generate.records import journal_spend
from distill.generate.state import SamplerState
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer

# what the replayed state is compared on (the rest is configuration or derived indexes)
NOT_STATE = {"emit", "rules", "leak_guard", "near", "cfg", "labels"}


def label_input(body: dict) -> str | None:
    """The input of a label request, or None for a synthesize request (it asks for JSON)."""
    if any("JSON" in m["content"] for m in body["messages"]):
        return None
    return body["messages"][-1]["content"].strip()


def responder(body: dict, index: int) -> str:
    """Label: the reversed input, but every fifth seed echoes it (a rejected vote, so the vote
    is asked again) and a 'hard' input gets three different answers (low agreement).
    Synthesize: a fresh pair and one shared with the neighbouring seed (a chance arrival while
    its vote is open, or a duplicate once decided); every seventh seed a rejected pair."""
    seed = int(body["seed"])
    text = label_input(body)
    if text is not None:
        if "hard" in text:
            return f"guess {seed % 3}"
        return text if seed % 5 == 0 else reverse(text)
    shared = phrase(1000 + seed // 2)
    fresh = phrase(seed)
    pairs = [(fresh, fresh if seed % 7 == 0 else reverse(fresh)), (shared, reverse(shared))]
    return json.dumps([{"input": i, "output": o} for i, o in pairs])


def teacher(server: FakeOpenAIServer, in_flight: int) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=in_flight)


def make_cfg(mode: str, tmp_path: Path) -> GenerateConfig:
    if mode == "label":
        texts = [phrase(n) for n in range(24)] + ["a hard one to call", phrase(3)]
        path = tmp_path / "inputs.jsonl"
        path.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
        return GenerateConfig(inputs=str(path), num_examples=100, seed=7, votes=3)
    return GenerateConfig(
        mode="synthesize-label", num_examples=24, pairs_per_request=2, seed=7, votes=3
    )


class Crash(RuntimeError):
    """Stands for the process dying right after an answer was journaled and folded in."""


def snapshot(state: SamplerState) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in vars(state).items() if k not in NOT_STATE})


def replayed(cfg: GenerateConfig, out: Path) -> dict[str, Any]:
    """The state rebuilt from `out`'s journal, before in-flight requests are forgotten."""
    protected = [d.input for d in TASK.demonstrations]
    inputs = run_module.load_inputs(cfg.inputs) if cfg.inputs else []
    state, _, _ = run_module._replay(cfg, protected, inputs, out, run_module.run_rules(TASK, cfg))
    return snapshot(state)


def crash_after(monkeypatch, accepted: int) -> list[dict[str, Any]]:
    """Make the next run raise Crash once `accepted` examples are in; returns where the live
    state is captured at that moment."""
    live: list[dict[str, Any]] = []
    on_done = SamplerState.on_done

    def crashing(self: SamplerState, rec):
        on_done(self, rec)
        if len(self.accepted) >= accepted and not live:
            live.append(snapshot(self))
            raise Crash

    monkeypatch.setattr(SamplerState, "on_done", crashing)
    return live


def capture_final(monkeypatch) -> list[dict[str, Any]]:
    """Where the live state at the end of each run (before its artefacts) is captured."""
    final: list[dict[str, Any]] = []
    finish = run_module._finish

    def capture(session, state, result, accounting):
        final.append(snapshot(state))
        return finish(session, state, result, accounting)

    monkeypatch.setattr(run_module, "_finish", capture)
    return final


def assert_same_state(replay: dict[str, Any], live: dict[str, Any]) -> None:
    assert len(replay["accepted"]) == len(live["accepted"])
    assert list(replay["label_queue"]) == list(live["label_queue"])
    assert sorted(replay["open"]) == sorted(live["open"])
    assert replay["groups"] == live["groups"]  # votes, pending, attempts, queued, decided
    assert replay == live


@pytest.mark.parametrize("mode", ["label", "synthesize-label"])
def test_resume_after_a_crash_replays_the_live_state_and_the_same_run(tmp_path, monkeypatch, mode):
    """One request at a time: nothing is in flight at the crash, so the resumed run must be
    byte-for-byte the uninterrupted one (journal and examples) and send exactly its requests."""
    cfg = make_cfg(mode, tmp_path)
    with FakeOpenAIServer(responder) as server:
        whole = run_generate(TASK, cfg, teacher(server, 1), tmp_path / "whole")
        sent_whole = [json.dumps(b, sort_keys=True) for b in server.requests]
    assert whole["counts"]["accepted"] == 24 and whole["stopped"] is None

    out = tmp_path / "crashed"
    with FakeOpenAIServer(responder) as server:
        with monkeypatch.context() as mp:
            live = crash_after(mp, 10)
            with pytest.raises(Crash):
                run_generate(TASK, cfg, teacher(server, 1), out)
        assert_same_state(replayed(cfg, out), live[0])
        m = run_generate(TASK, cfg, teacher(server, 1), out)
        sent = [json.dumps(b, sort_keys=True) for b in server.requests]

    assert m["resumed"] == {"resumed": True, "accepted_before": 10}
    for name in ("examples.jsonl", "rejected.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    # the same journal, but for the line where the resumed session starts and the sessions'
    # running totals (`spent`: another session id, totals that restart at the resume)
    journal = (out / "journal.jsonl").read_text().splitlines(keepends=True)
    resume = '{"event": "resume"}\n'
    assert journal.count(resume) == 1
    journal.remove(resume)
    whole_journal = (tmp_path / "whole" / "journal.jsonl").read_text().splitlines()
    assert [unspent(x) for x in journal] == [unspent(x) for x in whole_journal]
    assert sent == sent_whole  # the same requests, none paid twice
    assert m["teacher_accounting"]["cache_hits"] == 0
    assert m["counts"] == whole["counts"]
    # the crashed session wrote no manifest, yet its tokens count: the same requests were
    # sent once in all, so the run's totals are the uninterrupted run's
    assert m["tokens"] == whole["tokens"] and m["tokens"]["prompt"] > 0
    assert len(m["sessions"]) == 1 and m["sessions"][0]["prompt_tokens"] < m["tokens"]["prompt"]


def unspent(line: str) -> dict[str, Any]:
    """A journal line without its session's running totals."""
    rec = json.loads(line)
    rec.pop("spent", None)
    return rec


@pytest.mark.parametrize("mode", ["label", "synthesize-label"])
def test_replay_with_requests_in_flight_rebuilds_the_live_state(tmp_path, monkeypatch, mode):
    """Several requests in flight at the crash: the replay still has them (pending votes,
    queue order), and the resumed run re-asks only what was lost, never an answered request.
    The journal of both sessions replays to the state the resumed one ended with (the
    `resume` line forgets the first session's lost requests where the live run did)."""
    cfg = make_cfg(mode, tmp_path)
    out = tmp_path / "run"
    with FakeOpenAIServer(responder, latency_s=0.01, latency_spread=0.9) as server:
        with monkeypatch.context() as mp:
            live = crash_after(mp, 8)
            with pytest.raises(Crash):
                run_generate(TASK, cfg, teacher(server, 4), out)
        assert sum(live[0]["in_flight"].values()) > 0
        assert_same_state(replayed(cfg, out), live[0])
        final = capture_final(monkeypatch)
        m = run_generate(TASK, cfg, teacher(server, 4), out)
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    assert_same_state(replayed(cfg, out), final[0])
    # label: every input but the duplicate and the hard one; synthesize-label: the target
    assert m["stopped"] is None and m["counts"]["accepted"] == 24
    assert len(bodies) == len(set(bodies))  # no request sent twice
    assert m["teacher_accounting"]["cache_hits"] == 0
    examples = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    assert final[0]["accepted"] == examples


def test_budget_refusals_are_journaled_and_replayed(tmp_path, monkeypatch):
    """Requests the budget refused (never sent) are undone in the journal too: the replayed
    state is the live one at the stop (attempts of their votes included)."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 1000.0}}))
    cfg = make_cfg("label", tmp_path)
    cfg = dataclasses.replace(cfg, max_tokens=32)
    final = capture_final(monkeypatch)
    out = tmp_path / "run"
    with FakeOpenAIServer(responder) as server:
        low = TeacherConfig(
            teacher=server.base_url,
            model="fake",
            max_in_flight=4,
            budget_usd=1.0,
            prices_file=str(prices),
        )
        m = run_generate(TASK, cfg, low, out)
    assert m["stopped"] == "budget"
    journal = [json.loads(x) for x in (out / "journal.jsonl").read_text().splitlines()]
    assert any(r["event"] == "refused" for r in journal)
    assert_same_state(replayed(cfg, out), final[0])


@pytest.mark.parametrize("mode", ["label", "synthesize-label"])
def test_replay_equals_the_live_state_under_any_answer_order(monkeypatch, mode):
    """The state machine alone, answers folded in a random order with failures, rejected
    votes, budget refusals and chance arrivals (the same input again while its vote still has
    requests queued): replaying the journal so far gives the live state, all along."""
    import random

    rng = random.Random(mode)
    cfg = GenerateConfig(
        mode=mode, inputs="unused.jsonl", num_examples=60, pairs_per_request=3, votes=3
    )
    protected = [d.input for d in TASK.demonstrations]
    live = SamplerState(cfg, protected, lambda kind, row: None)
    texts = [phrase(rng.randrange(40)) for _ in range(50)]
    if mode == "label":
        live.add_inputs(texts)
    journal: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    unqueued = 0
    unqueue = SamplerState._unqueue

    def counting(self: SamplerState, group, n: int) -> None:
        nonlocal unqueued
        unqueued += self is live and min(n, group.queued) > 0
        unqueue(self, group, n)

    monkeypatch.setattr(SamplerState, "_unqueue", counting)

    def record(rec: dict[str, Any]) -> None:
        journal.append(rec)
        live.apply(rec)  # type: ignore[arg-type]

    def answer(rec: dict[str, Any]) -> str | None:
        r = rng.random()
        if r < 0.1:
            return None
        if rec["kind"] == "label":
            text = live.groups[rec["key"]].input
            return text if r < 0.25 else reverse(text)
        pairs = [rng.choice(texts) for _ in range(rng.randrange(1, 4))]
        return json.dumps([{"input": p, "output": reverse(p)} for p in pairs])

    for step in range(2000):
        while len(out) < 6 and (rec := live.next_request()) is not None:
            record(dict(rec))
            out.append(rec)
        if not out or live.done:
            break
        rec = out.pop(rng.randrange(len(out)))
        end: dict[str, Any] = {"index": rec["index"], "kind": rec["kind"]}
        if "key" in rec:
            end["key"] = rec["key"]
        if rng.random() < 0.03:
            record({"event": "refused", **end})
        else:
            text = answer(rec)
            record({"event": "done", **end, "text": text, **({} if text else {"error": "500"})})
        if step % 20 == 0:
            again = SamplerState(cfg, protected, lambda kind, row: None)
            if mode == "label":
                again.add_inputs(texts)
            for r in journal:
                again.apply(copy.deepcopy(r))  # type: ignore[arg-type]
            assert_same_state(snapshot(again), snapshot(live))
    assert len(live.accepted) > 10
    if mode == "synthesize-label":
        assert unqueued > 0  # chance arrivals did make queued requests unnecessary


def test_a_killed_session_counts_toward_the_budget_of_the_resumed_run(tmp_path, monkeypatch):
    """The budget is the run's, not one session's: a session that crashed before writing a
    manifest spent money the journal remembers, so a rerun with a budget below that spend sends
    nothing and stops on the budget; a larger budget continues, and the run's total cost (both
    sessions) stays within it."""
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 1000.0}}))
    cfg, out = make_cfg("label", tmp_path), tmp_path / "run"

    def priced(server: FakeOpenAIServer, budget: float | None) -> TeacherConfig:
        return dataclasses.replace(teacher(server, 1), prices_file=str(prices), budget_usd=budget)

    with FakeOpenAIServer(responder) as server:
        with monkeypatch.context() as mp:
            crash_after(mp, 10)
            with pytest.raises(Crash):
                run_generate(TASK, cfg, priced(server, None), out)
        assert not (out / "manifest.json").exists()
        spent = journal_spend(store.read_log(out / "journal.jsonl"))["cost_usd"]
        assert spent > 0
        sent = len(server.requests)
        m = run_generate(TASK, cfg, priced(server, spent * 0.9), out)
        assert len(server.requests) == sent  # nothing sent: the crashed session spent it
        assert m["stopped"] == "budget" and "in earlier sessions" in m["message"]
        assert m["cost_usd"] == pytest.approx(spent)
        m = run_generate(TASK, cfg, priced(server, spent * 3), out)
    assert len(server.requests) > sent
    assert spent < m["cost_usd"] <= spent * 3

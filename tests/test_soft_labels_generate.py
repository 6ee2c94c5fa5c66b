"""Soft labels in `distill generate`: the logprob -> label mapping, what is stored, its sources,
the request cache, and resume; against the loopback OpenAI server (no torch needed).

Every expected distribution is computed in the test from the numbers the server was told to
send, not through distill.generate.soft.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.generate import run as run_module
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.generate.labels import make_label_set
from distill.generate.soft import label_probs_from_logprobs
from distill.generate.state import SamplerState
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, word_phrase

LABELS = ["positive", "negative", "neutral"]
TASK = TaskSpec(
    name="sentiment",
    instruction="Classify the sentiment of the sentence as positive, negative or neutral.",
    demonstrations=(
        Demonstration("what a lovely day", "positive"),
        Demonstration("this is awful", "negative"),
        Demonstration("the bus leaves at nine", "neutral"),
    ),
)
N_INPUTS = 12


def lp(p: float) -> float:
    return math.log(p)


def alt(token: str, p: float) -> dict[str, Any]:
    return {"token": token, "logprob": lp(p)}


# ---------------------------------------------------------------- the mapping, by hand


def test_mapping_exact_case_and_an_unlisted_label() -> None:
    """Exact spellings in any case; "The" begins no label (dropped); neutral is not listed, so
    it gets what the list leaves (0.05), capped at the smallest listed probability (0.05)."""
    labels = make_label_set(LABELS)
    tokens = [{"token": "positive", "top": [["positive", lp(0.6)], ["Negative", lp(0.3)],
                                            ["The", lp(0.05)]]}]  # fmt: skip
    got = label_probs_from_logprobs(tokens, "positive", "positive", labels, last=False)
    total = 0.6 + 0.3 + 0.05
    assert got == pytest.approx(
        {"positive": 0.6 / total, "negative": 0.3 / total, "neutral": 0.05 / total}, rel=1e-12
    )
    assert list(got) == LABELS  # the label set's order


def test_mapping_prefix_shared_prefix_and_token_that_starts_before_the_answer() -> None:
    """The answer "sci/tech" follows "Output:" and starts inside the token " sci" (after its
    space): " sci" begins sci/tech only; " s" begins sci/tech and sports (half each); " world"
    spells world; "sports" (no space) spells sports."""
    labels = make_label_set(["sci/tech", "sports", "world"])
    text = "Output: sci/tech"
    top = [[" sci", lp(0.5)], [" s", lp(0.2)], [" world", lp(0.1)], ["sports", lp(0.1)]]
    tokens = [{"token": "Output", "top": []}, {"token": ":", "top": []},
              {"token": " sci", "top": top}, {"token": "/tech", "top": []}]  # fmt: skip
    got = label_probs_from_logprobs(tokens, text, "sci/tech", labels, last=False)
    mass = {"sci/tech": 0.5 + 0.1, "sports": 0.1 + 0.1, "world": 0.1}
    total = sum(mass.values())
    assert got == pytest.approx({k: v / total for k, v in mass.items()}, rel=1e-12)


def test_mapping_splits_a_shared_first_token_along_the_chosen_path() -> None:
    """The teacher wrote "Ne" + "utral": "Ne" begins negative and neutral, and was chosen, so
    its 0.6 is split by the next position (conditioned on "Ne"): 0.7 : 0.2 ("Ne." is no
    label). A shared token the teacher did not choose ("ne", 0.1) is split equally."""
    labels = make_label_set(LABELS)
    tokens = [
        {"token": "Ne", "top": [["Ne", lp(0.6)], ["Pos", lp(0.2)], ["ne", lp(0.1)]]},
        {"token": "utral", "top": [["utral", lp(0.7)], ["gative", lp(0.2)], [".", lp(0.05)]]},
    ]
    got = label_probs_from_logprobs(tokens, "Neutral", "Neutral", labels, last=False)
    mass = {
        "positive": 0.2,
        "negative": 0.6 * 0.2 / 0.9 + 0.05,
        "neutral": 0.6 * 0.7 / 0.9 + 0.05,
    }
    total = sum(mass.values())
    assert got == pytest.approx({k: v / total for k, v in mass.items()}, rel=1e-12)


def test_mapping_caps_unlisted_labels_at_the_smallest_listed_probability() -> None:
    """Listed 0.5 + 0.1 (both "yes"): 0.4 is left for two unlisted labels, 0.2 each, but a
    token not listed is less likely than every listed one: each gets 0.1."""
    labels = make_label_set(["yes", "no", "maybe"])
    tokens = [{"token": "yes", "top": [["yes", lp(0.5)], ["Yes", lp(0.1)]]}]
    got = label_probs_from_logprobs(tokens, "yes", "yes", labels, last=False)
    assert got == pytest.approx({"yes": 0.6 / 0.8, "no": 0.1 / 0.8, "maybe": 0.1 / 0.8})


def test_mapping_chain_of_thought_reads_the_last_answer_and_refuses_what_it_cannot_align() -> None:
    labels = make_label_set(["yes", "no"])
    text = "yes or no? Answer: no"
    tokens = [{"token": t, "top": []} for t in ["yes", " or", " no", "?", " Answer", ":"]]
    tokens.append({"token": " no", "top": [[" no", lp(0.7)], [" yes", lp(0.3)]]})
    got = label_probs_from_logprobs(tokens, text, "no", labels, last=True)
    assert got == pytest.approx({"yes": 0.3, "no": 0.7})
    # tokens that do not spell the text (bytes split differently): no distribution
    assert label_probs_from_logprobs(tokens[:-1], text, "no", labels, last=True) is None
    # no alternative begins a label: no distribution
    none = [{"token": "no", "top": [["The", lp(0.9)]]}]
    assert label_probs_from_logprobs(none, "no", "no", labels, last=False) is None


# ---------------------------------------------------------------- runs against the server


def label_input(body: dict) -> str | None:
    """The input of a label request (the last user turn); None for a synthesize request."""
    if any("JSON" in m["content"] for m in body["messages"]):
        return None
    return body["messages"][-1]["content"].strip()


def number(text: str) -> int:
    return int(text.rsplit(" ", 1)[1])  # word_phrase(n) ends with n


def shares(text: str) -> dict[str, float]:
    """The alternatives the server sends for input n: every label plus "I" (not a label)."""
    n = number(text)
    return {"positive": 0.5 + 0.01 * n, "negative": 0.3 - 0.01 * n, "neutral": 0.1, "I": 0.05}


def greedy(body: dict, index: int) -> str:
    text = label_input(body)
    assert text is not None
    return "positive"


def server_logprobs(body: dict, index: int, answer: str) -> list[dict]:
    top = [alt(tok, p) for tok, p in shares(label_input(body) or "").items()]
    return [{"token": answer, "logprob": top[0]["logprob"], "top_logprobs": top}]


def expected_from_logprobs(text: str) -> dict[str, float]:
    s = shares(text)
    total = s["positive"] + s["negative"] + s["neutral"]  # "I" begins no label: dropped
    return {x: s[x] / total for x in LABELS}


def inputs_file(tmp_path: Path, n: int = N_INPUTS) -> Path:
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"input": word_phrase(i)}) + "\n" for i in range(n)))
    return path


def teacher(server: FakeOpenAIServer, in_flight: int = 4) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=in_flight)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def label_cfg(tmp_path: Path, **kw: Any) -> GenerateConfig:
    """A label run with calibration off: these tests pin the distributions as the server sent
    them, which calibration would rewrite in the splits (test_calibration.py covers it), and
    their scripted teacher has no answer for a content-free input."""
    base: dict[str, Any] = {
        "inputs": str(inputs_file(tmp_path)),
        "labels": LABELS,
        "seed": 3,
        "label_calibration": "none",
    }
    return GenerateConfig(**{**base, **kw})


def test_stored_distribution_is_what_the_server_returned(tmp_path: Path) -> None:
    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        m = run_generate(TASK, label_cfg(tmp_path, top_logprobs=5), teacher(server), tmp_path / "d")
        bodies = list(server.requests)
    assert all(b["logprobs"] is True and b["top_logprobs"] == 5 for b in bodies)
    examples = rows(tmp_path / "d" / "examples.jsonl")
    assert len(examples) == N_INPUTS
    for ex in examples:
        assert ex["output"] == "positive"
        assert list(ex["label_probs"]) == LABELS
        assert ex["label_probs"] == pytest.approx(expected_from_logprobs(ex["input"]), rel=1e-12)
    # the splits and the Arrow copy carry the same numbers
    by_input = {ex["input"]: ex["label_probs"] for ex in examples}
    split_rows = [r for name in ("train", "validation", "test")
                  for r in rows(tmp_path / "d" / f"{name}.jsonl")]  # fmt: skip
    assert len(split_rows) == N_INPUTS
    assert all(r["label_probs"] == by_input[r["input"]] for r in split_rows)
    from datasets import load_from_disk

    hf = load_from_disk(str(tmp_path / "d" / "hf"))
    for split in hf.values():
        for r in split:
            assert {x["label"]: x["prob"] for x in r["label_probs"]} == by_input[r["input"]]
    from students.data import read_examples  # what `distill train` reads from a datasets dir

    assert all(
        r["label_probs"] == by_input[r["input"]] for r in read_examples(tmp_path / "d" / "hf")
    )
    soft = m["soft_labels"]
    assert soft["source"] == "logprobs" and soft["top_logprobs"] == 5
    assert soft["examples_by_source"] == {"logprobs": N_INPUTS, "votes": 0, "none": 0}
    card = (tmp_path / "d" / "README.md").read_text()
    assert "## Soft labels" in card and "source: logprobs" in card


def split_votes(body: dict, index: int) -> str:
    """Votes 3n, 3n+1, 3n+2 of input n: positive, positive, negative."""
    return "negative" if int(body["seed"]) % 3 == 2 else "positive"


def test_vote_shares_when_no_logprobs_are_asked(tmp_path: Path) -> None:
    with FakeOpenAIServer(split_votes) as server:
        cfg = label_cfg(tmp_path, votes=3, seed=0)
        m = run_generate(TASK, cfg, teacher(server, 1), tmp_path / "d")
        assert not any("logprobs" in b for b in server.requests)
    examples = rows(tmp_path / "d" / "examples.jsonl")
    assert len(examples) == N_INPUTS
    for ex in examples:
        assert ex["output"] == "positive"
        assert ex["label_probs"] == {"positive": 2 / 3, "negative": 1 / 3, "neutral": 0.0}
    assert m["soft_labels"]["source"] == "votes"


def test_vote_shares_when_the_server_ignores_the_logprobs_request(tmp_path: Path) -> None:
    """A server that sends no `logprobs` (some do): the run falls back to the vote shares and
    counts the answers that gave no distribution."""
    with FakeOpenAIServer(split_votes, logprobs_fn=lambda b, i, t: None) as server:
        cfg = label_cfg(tmp_path, votes=3, seed=0, top_logprobs=3)
        m = run_generate(TASK, cfg, teacher(server, 1), tmp_path / "d")
        n_requests = len(server.requests)
    assert all(
        r["label_probs"]["negative"] == 1 / 3 for r in rows(tmp_path / "d" / "examples.jsonl")
    )
    soft = m["soft_labels"]
    assert soft["source"] == "votes"
    assert soft["answers_without_usable_logprobs"] == n_requests == 3 * N_INPUTS


def test_one_greedy_label_without_logprobs_has_no_distribution(tmp_path: Path) -> None:
    """--label-calibration none (and no --top-logprobs): no log-probabilities asked, none kept."""
    with FakeOpenAIServer(greedy) as server:
        cfg = label_cfg(tmp_path)
        m = run_generate(TASK, cfg, teacher(server), tmp_path / "d")
        assert not any("logprobs" in b for b in server.requests)
    assert not any("label_probs" in r for r in rows(tmp_path / "d" / "examples.jsonl"))
    assert m["soft_labels"]["source"] is None
    assert "label_probs" not in rows(tmp_path / "d" / "train.jsonl")[0]


def test_a_cached_answer_without_logprobs_is_not_reused_for_a_logprobs_request(
    tmp_path: Path,
) -> None:
    """Run 1 fills the cache without logprobs (--label-calibration none); run 2 (same
    directory, --overwrite keeps the cache) asks for them: every request is sent again. Run 3
    (a fresh directory with run 2's cache) is served from the cache, logprobs included: the
    same bytes, nothing sent."""
    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        run_generate(TASK, label_cfg(tmp_path), teacher(server), tmp_path / "a")
        assert len(server.requests) == N_INPUTS
        cfg = label_cfg(tmp_path, top_logprobs=5, overwrite=True)
        m2 = run_generate(TASK, cfg, teacher(server), tmp_path / "a")
        assert len(server.requests) == 2 * N_INPUTS
        assert all(b.get("logprobs") for b in server.requests[N_INPUTS:])
        (tmp_path / "b").mkdir()
        shutil.copy(tmp_path / "a" / "teacher_cache.sqlite", tmp_path / "b")
        m3 = run_generate(TASK, cfg, teacher(server), tmp_path / "b")
        assert len(server.requests) == 2 * N_INPUTS
    assert m2["teacher_accounting"]["cache_hits"] == 0
    assert m3["teacher_accounting"]["cache_hits"] == N_INPUTS
    a, b = (tmp_path / "a" / "examples.jsonl"), (tmp_path / "b" / "examples.jsonl")
    assert a.read_bytes() == b.read_bytes() and "label_probs" in a.read_text()


def test_client_never_serves_a_logprobs_request_from_an_entry_without_them(tmp_path: Path) -> None:
    """Belt and braces below the key: even an entry under the very key of a logprobs request
    is not used when it holds no logprobs; the answer sent is cached with them."""
    from teachers import open_teacher
    from teachers.cache import RequestCache, canonical_key
    from teachers.client import chat_request

    messages = [{"role": "user", "content": word_phrase(1)}]
    cache_path = tmp_path / "cache.sqlite"
    key = canonical_key(chat_request("fake", messages, temperature=0.0, max_tokens=8,
                                     top_logprobs=2), 0)  # fmt: skip
    cache = RequestCache(cache_path)
    cache.put(key, "fake", "stale", None, None)  # no logprobs
    cache.close()

    async def ask() -> tuple[Any, Any]:
        async with open_teacher(teacher(server), cache_path=cache_path) as t:
            first = await t.chat(messages, temperature=0.0, max_tokens=8, top_logprobs=2)
            again = await t.chat(messages, temperature=0.0, max_tokens=8, top_logprobs=2)
            return first, again

    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        first, again = asyncio.run(ask())
        assert len(server.requests) == 1
    assert first.texts == ["positive"] and not first.cached
    assert again.cached and again.logprobs == first.logprobs
    top = first.logprobs[0][0]["top"]
    assert [t for t, _ in top] == ["positive", "negative", "neutral", "I"]
    assert top[0][1] == lp(shares(word_phrase(1))["positive"])


class Crash(RuntimeError):
    """The process dying right after an answer was journaled and folded in."""


def test_resume_restores_label_probs_byte_for_byte(tmp_path: Path, monkeypatch) -> None:
    """A run killed after 5 examples and resumed writes the very bytes of an uninterrupted
    run: examples.jsonl, the splits and the manifest's soft-label counts."""
    cfg = label_cfg(tmp_path, top_logprobs=4, votes=2, label_temperature=0.5)
    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        whole = run_generate(TASK, cfg, teacher(server, 1), tmp_path / "whole")
    out = tmp_path / "crashed"
    on_done = SamplerState.on_done

    def crashing(self: SamplerState, rec: Any) -> None:
        on_done(self, rec)
        if len(self.accepted) >= 5:
            raise Crash

    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        with monkeypatch.context() as mp:
            mp.setattr(SamplerState, "on_done", crashing)
            with pytest.raises(Crash):
                run_generate(TASK, cfg, teacher(server, 1), out)
        assert len(rows(out / "examples.jsonl")) == 5
        resumed = run_generate(TASK, cfg, teacher(server, 1), out)
    assert resumed["resumed"]["accepted_before"] == 5
    for name in ("examples.jsonl", "train.jsonl", "validation.jsonl", "test.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert resumed["soft_labels"] == whole["soft_labels"]
    assert whole["soft_labels"]["examples_by_source"]["logprobs"] == N_INPUTS
    # and a replay of the journal alone rebuilds the same rows
    protected = [d.input for d in TASK.demonstrations]
    inputs = run_module.load_inputs(str(cfg.inputs))
    state, _, _ = run_module._replay(cfg, protected, inputs, out, run_module.run_rules(TASK, cfg))
    assert state.accepted == rows(tmp_path / "whole" / "examples.jsonl")


# ---------------------------------------------------------------- bad settings


def _task_file(tmp_path: Path, labels: bool = True) -> Path:
    path = tmp_path / "task.toml"
    demos = "".join(
        f'[[demonstrations]]\ninput = "{d.input}"\noutput = "{d.output}"\n'
        for d in TASK.demonstrations
    )
    instruction = TASK.instruction if labels else "Say something about the sentence."
    path.write_text(f'name = "s"\ninstruction = "{instruction}"\n{demos}')
    return path


@pytest.mark.parametrize(
    ("args", "labels", "message"),
    [
        (["--top-logprobs", "21"], True, "--top-logprobs: must be in [0, 20] (got 21)"),
        (["--top-logprobs", "-1"], True, "--top-logprobs: must be in [0, 20] (got -1)"),
        (["--top-logprobs", "5", "--mode", "synthesize"], True,
         "--top-logprobs: needs mode label or synthesize-label"),
        (["--top-logprobs", "5"], False, "--top-logprobs / [generate] top_logprobs: needs a label set"),
        (["--top-logprobs", "5", "--batch-file", "b.jsonl"], True,
         "--top-logprobs: not supported with --batch"),
    ],
)  # fmt: skip
def test_bad_top_logprobs_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args, labels, message
) -> None:
    inputs = [] if "synthesize" in args else ["--inputs", str(inputs_file(tmp_path))]
    rc = main(
        ["generate", "--task", str(_task_file(tmp_path, labels)), "--out", str(tmp_path / "o"),
         "--teacher", "http://127.0.0.1:9/v1", "--model", "m", *inputs, *args]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "o" / "journal.jsonl").exists()  # refused before any request

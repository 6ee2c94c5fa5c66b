"""Exact round-trip text for uncased WordPiece students, carried by tokenizer.json itself.

The embedded student's MiniLM vocabulary lower-cases and its pre-tokenizer splits on
punctuation, so a plain decode turns "New York, NY" into "new york , ny". We rewrite the saved
tokenizer so that encoding inserts marker tokens and decoding removes them again:

    "x = f(3);"  --normalizer-->  "x = f ¤x ( ¤x 3 ¤x ) ¤x ;"   (¤x: no space here)
    "New York"   --normalizer-->  " ¤c new  ¤c york"            (¤c: next letter upper-case)
    "NY 10001"   --normalizer-->  " ¤u ny 10001"                (¤u: the next letters upper-case)

Markers are added (non-special) tokens, learnt in fine-tuning like any word. Both directions
live in tokenizer.json (a `tokenizers` normalizer of regex Replace steps and a decoder chain),
so every consumer that loads that file (transformers, the torch-free ONNX runtime) encodes and
decodes identically by construction; no Python in this module runs at inference time.

Inputs are marked too (same tokenizer): the model then sees case and spacing of the input and
can copy "New York" instead of guessing capitals. What cannot round-trip (accents, which the
uncased normalizer strips; characters outside the vocabulary, which become [UNK]; other
Unicode whitespace; CJK spacing; literal "¤" text) is detected by `roundtrips` and counted.
A run of two or more capitals is one word-level marker, not a ¤c per letter: "WILKESBORO" is
`¤u wilkes ##boro`, the same pieces as "Wilkesboro" after its ¤c, so an all-caps address, heading
or acronym costs one token more than its lower-case form and a student copies it with the pieces
it knows. (Before, each capital was its own ¤c and letter with ¤x between them: 29 tokens for
that one word, which the student could not copy.) ¤u ends at the first character that is not a
letter a-z; a run followed by lower-case letters ("NYer") gets a ¤x there. Decoding upper-cases
letter by letter in `UPPER_PASSES` passes over the text, so runs longer than that do not
round-trip (`roundtrips` says so).
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers

NOSP = "¤x"  # no space at this boundary
CAP = "¤c"  # the next letter is upper-case
UPPER = "¤u"  # the letters up to the next non-letter are upper-case
# The decoder's working mark for ¤u: a character no text holds after decoding (the private use
# area), moved one letter to the right per replacement.
_UPPER_AT = "\ue000"
UPPER_PASSES = 24  # the longest run of capitals that round-trips is at least this long
# Whitespace that is not a single space between two words, one marker per character.
WHITESPACE = {"\n": "¤nl", "\t": "¤tab", "\r": "¤cr"}
SPACE = "¤sp"
# The first version's markers: every marker tokenizer has these (models trained before ¤u
# existed keep their own tokenizer.json and load as they are).
BASE_MARKERS: tuple[str, ...] = (NOSP, CAP, *WHITESPACE.values(), SPACE)
MARKERS: tuple[str, ...] = (*BASE_MARKERS, UPPER)

# BERT's notion of punctuation: ASCII non-alphanumeric symbols plus Unicode category P.
_PUNCT = r"[!-/:-@\[-`{-~\p{P}]"
# Punctuation that joins two digits ("2017-12-18", "13:30", "3/17", "1,000.5"): no ¤x on either
# side, and decoding joins "digit p digit" again, so an ISO date is 5 tokens instead of 9 (on the
# temporal task 42% of the targets' tokens were ¤x). One with a space on both sides ("3 - 4")
# marks its first space with ¤sp instead. Each is hidden behind a private-use character while
# the no-space step runs.
DIGIT_JOINS = "-:./,"
_DIGIT_HIDDEN = {p: chr(0xE010 + i) for i, p in enumerate(DIGIT_JOINS)}


def _encode_steps() -> list[normalizers.Normalizer]:
    """Regex rewrites applied to raw text before BERT's lower-casing normaliser (order matters)."""
    steps: list[normalizers.Normalizer] = [
        # A space that does not sit between two non-space characters is content, not a separator.
        normalizers.Replace(Regex(r"(?<!\S) | (?!\S)"), f" {SPACE} "),
    ]
    steps += [normalizers.Replace(ch, f" {tok} ") for ch, tok in WHITESPACE.items()]
    for p, hidden in _DIGIT_HIDDEN.items():
        q = re.escape(p)
        steps.append(normalizers.Replace(Regex(rf"(?<=[0-9]) (?={q} [0-9])"), f" {SPACE} "))
        steps.append(normalizers.Replace(Regex(rf"(?<=[0-9]){q}(?=[0-9])"), f" {hidden} "))
    # The pre-tokenizer splits around punctuation; mark where no space was.
    no_space = rf"(?<=\S)(?={_PUNCT})|(?<={_PUNCT})(?=\S)"
    steps.append(normalizers.Replace(Regex(no_space), f" {NOSP} "))
    steps += [normalizers.Replace(hidden, p) for p, hidden in _DIGIT_HIDDEN.items()]
    # A capital inside a word ("McDonald", "iPHONE") becomes a split: mark it as no-space
    # first; so does the end of a run of capitals that lower-case letters follow ("NYer").
    steps.append(normalizers.Replace(Regex(r"(?<=\S)(?<![A-Z])(?=[A-Z])"), f" {NOSP} "))
    steps.append(normalizers.Replace(Regex(r"(?<=[A-Z]{2})(?=[a-z])"), f" {NOSP} "))
    # A run of capitals: one ¤u before its first letter (BERT's normaliser lower-cases the
    # letters after these steps). The match takes the letter and puts it back: tokenizers'
    # Replace panics on an empty match at the start of the text.
    steps += [
        normalizers.Replace(Regex(f"(?<![A-Z]){c}(?=[A-Z])"), f" {UPPER} {c}")
        for c in string.ascii_uppercase
    ]
    steps += [
        normalizers.Replace(Regex(f"(?<![A-Z]){c}(?![A-Z])"), f" {CAP} {c.lower()}")
        for c in string.ascii_uppercase
    ]
    return steps


def _decode_steps() -> list[decoders.Decoder]:
    """Inverse of `_encode_steps` on the joined text; the spaces around markers are join spaces."""
    steps: list[decoders.Decoder] = [
        decoders.WordPiece(prefix="##", cleanup=False),
        decoders.Fuse(),
        # "2017 - 12" was "2017-12" (a spaced one carries ¤sp, so it does not match here)
        *[decoders.Replace(Regex(rf"(?<=[0-9]) {re.escape(p)} (?=[0-9])"), p) for p in DIGIT_JOINS],
        # before ¤x goes: the space in front of it is what stops a run of capitals ("NYer")
        *_upper_steps(),
        decoders.Replace(Regex(f" ?{NOSP} ?"), ""),
    ]
    steps += [decoders.Replace(f"{CAP} {c.lower()}", c) for c in string.ascii_uppercase]
    steps += [decoders.Replace(Regex(f" ?{tok} ?"), ch) for ch, tok in WHITESPACE.items()]
    # Last: its output is a space, which earlier optional-space patterns would have eaten.
    steps.append(decoders.Replace(Regex(f" ?{SPACE} ?"), " "))
    return steps


def _upper_steps() -> list[decoders.Decoder]:
    """¤u's decoding: the working mark takes the place of "¤u ", then each replacement swaps it
    with the lower-case letter after it, upper-cased; a pass tries a to z in turn, so it moves at
    least one letter and `UPPER_PASSES` passes upper-case at least that many; the mark is dropped
    where a non-letter stops it. (The decoder's Replace writes fixed text only: no back-reference
    could upper-case a whole word in one step.)"""
    steps: list[decoders.Decoder] = [decoders.Replace(Regex(f"{UPPER} ?"), _UPPER_AT)]
    swaps = [decoders.Replace(_UPPER_AT + c, c.upper() + _UPPER_AT) for c in string.ascii_lowercase]
    steps += swaps * UPPER_PASSES
    steps.append(decoders.Replace(_UPPER_AT, ""))
    return steps


def is_uncased_wordpiece(tok: Tokenizer) -> bool:
    """True for a BERT-style tokenizer that lower-cases (the one that needs markers)."""
    spec = json.loads(tok.to_str())
    model, norm = spec.get("model") or {}, spec.get("normalizer") or {}
    return model.get("type") == "WordPiece" and bool(norm.get("lowercase"))


def has_markers(tok: Tokenizer) -> bool:
    """True when `add_markers` was already applied (by this version or the first, without ¤u)."""
    return all(tok.token_to_id(m) is not None for m in BASE_MARKERS)


def tokenizer_has_markers(tokenizer: Any) -> bool:
    """`has_markers` for a transformers tokenizer (training writes it to distill.json; loading
    a student refuses an uncased vocabulary without it)."""
    return has_markers(tokenizer.backend_tokenizer)


def add_markers(tok: Tokenizer) -> Tokenizer:
    """Return a copy of an uncased WordPiece tokenizer that encodes/decodes case and spacing."""
    out = Tokenizer.from_str(tok.to_str())
    if has_markers(out):
        return out
    out.normalizer = normalizers.Sequence([*_encode_steps(), out.normalizer])
    out.decoder = decoders.Sequence(_decode_steps())
    # normalized=True: matched in the normalised text, where the steps above inserted them.
    out.add_tokens([AddedToken(m, normalized=True, special=False) for m in MARKERS])
    return out


def roundtrips(tok: Tokenizer, text: str) -> bool:
    """True when encode -> decode gives `text` back exactly."""
    ids = tok.encode(text, add_special_tokens=False).ids
    return tok.decode(ids, skip_special_tokens=True) == text


def save_tokenizer_files(tok: Tokenizer, out_dir: Path, special: dict[str, str]) -> None:
    """Write tokenizer.json plus a tokenizer_config.json that makes transformers load it verbatim.

    `tokenizer_class` PreTrainedTokenizerFast (not BertTokenizer, which would rebuild the
    pipeline from vocab.txt and drop the markers) and no clean-up of spaces around punctuation.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
        **special,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

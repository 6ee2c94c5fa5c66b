"""Copy decoding: an extraction student may only decode spans of its input's tokens.

A small seq2seq student trained on a few hundred extraction examples ("the city of this
address") learns where the answer sits long before it learns to spell words it has rarely seen:
on real addresses it answered "Whiteville" for "grayville" and "Ken" for "Ashland" (README,
"address"). When the task's answers are spans of their inputs, greedy decoding held to spans of
the input's own tokens keeps the choice of where the answer starts and where it ends, and
removes the misspelling, the repeated word and the city pieced together from two places: the
first step is greedy's argmax over the input's tokens, each later one over the tokens that
continue the output as a contiguous run of the input (`SpanTracker`), and the end token may
come at any step.

Spans are word spans when the tracker knows the input's pieces (`word_bounds`): an answer starts
at a word's first piece (with its case marker) and ends at a word's last, so a city cut inside a
word ("##ville" alone, "West" from "Westville") or ending on a marker ("West ¤c") cannot be
decoded, and neither can an empty answer where the input has a word to copy.

Which students decode so is decided once, at training time, from the data (`span_share`): a
training set whose outputs are mostly spans of their inputs is an extraction task. The torch
predictor (a logits processor in `model.generate`) and the ONNX runtime (exports.decoding's
greedy) drive the same tracker, so the two agree token for token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# `auto` turns copy decoding on when at least this share of the training and validation outputs
# are spans of their inputs. Measured on the benchmark runs' teacher labels: address 0.86 (the
# rest is mostly the teacher re-capitalising or expanding a city, "dallas" -> "Dallas"),
# temporal 0.03, trec 0.01, the quick start's sentiment 0.01; questions' outputs never are
# (README, "address").
MIN_SPAN_SHARE = 0.75

# Marker pieces (students.markers) that belong to the piece after them: a span starts at them,
# never between them and their piece.
PREFIX_MARKERS = frozenset({"¤c", "¤u"})
# Marker pieces that stand for spacing (a join, a line break, ...): a span neither starts at nor
# ends after them.
SPACING_MARKERS = frozenset({"¤x", "¤nl", "¤tab", "¤cr", "¤sp"})


def is_span(source: str, output: str) -> bool:
    """True when `output`, stripped, is a non-empty piece of `source` as written."""
    text = output.strip()
    return bool(text) and text in source


def as_written(source: str, output: str) -> str | None:
    """The input's own spelling of `output` when `output` is a span of `source` up to case and
    not as written ("Dallas" from "po box 11407 dallas tx": "dallas"), else None."""
    text = output.strip()
    low = source.lower()
    if not text or text in source or len(low) != len(source):
        return None
    at = low.find(text.lower())
    return source[at : at + len(text)] if at >= 0 else None


def rewrite_as_written(rows: list[dict]) -> tuple[list[dict], int]:
    """`rows` with each output that `as_written` finds replaced by the input's spelling, and
    how many were replaced. Copy decoding can only emit the input's own tokens, so a target
    the teacher re-capitalised teaches a student what it will never be allowed to write."""
    out, changed = [], 0
    for row in rows:
        fixed = as_written(row["input"], row["output"])
        changed += fixed is not None
        out.append(row if fixed is None else {**row, "output": fixed})
    return out, changed


def span_share(pairs: Sequence[tuple[str, str]]) -> float:
    """The share of (input, output) pairs whose output is a span of the input (0 when none)."""
    return sum(is_span(i, o) for i, o in pairs) / len(pairs) if pairs else 0.0


def word_bounds(pieces: Sequence[str]) -> tuple[list[bool], list[bool]]:
    """(starts, ends) of one input's pieces: whether a word span may start at each piece, and
    whether one may end after it.

    A piece continues a word when it is a WordPiece continuation (`##boro`), follows a `¤x`
    join between two alphanumeric pieces ("McDonough": `¤c mc ¤x ¤c don ##ough`; a join next
    to punctuation, as in "Wilkesboro," or "(Chicago", is a word boundary), or, in a
    SentencePiece row (one whose pieces carry the `▁` word mark), lacks that mark. A span
    starts at a piece that does not continue a word, is not a spacing marker and does not
    follow a case marker; it ends after a piece that is no marker and is not followed by a
    continuation. "¤c west ##ville ¤x ," may start at `¤c` or `,` and end after `##ville` or
    `,`."""
    sentencepiece = any(p.startswith("▁") for p in pieces)
    cont = [
        (i > 0 and not p.startswith("▁")) if sentencepiece else p.startswith("##")
        for i, p in enumerate(pieces)
    ]
    for i in _inner_joins(pieces):
        cont[i] = cont[i + 1] = True
    starts = [
        not cont[i] and p not in SPACING_MARKERS and (i == 0 or pieces[i - 1] not in PREFIX_MARKERS)
        for i, p in enumerate(pieces)
    ]
    markers = PREFIX_MARKERS | SPACING_MARKERS
    ends = [
        p not in markers and (i + 1 == len(pieces) or not cont[i + 1]) for i, p in enumerate(pieces)
    ]
    return starts, ends


def _inner_joins(pieces: Sequence[str]) -> list[int]:
    """Positions of the `¤x` joins with an alphanumeric piece on both sides (a case marker
    between the join and the next piece is skipped): joins inside a word."""
    out = []
    for i, p in enumerate(pieces[1:-1], start=1):
        nxt = i + 2 if pieces[i + 1] in PREFIX_MARKERS and i + 2 < len(pieces) else i + 1
        before, after = pieces[i - 1], pieces[nxt].removeprefix("##")
        if p == "¤x" and before[-1:].isalnum() and after[:1].isalnum():
            out.append(i)
    return out


class SpanTracker:
    """Greedy decoding held to spans of each row's input tokens: the first token may be any
    token of the input; each later one must continue the output as a contiguous run of the
    input's tokens; the end token may come at any step. Outputs that are not spans (a city
    pieced together from two places, a word repeated) cannot be decoded.

    With `pieces` (each row's token strings) the spans are word spans (`word_bounds`): the
    first token must start a word and the end token comes only where the output ends a word
    (a row with no word to start may only end). Without them, any token may start and the end
    token may come at any step (the first version, kept for benchmarks/copy_decoding.py).

    `mask` gives the tokens each row may emit next; `update` records the tokens chosen. The
    numpy greedy of exports.decoding and the torch predictor's logits processor both drive it,
    so the two decode the same tokens.
    """

    def __init__(
        self,
        token_ids: Sequence[Sequence[int]],
        eos: int,
        pieces: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.inputs = [list(ids) for ids in token_ids]
        self.eos = eos
        if pieces is None:
            bounds = [([True] * len(ids), [True] * len(ids)) for ids in self.inputs]
        else:
            if [len(p) for p in pieces] != [len(ids) for ids in self.inputs]:
                raise ValueError("SpanTracker: each row needs one piece per token id")
            bounds = [word_bounds(p) for p in pieces]
        self.starts = [s for s, _ in bounds]
        self.word_ends = [e for _, e in bounds]
        self.words = pieces is not None
        # per row: the input positions where the output so far ends (None: nothing emitted yet,
        # [] once the row has ended)
        self.ends: list[list[int] | None] = [None] * len(self.inputs)

    def allowed(self, row: int) -> list[int]:
        """The tokens `row` may emit next (the end token included where it may end)."""
        ids, ends = self.inputs[row], self.ends[row]
        if ends == []:
            return [self.eos]
        if ends is None:
            nxt = [t for t, ok in zip(ids, self.starts[row], strict=True) if ok]
            may_end = not self.words or not nxt
        else:
            nxt = [ids[p + 1] for p in ends if p + 1 < len(ids)]
            may_end = any(self.word_ends[row][p] for p in ends) or not nxt
        return [*nxt, self.eos] if may_end else nxt

    def mask(self, vocab: int) -> np.ndarray:
        """(rows, vocab) booleans: the tokens each row may emit next."""
        mask = np.zeros((len(self.inputs), vocab), dtype=bool)
        for row in range(len(self.inputs)):
            mask[row, [t for t in self.allowed(row) if 0 <= t < vocab]] = True
        return mask

    def update(self, chosen: Sequence[int]) -> None:
        """Record each row's chosen token (an ended row, or the end token, ends the row)."""
        for row, tok in enumerate(chosen):
            ids, ends = self.inputs[row], self.ends[row]
            if ends == [] or tok == self.eos:
                self.ends[row] = []
                continue
            at = (
                [p for p in range(len(ids)) if self.starts[row][p]]
                if ends is None
                else [p + 1 for p in ends]
            )
            self.ends[row] = [p for p in at if p < len(ids) and ids[p] == tok]

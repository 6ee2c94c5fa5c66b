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


def is_span(source: str, output: str) -> bool:
    """True when `output`, stripped, is a non-empty piece of `source` as written."""
    text = output.strip()
    return bool(text) and text in source


def span_share(pairs: Sequence[tuple[str, str]]) -> float:
    """The share of (input, output) pairs whose output is a span of the input (0 when none)."""
    return sum(is_span(i, o) for i, o in pairs) / len(pairs) if pairs else 0.0


class SpanTracker:
    """Greedy decoding held to spans of each row's input tokens: the first token may be any
    token of the input; each later one must continue the output as a contiguous run of the
    input's tokens; the end token may come at any step. Outputs that are not spans (a city
    pieced together from two places, a word repeated) cannot be decoded.

    `mask` gives the tokens each row may emit next; `update` records the tokens chosen. The
    numpy greedy of exports.decoding and the torch predictor's logits processor both drive it,
    so the two decode the same tokens.
    """

    def __init__(self, token_ids: Sequence[Sequence[int]], eos: int) -> None:
        self.inputs = [list(ids) for ids in token_ids]
        self.eos = eos
        # per row: the input positions where the output so far ends (None: nothing emitted yet,
        # [] once the row has ended)
        self.ends: list[list[int] | None] = [None] * len(self.inputs)

    def mask(self, vocab: int) -> np.ndarray:
        """(rows, vocab) booleans: the tokens each row may emit next (always the end token)."""
        mask = np.zeros((len(self.inputs), vocab), dtype=bool)
        for row, (ids, ends) in enumerate(zip(self.inputs, self.ends, strict=True)):
            nxt = ids if ends is None else [ids[p + 1] for p in ends if p + 1 < len(ids)]
            mask[row, [t for t in nxt if 0 <= t < vocab]] = True
        mask[:, self.eos] = True
        return mask

    def update(self, chosen: Sequence[int]) -> None:
        """Record each row's chosen token (an ended row, or the end token, ends the row)."""
        for row, tok in enumerate(chosen):
            ids, ends = self.inputs[row], self.ends[row]
            if ends == [] or tok == self.eos:
                self.ends[row] = []
                continue
            starts = range(len(ids)) if ends is None else [p + 1 for p in ends]
            self.ends[row] = [p for p in starts if p < len(ids) and ids[p] == tok]

"""Copy decoding: an extraction student may only emit tokens its input holds (and the end token).

A small seq2seq student trained on a few hundred extraction examples ("the city of this
address") learns where the answer sits long before it learns to spell words it has rarely seen:
on real addresses it answered "Whiteville" for "grayville" and "Ken" for "Ashland" (README,
"address"). When the task's answers are spans of their inputs, greedy decoding restricted to the
input's own tokens keeps the choice of where and how long, and removes the misspelling: each
step is greedy's argmax over the tokens of that row's input plus the end token.

Which students decode so is decided once, at training time, from the data (`span_share`): a
training set whose outputs are mostly spans of their inputs is an extraction task. The torch
predictor (a logits processor in `model.generate`) and the ONNX runtime (exports.decoding's
greedy) apply the same mask (`allowed_mask`), so the two agree token for token.
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


def allowed_mask(
    token_ids: Sequence[Sequence[int]], vocab: int, always: Sequence[int]
) -> np.ndarray:
    """(rows, vocab) booleans: True for each row's own tokens and for `always` (the end token)."""
    mask = np.zeros((len(token_ids), vocab), dtype=bool)
    for row, ids in enumerate(token_ids):
        mask[row, [i for i in ids if 0 <= i < vocab]] = True
    mask[:, list(always)] = True
    return mask

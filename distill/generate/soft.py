"""Soft labels: the teacher's distribution over a closed label set, from log-probs or votes.

A classification teacher believes more than its argmax ("positive, 0.55; ambivalent, 0.40"),
and a student trained on that belief (`distill train --soft-label-weight`) can learn it. Two
sources, in order of preference:

1. **Log-probabilities** (`--top-logprobs K`): the chat-completions API returns, for every
   answer token, its K most likely alternatives. The label's probability is read at the
   *first token of the answer* (`label_probs_from_logprobs`):
   - the answer is located in the text as the sampler parsed it (after a fence or "Output:",
     or after the last "Answer:" with chain of thought), and the token covering its first
     character is the answer's first token;
   - each alternative there is normalised like a label (`labels.label_key`: case, quotes,
     surrounding spaces and end punctuation do not count) and gives its probability to the
     label it spells exactly, else to the one label it begins, else in equal parts to every
     label it begins (two labels sharing a first token, "not spam" / "not sure": the one
     position cannot tell them apart); alternatives that begin no label ("The", "I") are
     dropped, which conditions on "the answer is a label", as the rejection of out-of-set
     answers does;
   - a label that no alternative begins has a probability below every listed one: such labels
     share what the listed alternatives leave (1 - their sum), each at most the smallest listed
     probability (so a large K gives them almost nothing, a small K a bounded guess);
   - the result is renormalised over the label set. No answer found, tokens that do not
     spell the text (a server that splits bytes), or no alternative that begins a label:
     no distribution from this answer.
   Several votes with log-probabilities: their distributions are averaged.
2. **Vote shares** (`--votes N`, N > 1): the share of the votes each label got.

Pure functions of the journaled answers, so a resumed run rebuilds every `label_probs` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from distill.generate.labels import LabelSet, label_key

LabelProbs = dict[str, float]  # label -> probability, in the label set's order, summing to 1


def answer_token(tokens: Sequence[dict[str, Any]], text: str, start: int) -> int | None:
    """Index of the token covering character `start` of `text`; None when the tokens do not
    spell `text` exactly (then no character offset can be trusted)."""
    if "".join(t["token"] for t in tokens) != text:
        return None
    end = 0
    for i, tok in enumerate(tokens):
        end += len(tok["token"])
        if start < end:
            return i
    return None


def label_probs_from_logprobs(
    tokens: Sequence[dict[str, Any]], text: str, answer: str, labels: LabelSet, *, last: bool
) -> LabelProbs | None:
    """The teacher's distribution over `labels` read at the answer's first token (module doc).

    `answer`: the answer as parsed from `text` (before canonical spelling); `last`: it is the
    last occurrence in the text (chain of thought), else the first.
    """
    start = text.rfind(answer) if last else text.find(answer)
    if not answer or start < 0:
        return None
    start += len(answer) - len(answer.lstrip())
    pos = answer_token(tokens, text, start)
    if pos is None:
        return None
    offset = start - sum(len(t["token"]) for t in tokens[:pos])
    prefix = tokens[pos]["token"][:offset]  # what the answer's first token holds before it
    return _map_alternatives(tokens[pos]["top"], prefix, labels)


def _map_alternatives(
    top: Sequence[Sequence[Any]], prefix: str, labels: LabelSet
) -> LabelProbs | None:
    """Alternatives of the answer's first token -> probabilities over the labels (module doc)."""
    keys = [label_key(x) for x in labels.labels]
    mass = [0.0] * len(keys)
    listed = [math.exp(float(lp)) for _, lp in top]
    for (token, _), p in zip(top, listed, strict=True):
        piece = token[len(prefix) :] if prefix and token.startswith(prefix) else token
        begun = _labels_begun(label_key(piece), keys)
        for i in begun:
            mass[i] += p / len(begun)
    if not any(mass):
        return None
    unseen = [i for i, m in enumerate(mass) if m == 0.0]
    if unseen:
        left = max(0.0, 1.0 - sum(listed))
        each = min(left / len(unseen), min(listed))
        for i in unseen:
            mass[i] = each
    total = sum(mass)
    return {label: m / total for label, m in zip(labels.labels, mass, strict=True)}


def _labels_begun(piece: str, keys: Sequence[str]) -> list[int]:
    """The labels an alternative token gives its probability to: the one it spells exactly,
    else every one it begins (empty for a token that begins none, or is only punctuation)."""
    if not piece:
        return []
    exact = [i for i, k in enumerate(keys) if k == piece]
    return exact or [i for i, k in enumerate(keys) if k.startswith(piece)]


def vote_shares(answers: Sequence[str], labels: LabelSet) -> LabelProbs | None:
    """Each label's share of the in-set answers (None when none is in the set)."""
    counts = dict.fromkeys(labels.labels, 0)
    for answer in answers:
        label = labels.canonical(answer)
        if label is not None:
            counts[label] += 1
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else None


def average(dists: Sequence[LabelProbs]) -> LabelProbs:
    """The mean of distributions over the same labels (the teacher's belief over its votes)."""
    labels = list(dists[0])
    return {x: sum(d[x] for d in dists) / len(dists) for x in labels}

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
     label it spells exactly, else to the one label it begins; an alternative that begins
     several labels ("Ne": negative, neutral) is split by the next position's alternatives
     when the teacher chose it (they are conditioned on it), else in equal parts (the
     listed alternatives say nothing about what would follow a token not chosen);
     alternatives that begin no label ("The", "I") are dropped, which conditions on "the
     answer is a label", as the rejection of out-of-set answers does;
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
    keys = [label_key(x) for x in labels.labels]
    listed = [math.exp(float(lp)) for _, lp in tokens[pos]["top"]]
    mass = _spread(tokens, pos, prefix, "", keys, range(len(keys)))
    if not any(mass):
        return None
    _share_the_rest(mass, listed)
    total = sum(mass)
    return {label: m / total for label, m in zip(labels.labels, mass, strict=True)}


def _spread(
    tokens: Sequence[dict[str, Any]],
    pos: int,
    prefix: str,
    typed: str,
    keys: Sequence[str],
    allowed: Sequence[int],
) -> list[float]:
    """Probability mass per label from the alternatives at `pos`, after the answer's text so
    far (`typed`): each alternative goes to the label it completes, else to the one it
    begins, else, when several labels share it, along the teacher's own next token if the
    teacher chose this alternative (its next position is conditioned on it), else equally.
    Only the labels in `allowed` (those `typed` begins) can receive mass."""
    mass = [0.0] * len(keys)
    chosen = tokens[pos]["token"]
    for token, lp in tokens[pos]["top"]:
        p = math.exp(float(lp))
        piece = token[len(prefix) :] if prefix and token.startswith(prefix) else token
        text = typed + piece
        key = label_key(text)
        begun = _labels_begun(key, keys, allowed)
        if typed and key == label_key(typed) and not any(keys[i] == key for i in begun):
            continue  # adds only spaces or punctuation ("Ne" + "."): ends short of a label
        if len(begun) > 1 and token == chosen and pos + 1 < len(tokens):
            deeper = _spread(tokens, pos + 1, "", text, keys, begun)
            if any(deeper):
                norm = sum(deeper)
                for i in begun:
                    mass[i] += p * deeper[i] / norm
                continue
        for i in begun:
            mass[i] += p / len(begun)
    return mass


def _share_the_rest(mass: list[float], listed: Sequence[float]) -> None:
    """Labels no listed alternative begins share what the list leaves, each at most the
    smallest listed probability (an unlisted token is less likely than every listed one)."""
    unseen = [i for i, m in enumerate(mass) if m == 0.0]
    if unseen:
        left = max(0.0, 1.0 - sum(listed))
        each = min(left / len(unseen), min(listed))
        for i in unseen:
            mass[i] = each


def _labels_begun(piece: str, keys: Sequence[str], allowed: Sequence[int]) -> list[int]:
    """Of the `allowed` labels, the one `piece` spells exactly, else every one it begins
    (empty for a piece that begins none, or is only punctuation)."""
    if not piece:
        return []
    exact = [i for i in allowed if keys[i] == piece]
    return exact or [i for i in allowed if keys[i].startswith(piece)]


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

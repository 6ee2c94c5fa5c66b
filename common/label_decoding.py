"""Greedy decoding inside a closed label set, in numpy (shared by the ONNX and torch students).

A classification student answers with one of a few labels, yet free greedy decoding spends one
decoder step per token of the label and one more for the end token ("search_creative_work" is
nine word pieces and markers, so ten steps), and may spell a label that does not exist. Here the
labels' token sequences form a trie, and each step chooses only among the tokens that continue
some label: where one label is left, its remaining tokens are appended without running the
decoder, and where a stretch of tokens is shared by every label left, they are fed without
reading the logits. A sentiment label then takes one decoder step instead of two; an intent
label one to five instead of six to eleven.

Exactness: whenever free greedy decoding would output a label of the set, this returns that same
label (each choice is greedy's argmax restricted to a set that contains greedy's token, and ties
go to the lower id as in `argmax`); otherwise it returns the label greedy's choices lead to
inside the set. So exact match against an in-set reference can only rise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from common.meta import StudentMeta

# tokens (rows, 1) int64, reorder (always None here) -> logits (rows, vocab); the KV-cached step
# function of exports.decoding, so one decoder step per call.
StepFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

# A trie node: next token -> child node. The end token leads to an empty node.
Trie = dict[int, "Trie"]


def label_trie(sequences: Sequence[Sequence[int]], eos: int) -> Trie:
    """The trie of the labels' token sequences, each ended by `eos`."""
    root: Trie = {}
    for seq in sequences:
        node = root
        for tok in [*seq, eos]:
            node = node.setdefault(int(tok), {})
    return root


def completion(node: Trie, eos: int) -> list[int] | None:
    """The tokens that finish the only label left below `node` (end token excluded), or None
    while more than one label is still possible."""
    tail: list[int] = []
    while len(node) == 1:
        (tok, child), *_ = node.items()
        if tok == eos:
            return tail
        tail.append(tok)
        node = child
    return None


def label_greedy(
    step: StepFn, batch: int, *, trie: Trie, start: int, eos: int, pad: int
) -> list[list[int]]:
    """The token ids of each row's label (without the end token); see the module docstring.

    Rows move in lockstep, one decoder step per call of `step`, as in exports.decoding.greedy:
    a finished row is fed `pad` until every row is done.
    """
    if not trie:
        raise ValueError("label_greedy needs at least one label")
    nodes = [trie] * batch
    out: list[list[int]] = [[] for _ in range(batch)]
    first = completion(trie, eos)  # one label in all: no decoder step at all
    if first is not None:
        return [list(first) for _ in range(batch)]
    done = np.zeros(batch, dtype=bool)
    tokens = np.full((batch, 1), start, dtype=np.int64)
    while not done.all():
        logits = step(tokens, None)  # (batch, vocab)
        fed = np.full(batch, pad, dtype=np.int64)
        for b in np.flatnonzero(~done):
            tok = _choose(nodes[b], logits[b])
            if tok == eos:
                done[b] = True
                continue
            out[b].append(tok)
            nodes[b] = nodes[b][tok]
            tail = completion(nodes[b], eos)
            if tail is not None:
                out[b] += tail
                done[b] = True
            else:
                fed[b] = tok
        tokens = fed[:, None]
    return out


def _choose(node: Trie, logits: np.ndarray) -> int:
    """The allowed token with the highest logit (lowest id on a tie); a forced one as it is."""
    allowed = sorted(node)
    if len(allowed) == 1:
        return allowed[0]
    return allowed[int(np.argmax(logits[allowed]))]


@dataclass(frozen=True)
class LabelDecoder:
    """A label set ready to decode with: its trie and the student's special token ids."""

    trie: Trie
    start: int
    eos: int
    pad: int

    @classmethod
    def build(
        cls, sequences: Sequence[Sequence[int]], *, start: int, eos: int, pad: int
    ) -> LabelDecoder | None:
        """From the labels' token sequences; None for no labels (free decoding)."""
        if not sequences:
            return None
        return cls(label_trie(sequences, eos), start, eos, pad)

    @classmethod
    def for_student(
        cls, meta: StudentMeta, labels: list[str] | None, encode: Callable[[str], list[int]]
    ) -> LabelDecoder | None:
        """The set a student's greedy decoding is held to: `labels`, else its distill.json's
        (None: free decoding), each label tokenised by `encode` (no special tokens)."""
        chosen = meta.labels if labels is None else labels
        return cls.build(
            [encode(x) for x in chosen],
            start=meta.decoder_start_token_id,
            eos=meta.eos_token_id,
            pad=meta.pad_token_id,
        )

    def __call__(self, step: StepFn, batch: int) -> list[list[int]]:
        """`label_greedy` with this set's trie and ids."""
        return label_greedy(
            step, batch, trie=self.trie, start=self.start, eos=self.eos, pad=self.pad
        )

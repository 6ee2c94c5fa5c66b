"""Greedy and beam search over a step function, in numpy (no torch, no transformers).

Both follow transformers' `generate` (5.x) step for step so that ONNX and PyTorch agree:
greedy pads finished rows and stops when every row has emitted EOS; beam search is the
vectorised `_beam_search` (keep 2*num_beams candidates, finished hypotheses scored
sum_logprobs / generated_len ** length_penalty, early_stopping=False heuristic).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from common.copy_decoding import SpanTracker

# step(tokens (rows, 1) int64, reorder (rows,) int64 | None) -> logits (rows, vocab) float32.
# `reorder` says which previous row each new row continues (beam search); None keeps rows.
StepFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32 (the dtype transformers scores beams in)."""
    x = logits.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(
    step: StepFn,
    batch: int,
    *,
    start: int,
    eos: int,
    pad: int,
    max_new: int,
    min_new: int = 0,
    spans: SpanTracker | None = None,
) -> list[list[int]]:
    """Greedy decoding; returns the generated ids of each row, cut before its first EOS.

    `spans`: a fresh tracker of each row's input, whose spans are the only outputs it may
    decode (copy decoding, common.copy_decoding); None: any tokens."""
    tokens = np.full((batch, 1), start, dtype=np.int64)
    done = np.zeros(batch, dtype=bool)
    out: list[np.ndarray] = []
    for t in range(max_new):
        logits = step(tokens, None)  # (batch, vocab)
        if spans is not None:
            logits = np.where(spans.mask(logits.shape[-1]), logits, -np.inf)
        if t < min_new:
            logits = logits.copy()
            logits[:, eos] = -np.inf
        nxt = np.where(done, pad, logits.argmax(axis=-1)).astype(np.int64)
        if spans is not None:
            spans.update(nxt.tolist())
        out.append(nxt)
        done |= nxt == eos
        if done.all():
            break
        tokens = nxt[:, None]
    ids = np.stack(out, axis=1) if out else np.zeros((batch, 0), dtype=np.int64)
    return [_cut(row, eos) for row in ids]


def _cut(row: np.ndarray, eos: int) -> list[int]:
    hits = np.flatnonzero(row == eos)
    return row[: hits[0]].tolist() if hits.size else row.tolist()


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values per row, best first (ties: lower index first)."""
    part = np.argpartition(-x, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(x, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _gather(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x (batch, n, ...) gathered along axis 1 by idx (batch, k)."""
    shaped = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, shaped, axis=1)


def beam_search(
    step: StepFn,
    batch: int,
    *,
    num_beams: int,
    start: int,
    eos: int,
    max_new: int,
    min_new: int = 0,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Beam search as transformers does it; rows of `step` are (batch * num_beams)."""
    k, max_len, cur = num_beams, 1 + max_new, 1
    running = np.full((batch, k, max_len), eos, dtype=np.int64)
    running[:, :, 0] = start
    seqs = running.copy()
    run_scores = np.zeros((batch, k), dtype=np.float32)
    run_scores[:, 1:] = -1e9  # only beam 0 is live at the start, so beams do not repeat
    fin_scores = np.full((batch, k), -1e9, dtype=np.float32)
    finished = np.zeros((batch, k), dtype=bool)
    improvable = np.ones((batch, 1), dtype=bool)
    top_mask = np.arange(2 * k) < k
    reorder: np.ndarray | None = None
    while True:
        logp = log_softmax(step(running[:, :, cur - 1].reshape(-1, 1), reorder))  # (batch*k, vocab)
        vocab = logp.shape[-1]
        if cur - 1 < min_new:
            logp[:, eos] = -np.inf
        acc = (logp.reshape(batch, k, vocab) + run_scores[:, :, None]).reshape(batch, k * vocab)
        idx = _topk(acc, 2 * k)
        cand_scores = np.take_along_axis(acc, idx, axis=1)
        src, ids = idx // vocab, idx % vocab
        cand = _gather(running, src).copy()
        cand[:, :, cur] = ids
        hits = (ids == eos) | (cur + 1 >= max_len)
        live = (cand_scores + hits.astype(np.float32) * np.float32(-1e9)).astype(np.float32)
        nxt = _topk(live, k)
        running, run_scores, run_src = _gather(cand, nxt), _gather(live, nxt), _gather(src, nxt)
        seqs, fin_scores, finished = _merge_finished(
            seqs,
            fin_scores,
            finished,
            cand,
            cand_scores,
            hits & top_mask[None, :],
            improvable,
            gen_len=cur,
            length_penalty=length_penalty,
        )
        reorder = (run_src + np.arange(batch)[:, None] * k).reshape(-1)
        cur += 1
        best = run_scores[:, :1] / np.float32((cur - 1) ** length_penalty)
        worst = np.where(finished, fin_scores.min(axis=1, keepdims=True), np.float32(-1e9))
        improvable &= (best > worst).any(axis=-1, keepdims=True)
        if not improvable.any() or hits.all():
            break
    return [_cut(seqs[b, 0, 1:], eos) for b in range(batch)]


def _merge_finished(
    seqs: np.ndarray,
    fin_scores: np.ndarray,
    finished: np.ndarray,
    cand: np.ndarray,
    cand_scores: np.ndarray,
    just: np.ndarray,
    improvable: np.ndarray,
    *,
    gen_len: int,
    length_penalty: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the best num_beams finished hypotheses among the old ones and those just ended."""
    k = seqs.shape[1]
    scores = (cand_scores / np.float32(gen_len**length_penalty)).astype(np.float32)
    scores += (~improvable).astype(np.float32) * np.float32(-1e9)
    scores += (~just).astype(np.float32) * np.float32(-1e9)
    m_scores = np.concatenate([fin_scores, scores], axis=1)
    top = _topk(m_scores, k)
    m_seqs = np.concatenate([seqs, cand], axis=1)
    m_fin = np.concatenate([finished, just], axis=1)
    return _gather(m_seqs, top), _gather(m_scores, top), _gather(m_fin, top)

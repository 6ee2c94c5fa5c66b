"""Calibration over a closed label set: expected calibration error (ECE), beside accuracy.

For each test input a target gives a distribution over the task's labels: the student its
softmax over label-sequence scores (students.soft_labels, the same scores soft-label training
uses; exports.runtime for ONNX), the teacher the distribution its answer's log-probabilities
give (distill.generate.soft, with `--teacher-top-logprobs`). Its prediction is the most likely
label, its confidence that label's probability, and

    ECE = sum over bins b of |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|

with 10 equal-width confidence bins [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] (the last one
closed). 0 is perfectly calibrated; a model that says 90% and is right 60% of the time has
ECE 0.3 on those inputs. Lower is better, so it is kept out of the quality `metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

BINS = 10


class Calibration(TypedDict):
    """The report's `calibration` block (fractions, like every score in a report)."""

    ece: float
    ci95: list[float] | None  # percentile bootstrap over inputs, None when off
    bins: int
    n: int  # inputs with a distribution (the ECE's denominator)
    label_accuracy: float  # accuracy of the most likely label (what the ECE calibrates)
    labels: list[str]
    source: str  # "label scores" (students) or "teacher logprobs"


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = BINS
) -> float:
    """ECE of top-label `confidence` against `correct` with `bins` equal-width bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)  # 1.0 goes to the last bin
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.sum() / conf.size * abs(hit[in_bin].mean() - conf[in_bin].mean())
    return float(total)


def top_label(
    dists: Sequence[dict[str, float]], refs: Sequence[str], canonical: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) per distribution: its most likely label (first on ties) against
    the reference in the label set's spelling (`canonical(ref)`, None: no label, never right)."""
    conf = np.empty(len(dists))
    correct = np.zeros(len(dists), dtype=bool)
    for i, (dist, ref) in enumerate(zip(dists, refs, strict=True)):
        best = max(dist, key=lambda k: dist[k])
        conf[i] = dist[best]
        correct[i] = canonical(ref) == best
    return conf, correct


def calibration_block(
    dists: Sequence[dict[str, float] | None],
    refs: Sequence[str],
    labels: Any,
    source: str,
    *,
    samples: int = 1000,
    seed: int = 0,
) -> Calibration | None:
    """ECE (with a bootstrap CI over inputs) of the inputs that have a distribution; None
    when none has. `labels` is a distill.generate.labels.LabelSet."""
    keep = [i for i, d in enumerate(dists) if d]
    if not keep:
        return None
    conf, correct = top_label([dists[i] for i in keep], [refs[i] for i in keep], labels.canonical)
    return {
        "ece": expected_calibration_error(conf, correct),
        "ci95": _bootstrap(conf, correct, samples, seed) if samples else None,
        "bins": BINS,
        "n": len(keep),
        "label_accuracy": float(correct.mean()),
        "labels": list(labels.labels),
        "source": source,
    }


def _bootstrap(conf: np.ndarray, correct: np.ndarray, samples: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    n = conf.size
    stats = [
        expected_calibration_error(conf[idx], correct[idx])
        for idx in (rng.integers(0, n, n) for _ in range(samples))
    ]
    low, high = np.percentile(stats, [2.5, 97.5])
    return [float(low), float(high)]


def softmax_rows(scores: np.ndarray, labels: Sequence[str]) -> list[dict[str, float]]:
    """Each row of (n, L) label scores as a distribution over `labels` (softmax, T = 1)."""
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return [dict(zip(labels, map(float, row), strict=True)) for row in p]

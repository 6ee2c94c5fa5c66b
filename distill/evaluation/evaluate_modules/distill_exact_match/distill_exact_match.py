"""Exact match, optionally after SQuAD-style or whitespace-insensitive normalisation."""

import evaluate

from distill.evaluation.evaluate_modules import text_metric_info
from distill.evaluation.metrics import (
    exact_match,
    normalize_nospace,
    normalize_squad,
)

_DESCRIPTION = """Share of predictions equal to their reference after stripping outer spaces.
normalize='squad' lower-cases and drops punctuation and articles first (SQuAD v1.1);
normalize='nospace' lower-cases and removes all whitespace."""

_NORMALIZERS = {"none": None, "squad": normalize_squad, "nospace": normalize_nospace}


class DistillExactMatch(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.exact_match."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION,
            "",
            "predictions: list[str]; references: list[str]; normalize: none|squad|nospace",
        )

    def _compute(self, predictions, references, normalize: str = "none"):
        if normalize not in _NORMALIZERS:
            raise ValueError(
                f"normalize: must be one of {sorted(_NORMALIZERS)} (got {normalize!r})"
            )
        return {"exact_match": exact_match(predictions, references, _NORMALIZERS[normalize]).score}

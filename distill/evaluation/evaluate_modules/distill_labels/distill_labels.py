"""Accuracy and macro-F1 for outputs that are class labels (compared case-insensitively)."""

import evaluate

from distill.evaluation.evaluate_modules import text_metric_info
from distill.evaluation.metrics import accuracy, macro_f1


class DistillLabels(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.accuracy and macro_f1."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            "Accuracy and macro-F1 over the label set found in the references.",
            "",
        )

    def _compute(self, predictions, references):
        return {
            "accuracy": accuracy(predictions, references).score,
            "macro_f1": macro_f1(predictions, references).score,
        }

"""chrF++ (sacrebleu CHRF(word_order=2)), corpus level, 0-1, single reference."""

import evaluate

from distill.evaluation.evaluate_modules import text_metric_info
from distill.evaluation.metrics import chrf


class DistillChrf(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.chrf (offline, unlike the hub's `chrf`)."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            "Corpus chrF++ of sacrebleu: character n-grams up to 6 plus word bigrams.",
            "Popović (2017), chrF++: words helping character n-grams.",
        )

    def _compute(self, predictions, references):
        return {"chrf": chrf(predictions, references).score}

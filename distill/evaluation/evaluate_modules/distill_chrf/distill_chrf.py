"""chrF++ (sacrebleu CHRF(word_order=2)), corpus level, 0-1, single reference."""

import datasets
import evaluate

from distill.evaluation.metrics import chrf


class DistillChrf(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.chrf (offline, unlike the hub's `chrf`)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Corpus chrF++ of sacrebleu: character n-grams up to 6 plus word bigrams.",
            citation="Popović (2017), chrF++: words helping character n-grams.",
            inputs_description="predictions: list[str]; references: list[str]",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        return {"chrf": chrf(predictions, references).score}

"""BERTScore F1 with a local encoder (default: the packaged all-MiniLM-L6-v2); no hub."""

import evaluate

from distill.evaluation.evaluate_modules import text_metric_info
from distill.evaluation.metrics import bertscore


class DistillBertscore(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.bertscore."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            "Mean BERTScore F1 (no baseline rescaling) with a local encoder path.",
            "Zhang et al. (2020), BERTScore: Evaluating Text Generation with BERT.",
            (
                "predictions: list[str]; references: list[str]; model_path: str | None; "
                "num_layers: int | None"
            ),
        )

    def _compute(self, predictions, references, model_path=None, num_layers=None):
        result = bertscore(predictions, references, model_path=model_path, num_layers=num_layers)
        return {"bertscore_f1": result.score}

"""BERTScore F1 with a local encoder (default: the packaged all-MiniLM-L6-v2); no hub."""

import datasets
import evaluate

from distill.evaluation.metrics import bertscore


class DistillBertscore(evaluate.Metric):
    """evaluate wrapper of distill.evaluation.metrics.bertscore."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Mean BERTScore F1 (no baseline rescaling) with a local encoder path.",
            citation="Zhang et al. (2020), BERTScore: Evaluating Text Generation with BERT.",
            inputs_description=(
                "predictions: list[str]; references: list[str]; model_path: str | None; "
                "num_layers: int | None"
            ),
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, model_path=None, num_layers=None):
        result = bertscore(predictions, references, model_path=model_path, num_layers=num_layers)
        return {"bertscore_f1": result.score}

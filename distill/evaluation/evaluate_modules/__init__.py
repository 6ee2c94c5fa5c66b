"""`evaluate` metric modules shipped with distill, loaded from their local directories.

Each folder holds one script named like the folder, the layout `evaluate.load(path)` expects.
The scripts delegate to distill.evaluation.metrics so the CLI and `evaluate` agree exactly.
"""

from __future__ import annotations

from typing import Any

PAIR_INPUTS = "predictions: list[str]; references: list[str]"


def text_metric_info(description: str, citation: str = "", inputs: str = PAIR_INPUTS) -> Any:
    """The `evaluate.MetricInfo` of a metric over one string prediction and one reference."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs,
        features=datasets.Features(
            {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
        ),
    )

"""The evaluation report: what `distill eval` writes per target and `distill run` collects.

A JSON object on disk (report .json; its `examples` go to a .jsonl beside it), so TypedDicts.
Every metric score is a 0-1 fraction; tables show percentages.
"""

from __future__ import annotations

from typing import Any, TypedDict


class MetricScore(TypedDict):
    score: float
    ci95: list[float] | None  # [low, high] percentile bootstrap interval, None when off


class Latency(TypedDict):
    p50: float
    p95: float
    mean: float
    samples: int
    mode: str  # "batch 1" (students) or "concurrency 1" (teachers): one request at a time


class ExampleScore(TypedDict):
    index: int
    input: str
    reference: str
    prediction: str
    scores: dict[str, float]  # metric -> this example's score


class EvalReport(TypedDict, total=False):
    """One target scored on one test set (total=False: `examples` is dropped on disk, and
    `data` / `task_name` are filled in after the scoring)."""

    target: str
    kind: str  # onnx | model | teacher | predictions
    name: str  # short label for tables
    task_name: str | None
    data: str
    n: int
    created: str  # ISO time
    metrics: dict[str, MetricScore]
    latency_ms: Latency | None
    throughput_per_s: float | None
    wall_s: float
    tokens_per_1k_inputs: dict[str, float] | None  # teachers: prompt, completion
    cost_usd_per_1k_inputs: float | None  # priced teachers only
    size_bytes: int | None  # students: the weights they load
    size_mb: float | None
    failures: int  # requests that gave up (scored as empty answers)
    settings: dict[str, Any]  # the EvalConfig
    extra: dict[str, Any]  # target-specific details
    examples: list[ExampleScore]
    # with a label set: expected calibration error of the target's label distribution
    # (distill.evaluation.calibration.Calibration); absent when there is none
    calibration: dict[str, Any]
    predictions_file: str  # written reports: the JSONL that holds `examples`

"""`evaluate_target`: predictions of one target on a test set, scored into an EvalReport.

The report's fields are typed in `distill.evaluation.records.EvalReport`; `examples` is written
to a JSONL file next to the report by `write_report` and dropped from the JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distill.evaluation.config import BUILTIN_METRICS, EvalConfig
from distill.evaluation.records import EvalReport, Latency, MetricScore
from distill.evaluation.targets import (
    TEACHER_PREFIX,
    Predictions,
    predict_model,
    predict_onnx,
    read_prediction_file,
    target_kind,
)
from distill.task import TaskSpec

if TYPE_CHECKING:
    from distill.evaluation.calibration import Calibration
    from distill.generate.labels import LabelSet
    from teachers.config import TeacherConfig


def evaluate_target(
    target: str,
    data_path: Path,
    *,
    task: TaskSpec | None,
    cfg: EvalConfig,
    teacher_cfg: TeacherConfig | None = None,
) -> EvalReport:
    """Predict with `target` on the `input`s of `data_path` (JSONL) and score against `output`.

    Raises ValueError for bad input (unknown target, teacher without task, mismatched
    prediction file); distill.errors.UserError for a bad data file.
    """
    from common.jsonl import read_jsonl

    rows = read_jsonl(data_path)
    if cfg.limit:
        rows = rows[: cfg.limit]
    inputs = [r["input"] for r in rows]
    refs = [r["output"] for r in rows]
    labels = task_label_set(task) if cfg.calibration or cfg.teacher_top_logprobs else None
    preds = predict(
        target, inputs, refs, task=task, cfg=cfg, teacher_cfg=teacher_cfg, labels=labels
    )
    report = build_report(target, preds, inputs, refs, cfg)
    calibration = calibration_of(target, preds, inputs, refs, labels, cfg)
    if calibration is not None:
        report["calibration"] = dict(calibration)
    report["data"] = str(data_path)
    report["task_name"] = task.name if task else None
    return report


def predict(
    target: str,
    inputs: list[str],
    refs: list[str],
    *,
    task: TaskSpec | None,
    cfg: EvalConfig,
    teacher_cfg: TeacherConfig | None,
    labels: LabelSet | None = None,
) -> Predictions:
    """Dispatch on the kind of target."""
    kind = target_kind(target)
    if kind == "teacher":
        from distill.evaluation.teacher_target import predict_teacher

        single_line = not any("\n" in r.strip() for r in refs)
        teacher = _teacher_for(target, teacher_cfg)
        task = _task_for(target, task)
        return predict_teacher(teacher, task, inputs, cfg, single_line, labels)
    if kind == "predictions":
        return read_prediction_file(Path(target), len(inputs))
    if kind == "onnx":
        return predict_onnx(Path(target), inputs, cfg)
    return predict_model(Path(target), inputs, cfg)


def task_label_set(task: TaskSpec | None) -> LabelSet | None:
    """The task's closed label set, as generate resolves it (the `labels` key of [generate],
    else one inferred from the instruction and demonstrations); None for free text."""
    if task is None:
        return None
    from distill.generate.config import GenerateConfig
    from distill.generate.rules import resolve_rules

    table = task.table("generate")
    cfg = GenerateConfig(
        labels=table.get("labels"),
        label_weights=table.get("label_weights"),
        infer_labels=table.get("infer_labels", True),
    )
    return resolve_rules(cfg, task.instruction, [d.output for d in task.demonstrations]).label_set


def calibration_of(
    target: str,
    preds: Predictions,
    inputs: list[str],
    refs: list[str],
    labels: LabelSet | None,
    cfg: EvalConfig,
) -> Calibration | None:
    """The target's ECE over the label set: a student's softmax over its label-sequence
    scores, a teacher's logprob distributions (when asked); None where neither exists."""
    from distill.evaluation.calibration import calibration_block, softmax_rows

    if labels is None or not inputs:
        return None
    if preds.kind == "teacher":
        dists, source = preds.label_probs, "teacher logprobs"
    elif preds.kind in ("model", "onnx") and cfg.calibration:
        scores = student_label_scores(target, preds.kind, inputs, list(labels.labels), cfg)
        dists, source = softmax_rows(scores, list(labels.labels)), "label scores"
    else:
        return None
    if not dists:
        return None
    return calibration_block(
        dists, refs, labels, source, samples=cfg.bootstrap_samples, seed=cfg.seed
    )


def student_label_scores(
    target: str, kind: str, inputs: list[str], labels: list[str], cfg: EvalConfig
) -> np.ndarray:
    """(n, L) log-probabilities of every label's token sequence for every input."""
    if kind == "onnx":
        from exports.runtime import OnnxSeq2Seq

        runtime = OnnxSeq2Seq(
            Path(target), threads=cfg.student_threads, precision=cfg.onnx_precision
        )
        return runtime.label_scores(inputs, labels, batch_size=cfg.batch_size)
    from students.predict import TorchPredictor

    return TorchPredictor(Path(target)).label_scores(inputs, labels, batch_size=cfg.batch_size)


def _task_for(target: str, task: TaskSpec | None) -> TaskSpec:
    """A teacher target needs the task: its instruction and demonstrations are the prompt."""
    if task is None:
        raise ValueError(
            f"{target}: a teacher is prompted with the task's instruction and demonstrations; "
            "pass --task TASK.toml"
        )
    return task


def _teacher_for(target: str, teacher_cfg: TeacherConfig | None) -> TeacherConfig:
    """The [teacher] settings with the target's spec (`teacher:SPEC`) as the teacher."""
    from teachers.config import TeacherConfig

    base = teacher_cfg or TeacherConfig()
    return dataclasses.replace(base, teacher=target[len(TEACHER_PREFIX) :])  # re-validates it


# ---- scoring --------------------------------------------------------------------------------


def score_all(
    predictions: list[str], references: list[str], cfg: EvalConfig
) -> tuple[dict[str, MetricScore], dict[str, np.ndarray]]:
    """(metrics block of the report, per-example scores by metric name)."""
    from distill.evaluation.loading import compute_hub_metric
    from distill.evaluation.metrics import bootstrap_ci, compute_metric

    block: dict[str, MetricScore] = {}
    per_example: dict[str, np.ndarray] = {}
    for name in cfg.metrics:
        if name not in BUILTIN_METRICS:
            # an evaluate module by name: corpus scalars only, no interval
            for key, value in compute_hub_metric(name, predictions, references).items():
                block[key] = {"score": value, "ci95": None}
            continue
        options = {}
        if name == "bertscore":
            options = {"model_path": cfg.bertscore_model, "num_layers": cfg.bertscore_layers}
        result = compute_metric(name, predictions, references, **options)
        low, high = bootstrap_ci(result, samples=cfg.bootstrap_samples, seed=cfg.seed)
        block[name] = {
            "score": result.score,
            "ci95": [low, high] if cfg.bootstrap_samples else None,
        }
        per_example[name] = result.per_example
    return block, per_example


def latency_block(preds: Predictions) -> Latency | None:
    """p50/p95/mean in milliseconds of the timed inputs."""
    if not preds.latencies_s:
        return None
    ms = np.asarray(preds.latencies_s) * 1000.0
    # One request at a time for every kind of target: service time, never queueing.
    mode = "concurrency 1" if preds.kind == "teacher" else "batch 1"
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "mean": float(ms.mean()),
        "samples": len(ms),
        "mode": mode,
    }


def _usage_blocks(preds: Predictions, n: int) -> tuple[dict | None, float | None]:
    usage = preds.extra.get("usage")
    if not usage or n == 0:
        return None, None
    per_k = 1000.0 / n
    tokens = {
        "prompt": usage.get("prompt_tokens", 0) * per_k,
        "completion": usage.get("completion_tokens", 0) * per_k,
    }
    # an unpriced model (the local embedded teacher, an unknown model name) has no dollar cost
    cost = float(usage.get("cost_usd", 0.0)) * per_k if usage.get("priced", True) else None
    return tokens, cost


def build_report(
    target: str, preds: Predictions, inputs: list[str], refs: list[str], cfg: EvalConfig
) -> EvalReport:
    """Assemble the report (fields: distill.evaluation.records.EvalReport)."""
    n = len(refs)
    metrics, per_example = score_all(preds.texts, refs, cfg)
    tokens, cost = _usage_blocks(preds, n)
    examples = [
        {
            "index": i,
            "input": inputs[i],
            "reference": refs[i],
            "prediction": preds.texts[i],
            "scores": {k: float(v[i]) for k, v in per_example.items()},
        }
        for i in range(n)
    ]
    return {
        "target": target,
        "kind": preds.kind,
        "name": display_name(target, preds),
        "n": n,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metrics": metrics,
        "latency_ms": latency_block(preds),
        "throughput_per_s": n / preds.wall_s if preds.wall_s > 0 else None,
        "wall_s": preds.wall_s,
        "tokens_per_1k_inputs": tokens,
        "cost_usd_per_1k_inputs": cost,
        "size_bytes": preds.size_bytes,
        "size_mb": preds.size_bytes / 1e6 if preds.size_bytes is not None else None,
        "failures": int(preds.extra.get("failures", 0)),
        "settings": dataclasses.asdict(cfg),
        "extra": {k: v for k, v in preds.extra.items() if k != "failures"},
        "examples": examples,
    }


def display_name(target: str, preds: Predictions) -> str:
    """Short label for tables: 'teacher (qwen...)', 'student onnx int8', the path otherwise."""
    if preds.kind == "teacher":
        return f"teacher {target[len(TEACHER_PREFIX) :]}"
    if preds.kind == "onnx":
        return f"student ONNX {preds.extra.get('precision', '')} ({Path(target).name})".strip()
    if preds.kind == "model":
        return f"student torch ({Path(target).name})"
    return Path(target).name

"""What `distill eval` can score, and how each kind produces predictions with timings.

Targets: an ONNX directory (`exports.runtime.OnnxSeq2Seq`), a trained model directory
(`students.predict.TorchPredictor`), a teacher (`teacher:embedded`, `teacher:openai:MODEL`,
`teacher:http://host:port/v1`) prompted few-shot, or a JSONL file of precomputed predictions
(field `prediction`, one line per test example, in order).

Student latency is measured one input at a time (batch 1, what a request to a service sees) on
the first `latency_samples` inputs, separately from the batched pass that gives throughput.
Teacher latency is likewise measured one request at a time (concurrency 1) on the first
`latency_samples` inputs; the rest run `max_in_flight` at once for throughput. Timing requests
while hundreds wait in the teacher's queue would report queueing, not service time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.files import files_size
from common.meta import StudentMeta
from distill.evaluation.config import EvalConfig

TEACHER_PREFIX = "teacher:"


@dataclass
class Predictions:
    """Outputs of one target on the test inputs plus what it cost to get them."""

    kind: str  # onnx | model | teacher | predictions
    texts: list[str]
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # time of the (batched or concurrent) pass that produced `texts`
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # teachers asked for logprobs on a task with a label set: each answer's distribution over
    # the labels (None where it gave none); students: computed later, from label scores
    label_probs: list[dict[str, float] | None] | None = None


def target_kind(target: str) -> str:
    """Classify a target string; ValueError (with what was expected) when it is none of them."""
    if target.startswith(TEACHER_PREFIX):
        return "teacher"
    path = Path(target)
    if path.is_file() and path.suffix == ".jsonl":
        return "predictions"
    if path.is_dir():
        if any(path.glob("*.onnx")):
            return "onnx"
        if (path / "config.json").is_file():
            return "model"
        raise ValueError(f"{target}: directory holds neither *.onnx graphs nor a model config.json")
    if not path.exists():
        raise ValueError(
            f"{target}: no such file or directory (expected an ONNX dir, a model dir, "
            "a predictions .jsonl, or teacher:SPEC)"
        )
    raise ValueError(f"{target}: not an ONNX dir, model dir, predictions .jsonl or teacher:SPEC")


def _timed_batches(generate: Any, inputs: list[str], cfg: EvalConfig) -> Predictions:
    """Batched pass (throughput) then batch-1 pass over the first inputs (latency)."""
    labels = [] if cfg.free_decoding else None  # None: the student's own label set, if any
    options = {"max_new_tokens": cfg.max_new_tokens, "num_beams": cfg.num_beams, "labels": labels}
    start = time.perf_counter()
    texts = generate(inputs, batch_size=cfg.batch_size, **options)
    wall = time.perf_counter() - start
    latencies = []
    for text in inputs[: cfg.latency_samples]:
        t0 = time.perf_counter()
        generate([text], batch_size=1, **options)
        latencies.append(time.perf_counter() - t0)
    return Predictions("", list(texts), latencies, wall)


def predict_onnx(onnx_dir: Path, inputs: list[str], cfg: EvalConfig) -> Predictions:
    """Run the torch-free runtime; size counts only the graphs of the precision it loads."""
    from exports.layout import GRAPHS, graph_file, resolve_precision
    from exports.runtime import OnnxSeq2Seq

    runtime = OnnxSeq2Seq(onnx_dir, threads=cfg.student_threads, precision=cfg.onnx_precision)
    out = _timed_batches(runtime.generate, inputs, cfg)
    precision = resolve_precision(onnx_dir, cfg.onnx_precision)
    out.kind = "onnx"
    out.size_bytes = files_size(onnx_dir / graph_file(g, precision) for g in GRAPHS)
    out.extra = {
        "precision": precision,
        "threads": cfg.student_threads,
        "decoding_labels": _decoding_labels(runtime.meta.labels, cfg),
        "copy_decoding": _copy_decoding(runtime.meta, cfg),
    }
    return out


def predict_model(model_dir: Path, inputs: list[str], cfg: EvalConfig) -> Predictions:
    """Run the PyTorch student; size counts the weight files."""
    import torch

    from students.predict import TorchPredictor

    if cfg.student_threads:
        torch.set_num_threads(cfg.student_threads)
    predictor = TorchPredictor(model_dir)
    out = _timed_batches(predictor.generate, inputs, cfg)
    out.kind = "model"
    out.size_bytes = files_size(
        p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin")
    )
    out.extra = {
        "threads": torch.get_num_threads(),
        "decoding_labels": _decoding_labels(predictor.meta.labels, cfg),
        "copy_decoding": _copy_decoding(predictor.meta, cfg),
    }
    return out


def _decoding_labels(labels: list[str], cfg: EvalConfig) -> int:
    """How many labels greedy decoding chose among (0: free decoding)."""
    return 0 if cfg.free_decoding or cfg.num_beams > 1 else len(labels)


def _copy_decoding(meta: StudentMeta, cfg: EvalConfig) -> bool:
    """Whether greedy decoding was held to word spans of each input (common.copy_decoding)."""
    return meta.copies(None, cfg.free_decoding or cfg.num_beams > 1)


def read_prediction_file(path: Path, n: int) -> Predictions:
    """Precomputed predictions: one JSON object a line with a string `prediction`."""
    texts = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
            raise ValueError(f"{path}:{lineno}: field 'prediction' must be a string")
        texts.append(row["prediction"])
    if len(texts) != n:
        raise ValueError(
            f"{path}: {len(texts)} predictions for {n} test examples (lengths must match, in order)"
        )
    return Predictions("predictions", texts)

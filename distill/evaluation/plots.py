"""The charts people read: student vs teacher, learning curves, training curves, as PNG bytes.

One implementation for `distill run`'s report.html (inlined as data: URIs) and the PNGs the
benchmarks write, so the two never drift apart. matplotlib runs on the Agg backend (no display,
no GUI toolkit); every function returns the PNG's bytes and leaves writing them to the caller.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from distill.evaluation.reports import PERCENT_METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from distill.evaluation.records import EvalReport

# A target's colour by its kind, the same in every chart.
KIND_COLOURS = {"teacher": "#c44", "model": "#48c", "onnx": "#4a4", "predictions": "#999"}
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # before pyplot is imported: no display here
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes (no Software/URL metadata chunk), then closed."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def chart_metrics(reports: Sequence[EvalReport]) -> list[str]:
    """The 0-1 metrics every report has, in the first report's order (what fits one axis)."""
    if not reports:
        return []
    return [
        m for m in reports[0]["metrics"]
        if m in PERCENT_METRICS and all(m in r["metrics"] for r in reports)
    ]  # fmt: skip


def _short_name(report: EvalReport) -> str:
    return (report.get("name") or report["target"]).split(" (")[0]


def quality_latency_png(
    reports: Sequence[EvalReport], title: str, metrics: Sequence[str] | None = None
) -> bytes:
    """Two panels: quality as % with 95% CI error bars (one bar per metric and target) and p50
    latency per input (log scale; a target without latency gets no bar)."""
    plt = _pyplot()
    metrics = list(metrics) if metrics is not None else chart_metrics(reports)
    names = [_short_name(r) for r in reports]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(metrics), 1)
    for j, metric in enumerate(metrics):
        blocks = [r["metrics"][metric] for r in reports]
        vals = [100.0 * b["score"] for b in blocks]
        cis = [b.get("ci95") or [b["score"]] * 2 for b in blocks]
        err = [[v - 100.0 * lo for v, (lo, _) in zip(vals, cis, strict=True)],
               [100.0 * hi - v for v, (_, hi) in zip(vals, cis, strict=True)]]  # fmt: skip
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(reports))]
        ax1.bar(xs, vals, width, yerr=err, capsize=3, label=_metric_label(metric))
    ax1.set_xticks(range(len(reports)), names, rotation=10)
    ax1.set_ylim(0, 100)
    ax1.set_title("quality on the test set (95% CI)")
    if metrics:
        ax1.legend()
    lat = [(r.get("latency_ms") or {}).get("p50") or math.nan for r in reports]
    colours = [KIND_COLOURS.get(r.get("kind", ""), "#999") for r in reports]
    ax2.bar(names, lat, color=colours)
    if any(not math.isnan(v) for v in lat):
        ax2.set_yscale("log")
    ax2.set_ylabel("p50 latency per input, ms (log)")
    ax2.set_title("latency")
    ax2.tick_params(axis="x", labelrotation=10)
    fig.suptitle(title)
    return _png(fig)


def _metric_label(metric: str) -> str:
    return {"em": "EM %", "chrf": "chrF++"}.get(metric, metric)


def learning_curve_png(
    points: Mapping[int, Mapping[str, Any]], metric: str, title: str, scale: float = 100.0
) -> bytes:
    """The student's test score (with its 95% CI) against the number of teacher-labelled
    training examples. `points`: examples -> {"score", "ci95": [low, high]}, scores 0-1."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = sorted(points)
    ys = [scale * points[n]["score"] for n in xs]
    cis = [points[n].get("ci95") or [points[n]["score"]] * 2 for n in xs]
    err = [[y - scale * lo for y, (lo, _) in zip(ys, cis, strict=True)],
           [scale * hi - y for y, (_, hi) in zip(ys, cis, strict=True)]]  # fmt: skip
    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3)
    ax.set_xlabel("teacher-labelled training examples")
    ax.set_ylabel(f"{metric} on the real test set")
    ax.set_title(title)
    return _png(fig)


def training_curves_png(
    curves: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str, title: str
) -> bytes:
    """One line per curve: label -> [(x, y), ...], e.g. validation score per optimizer step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, pts in curves.items():
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if curves:
        ax.legend()
    return _png(fig)

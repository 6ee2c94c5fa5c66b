"""Human-readable views of reports: the comparison table, worst errors, and files on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill.evaluation.records import EvalReport, ExampleScore

# Built-in metrics are 0-1 fractions in reports; tables show them as percentages.
PERCENT_METRICS = ("em", "em_squad", "em_nospace", "chrf", "accuracy", "macro_f1", "bertscore")


def fmt_metric(name: str, block: dict) -> str:
    """'61.5 [55.0, 68.0]': built-in 0-1 metrics shown as percentages, others as they are."""
    scale = 100.0 if name in PERCENT_METRICS else 1.0
    text = f"{block['score'] * scale:.1f}"
    if block.get("ci95"):
        low, high = block["ci95"]
        text += f" [{low * scale:.1f}, {high * scale:.1f}]"
    return text


def fmt_ece(report: EvalReport) -> str:
    """'4.2 [2.9, 6.1]': the report's expected calibration error in percent, '-' without one."""
    calib = report.get("calibration")
    if not calib:
        return "-"
    return fmt_metric(
        "ece",
        {
            "score": calib["ece"] * 100,
            "ci95": [x * 100 for x in calib["ci95"]] if calib.get("ci95") else None,
        },
    )


def has_calibration(reports: list[EvalReport]) -> bool:
    """Any report with a `calibration` block: the tables get an ECE column."""
    return any(rep.get("calibration") for rep in reports)


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def compare_markdown(reports: list[EvalReport]) -> str:
    """One Markdown table row per report: quality with 95% CIs, latency, throughput, cost, size.

    Metrics are the union over reports, in order of first appearance; 0-1 metrics are shown
    as percentages. Missing values are '-'. With a label set, "ECE %" is the expected
    calibration error of each target's label distribution (lower is better; calibration.py).
    """
    names: list[str] = []
    for rep in reports:
        names += [m for m in rep["metrics"] if m not in names]
    ece = has_calibration(reports)
    header = [
        "target",
        "n",
        *[f"{m} (95% CI)" for m in names],
        *(["ECE % (95% CI)"] if ece else []),
        "p50 ms",
        "p95 ms",
        "inputs/s",
        "tokens/1k inputs",
        "$/1k inputs",
        "size MB",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rep in reports:
        lat = rep.get("latency_ms") or {}
        tokens = rep.get("tokens_per_1k_inputs")
        cells = [
            rep.get("name") or rep["target"],
            str(rep["n"]),
            *[fmt_metric(m, rep["metrics"][m]) if m in rep["metrics"] else "-" for m in names],
            *([fmt_ece(rep)] if ece else []),
            _fmt(lat.get("p50"), ".1f"),
            _fmt(lat.get("p95"), ".1f"),
            _fmt(rep.get("throughput_per_s"), ".2f"),
            "-" if not tokens else f"{tokens['prompt'] + tokens['completion']:,.0f}",
            _fmt(rep.get("cost_usd_per_1k_inputs"), ".4f"),
            _fmt(rep.get("size_mb"), ".1f"),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def worst_examples(report: EvalReport, n: int) -> list[ExampleScore]:
    """The n examples with the lowest score on the report's first metric (chrF breaks ties)."""
    examples = report.get("examples") or []
    if not examples or n <= 0:
        return []
    scored = [m for m in report["metrics"] if examples and m in examples[0]["scores"]]
    if not scored:
        return examples[:n]
    key_metrics = [scored[0]] + (["chrf"] if "chrf" in scored and scored[0] != "chrf" else [])
    ranked = sorted(examples, key=lambda e: (*(e["scores"][m] for m in key_metrics), e["index"]))
    return ranked[:n]


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def errors_text(report: EvalReport, n: int, width: int = 38) -> str:
    """Worst n cases side by side: input | reference | prediction, plus their scores."""
    rows = worst_examples(report, n)
    if not rows:
        return "(no examples)\n"
    head = f"{'#':>5}  {'input':<{width}}  {'reference':<{width}}  {'prediction':<{width}}  scores"
    lines = [
        f"worst {len(rows)} of {report['n']} for {report.get('name', report['target'])}:",
        head,
    ]
    for e in rows:
        scores = " ".join(f"{k}={v:.2f}" for k, v in e["scores"].items())
        lines.append(
            f"{e['index']:>5}  {_cut(e['input'], width):<{width}}  "
            f"{_cut(e['reference'], width):<{width}}  {_cut(e['prediction'], width):<{width}}  {scores}"
        )
    return "\n".join(lines) + "\n"


def predictions_path_for(report_path: Path) -> Path:
    """`report.json` -> `report.predictions.jsonl` (same folder)."""
    return report_path.with_name(report_path.stem + ".predictions.jsonl")


def write_report(report: EvalReport, out_path: Path) -> EvalReport:
    """Write the report JSON (without examples) and its per-example predictions JSONL next to it.

    Returns the report as written (with `predictions_file`).
    """
    from common.files import atomic_write_json, atomic_write_jsonl

    examples = report.get("examples") or []
    pred_path = predictions_path_for(out_path)
    atomic_write_jsonl(pred_path, examples)
    written: EvalReport = {k: v for k, v in report.items() if k != "examples"}  # type: ignore[assignment]
    written["predictions_file"] = str(pred_path)
    atomic_write_json(out_path, written)
    return written


def load_report(path: Path) -> EvalReport:
    """Read a report JSON written by `write_report` (and its examples when present)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "metrics" not in data or "n" not in data:
        raise ValueError(f"{path}: not a distill eval report (no 'metrics'/'n')")
    pred = Path(data.get("predictions_file") or predictions_path_for(path))
    if pred.is_file():
        data["examples"] = [json.loads(line) for line in pred.read_text().splitlines() if line]
    return data

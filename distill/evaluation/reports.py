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


def _mean_of_examples(report: EvalReport, metric: str) -> bool:
    """True when the report's `metric` is the mean of its per-example scores (exact match,
    accuracy), so a per-example difference pairs it; corpus chrF++ and macro-F1 are not."""
    examples = report.get("examples") or []
    if not examples or metric not in examples[0]["scores"]:
        return False
    mean = sum(e["scores"][metric] for e in examples) / len(examples)
    return abs(mean - report["metrics"][metric]["score"]) < 1e-9


def paired_vs_teacher(reports: list[EvalReport]) -> list[dict[str, Any]]:
    """Each student minus the teacher on the same test rows, per metric that is a mean of
    per-example scores, with a paired bootstrap 95% CI in points ([] without a teacher report,
    or where per-example rows are missing or were scored on other inputs)."""
    from distill.evaluation.metrics import paired_bootstrap

    teacher = next((r for r in reports if r.get("kind") == "teacher"), None)
    if teacher is None or not teacher.get("examples"):
        return []
    rows = []
    for rep in reports:
        examples = rep.get("examples") or []
        same = [e["input"] for e in examples] == [e["input"] for e in teacher["examples"]]
        if rep is teacher or not same:
            continue
        samples = (rep.get("settings") or {}).get("bootstrap_samples", 1000)
        for metric in rep["metrics"]:
            if not (_mean_of_examples(rep, metric) and _mean_of_examples(teacher, metric)):
                continue
            base = [e["scores"][metric] for e in teacher["examples"]]
            other = [e["scores"][metric] for e in examples]
            diff = paired_bootstrap(base, other, samples=samples)
            rows.append({"target": rep.get("name") or rep["target"], "metric": metric, **diff})
    return rows


def fmt_paired(row: dict[str, Any]) -> str:
    """'-3.0 [-6.5, +0.5]': a paired difference in points with its 95% interval."""
    low, high = row["ci95"]
    return f"{row['diff']:+.1f} [{low:+.1f}, {high:+.1f}]"


def paired_table(reports: list[EvalReport]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the student-minus-teacher table (no rows when nothing pairs): one row
    per student, one column per paired metric, and the rows where each side alone was right."""
    rows = paired_vs_teacher(reports)
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    header = ["student - teacher", *[f"{m} (points, paired 95% CI)" for m in metrics],
              "rows only the student / only the teacher gets"]  # fmt: skip
    table = []
    for target in dict.fromkeys(r["target"] for r in rows):
        mine = {r["metric"]: r for r in rows if r["target"] == target}
        first = mine[next(m for m in metrics if m in mine)]
        table.append([target, *[fmt_paired(mine[m]) if m in mine else "-" for m in metrics],
                      f"{first['better']} / {first['worse']} ({first['metric']})"])  # fmt: skip
    return header, table


def paired_markdown(reports: list[EvalReport]) -> str:
    """`paired_table` as Markdown, after a blank line ("" when nothing pairs)."""
    header, rows = paired_table(reports)
    if not rows:
        return ""
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
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

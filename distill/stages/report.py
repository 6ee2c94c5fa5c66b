"""RUN/report.html: one self-contained page a person reads at a glance after `distill run`.

Built from what the run directory already holds (nothing is recomputed, no model is loaded):
RUN/report.json (the student-vs-teacher evaluation, with per-example predictions),
RUN/data/manifest.json (labels, rejections), RUN/model/metrics.json (validation per epoch) and,
when benchmarks/learning_curve.py has been run on it, RUN/learning_curve.json. A missing part
leaves its section out. The page needs no network: CSS is inline and the charts are PNGs in
data: URIs (distill.evaluation.plots, the code the benchmarks draw their PNGs with).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, read_json
from distill.errors import UserError
from distill.evaluation.records import EvalReport
from distill.generate.calibration import summary_line

REPORT_HTML = "report.html"
LEARNING_CURVE = "learning_curve.json"  # written by benchmarks/learning_curve.py
DEFAULT_SHOW_ERRORS = 10

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.glance { background: #f6f9ff; border-left: 4px solid #48c; padding: .5em 1em; }
.note { color: #a40; } .muted { color: #777; }
.bar { display: inline-block; height: .8em; background: #48c; vertical-align: middle; }
.bar.rej { background: #c44; }
td { max-width: 30em; } .text { white-space: pre-wrap; word-break: break-word; }
img { max-width: 100%; }
"""


class _Html(str):
    """Markup already escaped: table cells pass it through as is."""


def _esc(value: Any) -> str:
    return value if isinstance(value, _Html) else html.escape(str(value), quote=True)


@dataclass
class RunFiles:
    """What a run directory holds for the report (None: that part is not there yet)."""

    root: Path
    evaluation: dict[str, Any] | None  # report.json: {"test": path, "reports": [...]}
    manifest: dict[str, Any] | None  # data/manifest.json
    training: dict[str, Any] | None  # model/metrics.json
    learning_curve: dict[str, Any] | None  # learning_curve.json


def load_run(root: Path) -> RunFiles:
    """Read the run's JSON files; UserError (one line) when `root` is not a run directory or a
    file in it is broken."""
    from distill.stages.run import REPORT_JSON

    if not root.is_dir():
        raise UserError(f"RUN: {root} is not a directory")
    paths = {
        "evaluation": root / REPORT_JSON,
        "manifest": root / "data" / "manifest.json",
        "training": root / "model" / "metrics.json",
        "learning_curve": root / LEARNING_CURVE,
    }
    if not (paths["evaluation"].is_file() or paths["manifest"].is_file()):
        raise UserError(
            f"RUN: {root} is not a distill run directory (no {REPORT_JSON} or data/manifest.json)"
        )
    found: dict[str, Any] = {}
    for key, path in paths.items():
        try:
            found[key] = read_json(path) if path.is_file() else None
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return RunFiles(root=root, **found)


def write_run_report(root: Path, show_errors: int = DEFAULT_SHOW_ERRORS) -> Path:
    """Build RUN/report.html from the run directory and write it atomically; returns its path."""
    if show_errors < 0:
        raise UserError(f"--show-errors: must be >= 0 (got {show_errors})")
    page = render_report(load_run(root), show_errors)
    out = root / REPORT_HTML
    atomic_write_text(out, page)
    return out


def render_report(run: RunFiles, show_errors: int = DEFAULT_SHOW_ERRORS) -> str:
    """The whole page: glance, student vs teacher, learning and training curves, data, errors."""
    reports: list[EvalReport] = (run.evaluation or {}).get("reports") or []
    task = ((run.manifest or {}).get("task") or {}).get("name") or run.root.name
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>distill run report: {_esc(task)}</h1>",
        f'<p class="muted">run directory {_esc(run.root)}, report written {written}</p>',
        _glance(reports),
        _comparison(run, reports),
        _learning_curve(run.learning_curve),
        _training(run.training),
        _data(run.manifest),
        _errors(reports, show_errors),
    ]
    body = "\n".join(p for p in parts if p)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>distill: {_esc(task)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------- building blocks


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Collection[int] = ()
) -> str:
    """An HTML table; cells are escaped unless already _Html; `numeric` columns align right."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_esc(c)}</td>' if i in numeric else f"<td>{_esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _bar(fraction: float, css: str = "bar") -> _Html:
    """A horizontal bar, 20em at 100%: a share seen without reading the number."""
    return _Html(f'<span class="{css}" style="width: {20 * fraction:.1f}em"></span>')


def _section(title: str, anchor: str, *blocks: str) -> str:
    return f'<h2 id="{anchor}">{_esc(title)}</h2>\n' + "\n".join(b for b in blocks if b)


# ---------------------------------------------------------------------------- student vs teacher


def _teacher(reports: Sequence[EvalReport]) -> EvalReport | None:
    return next((r for r in reports if r.get("kind") == "teacher"), None)


def _p50(report: EvalReport) -> float | None:
    return (report.get("latency_ms") or {}).get("p50")


def speedup(report: EvalReport, teacher: EvalReport | None) -> float | None:
    """Teacher p50 / this target's p50 (None for the teacher itself or when either is missing)."""
    if teacher is None or report is teacher:
        return None
    mine, theirs = _p50(report), _p50(teacher)
    return theirs / mine if mine and theirs else None


def _name(report: EvalReport) -> str:
    return report.get("name") or report["target"]


def _glance(reports: Sequence[EvalReport]) -> str:
    """One sentence per student: its first metric against the teacher's, speed-up and size."""
    from distill.evaluation.reports import fmt_metric

    teacher = _teacher(reports)
    lines = []
    for rep in reports:
        if rep is teacher or not rep["metrics"]:
            continue
        metric = next(iter(rep["metrics"]))
        text = f"{_name(rep)}: {metric} {fmt_metric(metric, rep['metrics'][metric])}"
        if teacher and metric in teacher["metrics"]:
            text += f" vs teacher {fmt_metric(metric, teacher['metrics'][metric])}"
        if (ratio := speedup(rep, teacher)) is not None:
            text += f"; {ratio:.1f}x faster at p50"
        if rep.get("size_mb") is not None:
            text += f"; {rep['size_mb']:.1f} MB"
        lines.append(f"<li>{_esc(text)}</li>")
    return f'<div class="glance"><ul>{"".join(lines)}</ul></div>' if lines else ""


def comparison_rows(reports: Sequence[EvalReport]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the student-vs-teacher table, numbers formatted as in report.md."""
    from distill.evaluation.reports import fmt_ece, fmt_metric, has_calibration

    names: list[str] = []
    for rep in reports:
        names += [m for m in rep["metrics"] if m not in names]
    ece = has_calibration(list(reports))
    header = ["target", "n", *[f"{m} (95% CI)" for m in names],
              *(["ECE % (95% CI)"] if ece else []), "p50 ms", "speed-up (p50)",
              "size MB", "$/1k inputs"]  # fmt: skip
    teacher = _teacher(reports)
    rows = []
    for rep in reports:
        ratio, p50 = speedup(rep, teacher), _p50(rep)
        cost = rep.get("cost_usd_per_1k_inputs")
        rows.append([
            _name(rep), str(rep["n"]),
            *[fmt_metric(m, rep["metrics"][m]) if m in rep["metrics"] else "-" for m in names],
            *([fmt_ece(rep)] if ece else []),
            "-" if p50 is None else f"{p50:.1f}",
            "teacher" if rep is teacher else ("-" if ratio is None else f"{ratio:.1f}x"),
            "-" if rep.get("size_mb") is None else f"{rep['size_mb']:.1f}",
            "-" if cost is None else f"{cost:.4f}",
        ])  # fmt: skip
    return header, rows


def _comparison(run: RunFiles, reports: Sequence[EvalReport]) -> str:
    from distill.evaluation.plots import quality_latency_png
    from distill.stages.run import eval_notes

    if not reports:
        return _section("Student vs teacher", "compare", '<p class="muted">not evaluated yet.</p>')
    from distill.evaluation.reports import paired_table

    header, rows = comparison_rows(reports)
    paired_header, paired_rows = paired_table(list(reports))
    paired = (
        "<p>Each student minus the teacher on the same test rows (points; the bootstrap "
        "resamples both on the same rows, so the interval is about the difference):</p>"
        + _table(paired_header, paired_rows, numeric=set(range(1, len(paired_header))))
        if paired_rows
        else ""
    )
    test = (run.evaluation or {}).get("test", "")
    notes = eval_notes(reports, teacher_labels=_teacher_labelled(run.root, test))
    note_html = "".join(
        f'<p class="note">note: {_esc(line[len("note: ") :])}</p>'
        for line in notes.splitlines()
        if line.startswith("note: ")
    )
    title = f"student vs teacher on {reports[0]['n']} test examples"
    return _section(
        "Student vs teacher",
        "compare",
        f"<p>Scored on <code>{_esc(test)}</code>; quality with bootstrap 95% CIs, latency per "
        "input one at a time, speed-up = teacher p50 / target p50.</p>",
        _table(header, rows, numeric=set(range(1, len(header)))),
        paired,
        note_html,
        _img(quality_latency_png(reports, title), "quality and p50 latency per target"),
    )


def _teacher_labelled(root: Path, test: str) -> bool:
    """True when the test set is the run's own generated split (its references are the
    teacher's labels), False for a --test file."""
    return bool(test) and Path(test).resolve().parent == (root / "data").resolve()


# ---------------------------------------------------------------------------- curves


def _learning_curve(curve: dict[str, Any] | None) -> str:
    """Score against training-set size (benchmarks/learning_curve.py), when the run has one."""
    from distill.evaluation.plots import learning_curve_png
    from distill.evaluation.reports import fmt_metric

    if not curve or not curve.get("points"):
        return ""
    metric = curve.get("metric", "score")
    points = {int(n): p for n, p in curve["points"].items()}
    rows = [
        [str(n), str(p.get("steps", "-")), fmt_metric(metric, p)] for n, p in sorted(points.items())
    ]
    return _section(
        "Learning curve",
        "learning-curve",
        "<p>The student's test score against the number of teacher-labelled examples it was "
        "trained on: what more teacher examples buy.</p>",
        _table(["teacher examples", "steps", f"{metric} (95% CI)"], rows, numeric={0, 1, 2}),
        _img(
            learning_curve_png(points, metric, "what more teacher examples buy"), "learning curve"
        ),
    )


def validation_curves(metrics: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """From RUN/model/metrics.json: validation EM and chrF++ (%) per optimizer step."""
    history = metrics.get("history") or []
    per_epoch = metrics.get("global_steps", 0) / max(metrics.get("epochs_run") or 1, 1)
    curves = {}
    for key, label in (("val_exact_match", "validation EM %"), ("val_chrf", "validation chrF++")):
        pts = [(h["epoch"] * per_epoch, percent(h[key])) for h in history if key in h]
        if pts:
            curves[label] = pts
    return curves


def percent(value: float) -> float:
    """Scores are 0-1 fractions; a value above 1 is already in points (older chrF++ reports)."""
    return 100.0 * value if value <= 1.0 else value


def _training(metrics: dict[str, Any] | None) -> str:
    from distill.evaluation.plots import training_curves_png

    curves = validation_curves(metrics or {})
    if not curves:
        return ""
    m = metrics or {}
    facts = (
        f"{m.get('train_examples', '?')} training examples, {m.get('global_steps', '?')} "
        f"optimizer steps over {m.get('epochs_run', '?')} epochs; best epoch "
        f"{m.get('best_epoch', '?')}{' (stopped early)' if m.get('early_stopped') else ''}"
    )
    png = training_curves_png(
        curves, "optimizer steps", "validation score (%)", "student validation score per epoch"
    )
    return _section("Training", "training", f"<p>{_esc(facts)}.</p>", _img(png, "validation curve"))


# ---------------------------------------------------------------------------- data


def _data(manifest: dict[str, Any] | None) -> str:
    """Counts, the label distribution and the reasons examples were rejected."""
    if not manifest:
        return ""
    c = manifest.get("counts") or {}
    teacher = manifest.get("teacher") or {}
    splits = ", ".join(f"{k} {v}" for k, v in (manifest.get("splits") or {}).items())
    facts = (
        f"{c.get('accepted', 0)} examples accepted of {c.get('target', '?')} asked for, from "
        f"{c.get('requests', 0)} teacher requests ({manifest.get('mode', '?')} mode, teacher "
        f"{teacher.get('teacher', '?')}{' ' + teacher['model'] if teacher.get('model') else ''}); "
        f"{c.get('rejected', 0)} rejected; splits: {splits or '-'}; cost "
        f"${manifest.get('cost_usd', 0):.4f}"
    )
    return _section(
        "Data",
        "data",
        f"<p>{_esc(facts)}.</p>",
        _labels(c.get("per_label")),
        _calibration(manifest.get("calibration")),
        _rejected(c.get("rejected_by_reason") or {}, c.get("rejected", 0)),
    )


def _calibration(block: dict[str, Any] | None) -> str:
    """What label calibration decided, where it had a prior to decide with (the console's
    line); the label table above counts the teacher's own answers, so this says whether the
    splits hold those or calibrated ones."""
    if not block or "prior" not in block:
        return ""
    held = "calibrated labels" if block.get("applied") else "the teacher's own labels"
    return f'<p id="calibration">{_esc(summary_line(block))}; the splits hold {_esc(held)}.</p>'


def _labels(per_label: dict[str, Any] | None) -> str:
    if not per_label or not per_label.get("accepted"):
        return ""
    accepted = per_label["accepted"]
    total = sum(accepted.values()) or 1
    rows = [
        [label, str(n), f"{100 * n / total:.1f}%", _bar(n / total)] for label, n in accepted.items()
    ]
    checks = [[k.replace("_", " "), str(v)] for k, v in per_label.items() if k != "accepted"]
    return (
        '<h3 id="labels">Labels (accepted examples)</h3>\n'
        + _table(["label", "examples", "share", ""], rows, numeric={1, 2})
        + ("\n" + _table(["label check", "count"], checks, numeric={1}) if checks else "")
    )


def _rejected(by_reason: dict[str, int], total: int) -> str:
    if not by_reason:
        return '<h3 id="rejected">Rejected examples</h3>\n<p>none rejected.</p>'
    total = total or sum(by_reason.values()) or 1
    ranked = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = [
        [reason, str(n), f"{100 * n / total:.1f}%", _bar(n / total, "bar rej")]
        for reason, n in ranked
    ]
    return '<h3 id="rejected">Rejected examples, by reason</h3>\n' + _table(
        ["reason", "examples", "share of rejected", ""], rows, numeric={1, 2}
    )


# ---------------------------------------------------------------------------- errors


def _errors(reports: Sequence[EvalReport], n: int) -> str:
    """The worst n examples per target: the rows `distill eval --show-errors n` prints."""
    from distill.evaluation.reports import worst_examples

    if n <= 0 or not reports:
        return ""
    blocks = []
    for rep in reports:
        rows = worst_examples(rep, n)
        if not rows:
            continue
        table = _table(
            ["#", "input", "reference", "prediction", "scores"],
            [
                [str(e["index"]), _text(e["input"]), _text(e["reference"]),
                 _text(e["prediction"]), " ".join(f"{k}={v:.2f}" for k, v in e["scores"].items())]
                for e in rows
            ],
            numeric={0},
        )  # fmt: skip
        blocks.append(f"<h3>worst {len(rows)} of {rep['n']} for {_esc(_name(rep))}</h3>\n{table}")
    if not blocks:
        return ""
    intro = (
        "<p>Lowest score on the first metric first (chrF++ breaks ties): the examples "
        f"<code>distill eval --show-errors {n}</code> prints, here in full.</p>"
    )
    return _section("Worst errors", "errors", intro, *blocks)


def _text(value: str) -> _Html:
    return _Html(f'<span class="text">{_esc(value)}</span>')

"""One table and one learning-curve figure across the student-vs-teacher benchmark runs.

    python benchmarks/summary.py questions sentiment-t300-g3000 temporal-t200-g346 intent-t200

For every task whose benchmark finished, the table shows the teacher's score against gold, the
int8 ONNX student's, their ratio (student / teacher) with both 95% CIs, and the per-input p50
latency of each at concurrency 1 with the speed-up. The figure plots each student's validation
score against optimizer steps (from the run's model/metrics.json history), so a reader sees
where training stops improving.

Writes benchmarks/results/student_vs_teacher_summary.{json,md} and learning_curves.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
# The headline metric per task: exact match for a closed label set, chrF++ for free text.
HEADLINE = {
    "sentiment": "em",
    "questions": "em",
    "intent": "em",
    "trec": "em",
    "address": "em",
    "temporal": "chrf",
    "e2e": "chrf",
    "spider": "chrf",
}


def _pct(metric: str, value: float) -> float:
    """Scores are 0-1 in the reports; tables show percentages (chrF++ as 0-100 points)."""
    return 100.0 * value if value <= 1.0 else value


def load_runs(tasks: list[str]) -> dict[str, dict]:
    """The benchmark JSON of each task that has one (full size, not --quick)."""
    runs = {}
    for task in tasks:
        path = RESULTS / f"student_vs_teacher_{task}.json"
        if path.is_file():
            runs[task] = json.loads(path.read_text())
    return runs


def row(task: str, run: dict) -> dict:
    """Teacher vs int8 student on the task's headline metric, with CIs and latency."""
    metric = HEADLINE.get(task.split("-")[0], "chrf")
    by_kind = {r["name"].split(" ")[0]: r for r in run["reports"]}
    teacher = run["reports"][0]
    student = run["reports"][-1]  # the ONNX student is evaluated last
    t, s = teacher["metrics"][metric], student["metrics"][metric]
    t_ms, s_ms = teacher["latency_ms"]["p50"], student["latency_ms"]["p50"]
    return {
        "task": task,
        "metric": metric,
        "n": student["n"],
        "teacher": _pct(metric, t["score"]),
        "teacher_ci": [_pct(metric, v) for v in t.get("ci95") or [t["score"]] * 2],
        "student": _pct(metric, s["score"]),
        "student_ci": [_pct(metric, v) for v in s.get("ci95") or [s["score"]] * 2],
        "ratio": s["score"] / t["score"] if t["score"] else None,
        "teacher_p50_ms": t_ms,
        "student_p50_ms": s_ms,
        "speedup": t_ms / s_ms if s_ms else None,
        "targets": sorted(by_kind),
        # what the export shipped: int8, or fp32 when int8 failed the gate
        "precision": "int8" if "int8" in student["name"] else "fp32",
        # ONNX student minus teacher in EM points, paired bootstrap 95% CI (newer runs only)
        "paired_em": (run.get("paired_em_vs_teacher") or {}).get("student_onnx"),
    }


def markdown(rows: list[dict]) -> str:
    from student_vs_teacher import diff_cell

    lines = [
        "| task | metric | test n | teacher (95% CI) | ONNX student (95% CI) | shipped | "
        "student / teacher | EM diff, paired 95% CI | p50 ms teacher / student | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pe = r.get("paired_em")
        diff = diff_cell(pe)
        lines.append(
            f"| {r['task']} | {r['metric']} | {r['n']} | {r['teacher']:.1f} "
            f"[{r['teacher_ci'][0]:.1f}, {r['teacher_ci'][1]:.1f}] | {r['student']:.1f} "
            f"[{r['student_ci'][0]:.1f}, {r['student_ci'][1]:.1f}] | {r['precision']} | "
            f"{r['ratio']:.2f}x | {diff} | "
            f"{r['teacher_p50_ms']:.0f} / {r['student_p50_ms']:.1f} | {r['speedup']:.0f}x |"
        )
    return "\n".join(lines) + "\n"


def learning_curves(tasks: list[str], path: Path) -> None:
    """Validation score against optimizer steps, one line per task's student.

    The curves come from the run directories (benchmarks/runs/, not kept in git): when one is
    missing, the figure is left as it was rather than redrawn without that task's curve."""
    from common.files import atomic_write_bytes
    from distill.evaluation.plots import training_curves_png

    files = {task: HERE / "runs" / task / "model" / "metrics.json" for task in tasks}
    missing = [task for task, f in files.items() if not f.is_file()]
    if missing:
        print(f"{path.name} kept as it was: no run directory for {', '.join(missing)}")
        return
    curves = {}
    for task, metrics in files.items():
        m = json.loads(metrics.read_text())
        per_epoch = m["global_steps"] / max(m["epochs_run"], 1)
        key = "val_exact_match" if HEADLINE.get(task.split("-")[0]) == "em" else "val_chrf"
        curves[f"{task} ({key[4:]})"] = [
            (h["epoch"] * per_epoch, _pct(key, h[key])) for h in m["history"]
        ]
    title = "student learning curves (teacher-labelled validation split)"
    png = training_curves_png(curves, "optimizer steps", "validation score (%)", title)
    atomic_write_bytes(path, png)


def main() -> int:
    # run names as the benchmark writes them: the task, plus "-t<N>" when --test was given
    tasks = sys.argv[1:] or [
        "questions",
        "sentiment-t300-g3000",
        "sentiment-t300-g3000-e6",
        "temporal-t200-g346",
        "intent-t200",
        "intent-t200-s1",
        "intent-t200-s1-auto",
        "intent-t200-s2-auto",
        "intent-t200-ld",
        "intent-t200-lp",
        "intent-t200-lp-s1",
        "intent-t200-lp-s2",
        "intent-t200-cal",
        "intent-t200-cal-s1",
        "intent-t200-cal-s2",
        "sentiment-t600-g3000-lp",
        "sentiment-t600-g3000-lp-auto",
        "sentiment-t600-g3000-lp-ld",
        "sentiment-t600-g3000-cal",
        "sentiment-t600-g3000-lp-p50",
        "sentiment-t600-g3000-lp-p70",
        "sentiment-t300-g1000",
        "sentiment-t300-g1000-lp",
        "sentiment-t300-g1000-lp-soft",
        "sentiment-t300-label-vote-g500",
        "e2e-t200-synthesize",
        "e2e-t200-synthesize-mix0",
        "trec-t300",
        "trec-t300-s1",
        "trec-t300-s2",
        "trec-t300-none",
        "trec-t300-caps",
        "address-t300",
        "address-t300-caps",
        "address-t300-copy",
        "address-t300-copy-s1",
        "address-t300-copy-s2",
        "address-t300-span",
        "address-t300-span-s1",
        "address-t300-span-s2",
        "address-t300-span-v",
        "address-t300-written",
        "address-t300-written-s1",
        "address-t300-written-s2",
        "address-t300-xt",
        "address-t300-xt-s1",
        "address-t300-xt-s2",
        "address-t300-xt-d",
        "address-t300-xt-all",
        "address-t300-xt-all-e6",
        "temporal-t200-pc",
        "temporal-t200-pc-s1",
        "temporal-t200-pcd",
        "temporal-t200-pcd-s1",
        "temporal-t200-pcd-len",
        "temporal-t200-pcd-s1-len",
        "temporal-t200-pcd-all",
        "temporal-t200-pcd-all-s1",
        "temporal-t200-pcd-all-s2",
    ]
    runs = load_runs(tasks)
    rows = [row(task, run) for task, run in runs.items()]
    (RESULTS / "student_vs_teacher_summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = markdown(rows)
    (RESULTS / "student_vs_teacher_summary.md").write_text(table)
    learning_curves(list(runs), RESULTS / "learning_curves.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

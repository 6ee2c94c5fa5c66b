"""Two student-vs-teacher runs' int8 students on the same real test set, paired input by input.

    python benchmarks/paired_runs.py --name label_calibration \\
        --pairs intent-t200-lp:intent-t200-cal intent-t200-lp-s1:intent-t200-cal-s1

Each pair is `BASELINE:RUN`, two run directories under benchmarks/runs/ that student_vs_teacher.py
finished on the same test rows (one setting changed between them, e.g. generate's label
calibration, with the training seed the same within a pair). For each pair: both students'
exact match on the test set, and RUN minus BASELINE with a paired bootstrap 95% CI (both
resampled on the same inputs). Per task, the mean of the pairs' differences: with several
training seeds, the spread between pairs shows how much of a difference is the seed's.

Writes benchmarks/results/paired_<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

HERE = Path(__file__).parent
RESULTS = HERE / "results"
RUNS = HERE / "runs"


def exact(run: str, target: str = "student_onnx") -> dict[str, float]:
    """Input -> 1.0 where the run's `target` answered its reference exactly, else 0.0."""
    path = RUNS / run / "eval" / f"{target}.predictions.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {r["input"]: float(r["prediction"] == r["reference"]) for r in rows}


def compare(baseline: str, run: str) -> dict:
    """Both students' exact match (%) and the paired difference, on the inputs both scored."""
    from student_vs_teacher import paired_diff

    a, b = exact(baseline), exact(run)
    if set(a) != set(b):
        raise SystemExit(f"--pairs {baseline}:{run}: the runs were scored on different test rows")
    keys = sorted(a)
    base, new = [a[k] for k in keys], [b[k] for k in keys]
    return {
        "baseline": baseline,
        "run": run,
        "task": run.split("-")[0],
        "n": len(keys),
        "baseline_em": round(100 * sum(base) / len(keys), 2),
        "em": round(100 * sum(new) / len(keys), 2),
        "diff": paired_diff(base, new),
    }


def markdown(name: str, rows: list[dict], means: dict[str, float]) -> str:
    from student_vs_teacher import diff_cell

    lines = [
        f"### {name}: int8 students paired on the same real test rows",
        "",
        "| baseline run | run | test n | baseline EM | EM | diff, paired 95% CI |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["diff"]
        lines.append(
            f"| {r['baseline']} | {r['run']} | {r['n']} | {r['baseline_em']:.1f} | "
            f"{r['em']:.1f} | {diff_cell(d)} |"
        )
    lines.append("")
    for task, mean in means.items():
        n = sum(r["task"] == task for r in rows)
        lines.append(f"Mean difference on {task} over {n} pair(s): {mean:+.2f} points.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="names the result files")
    parser.add_argument("--pairs", nargs="+", required=True, help="BASELINE:RUN run directories")
    args = parser.parse_args(argv)
    from common.files import atomic_write_json, atomic_write_text

    pairs = [p.split(":", 1) for p in args.pairs]
    if any(len(p) != 2 for p in pairs):
        parser.error("--pairs: each is BASELINE:RUN")
    rows = [compare(a, b) for a, b in pairs]
    tasks = dict.fromkeys(r["task"] for r in rows)
    means = {
        t: round(sum(r["diff"]["diff"] for r in rows if r["task"] == t)
                 / sum(r["task"] == t for r in rows), 2)
        for t in tasks
    }  # fmt: skip
    stem = RESULTS / f"paired_{args.name}"
    atomic_write_json(stem.with_suffix(".json"), {"pairs": rows, "mean_diff": means})
    md = markdown(args.name, rows, means)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

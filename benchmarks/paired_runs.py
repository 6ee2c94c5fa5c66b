"""Two student-vs-teacher runs' int8 students on the same real test set, paired input by input.

    python benchmarks/paired_runs.py --name label_calibration \\
        --pairs intent-t200-lp:intent-t200-cal intent-t200-lp-s1:intent-t200-cal-s1
    python benchmarks/paired_runs.py --name temporal_vs_teacher --metric chrf \\
        --pairs temporal-t200-pcd-all@teacher:temporal-t200-pcd-all \\
                temporal-t200-pcd-all@teacher:temporal-t200-pcd-all-s1

Each pair is `BASELINE:RUN`, two run directories under benchmarks/runs/ that student_vs_teacher.py
finished on the same test rows (one setting changed between them, e.g. generate's label
calibration, with the training seed the same within a pair). A side is the run's int8 student
unless it names another of its eval targets (`RUN@teacher`, `RUN@student_torch`). For each
pair: both sides' score on the test set (exact match, or with `--metric chrf` the mean sentence
chrF++ that eval wrote per example), and RUN minus BASELINE with a paired bootstrap 95% CI (both
resampled on the same inputs). Per task, the mean of the pairs' differences: with several
training seeds, the spread between pairs shows how much of a difference is the seed's. With two
pairs or more on a task, also the pooled difference: each input's difference averaged over the
pairs, then one paired bootstrap, so the interval is about the test rows with the seeds averaged.

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


TARGETS = ("student_onnx", "student_torch", "teacher")


def side(spec: str) -> tuple[str, str]:
    """`RUN` or `RUN@TARGET` -> (run directory name, eval target; the int8 student by default)."""
    run, _, target = spec.partition("@")
    target = target or "student_onnx"
    if target not in TARGETS:
        raise SystemExit(f"--pairs {spec}: the target after @ is one of {', '.join(TARGETS)}")
    return run, target


def per_input(spec: str, metric: str = "em") -> dict[str, float]:
    """Input -> the side's score on it: 1.0/0.0 for an exact answer (`em`), or the sentence
    chrF++ (0..1) that eval stored with the prediction (`chrf`)."""
    run, target = side(spec)
    path = RUNS / run / "eval" / f"{target}.predictions.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if metric == "em":
        return {r["input"]: float(r["prediction"] == r["reference"]) for r in rows}
    return {r["input"]: float(r["scores"][metric]) for r in rows}


def compare(baseline: str, run: str, scores: dict[str, dict[str, float]], metric: str) -> dict:
    """Both sides' score (%) and the paired difference, on the inputs both scored (`scores`:
    each side's `per_input`, read once in `main`)."""
    from student_vs_teacher import paired_diff

    a, b = scores[baseline], scores[run]
    if set(a) != set(b):
        raise SystemExit(f"--pairs {baseline}:{run}: the runs were scored on different test rows")
    keys = sorted(a)
    base, new = [a[k] for k in keys], [b[k] for k in keys]
    return {
        "baseline": baseline,
        "run": run,
        "task": side(run)[0].split("-")[0],
        "n": len(keys),
        f"baseline_{metric}": round(100 * sum(base) / len(keys), 2),
        metric: round(100 * sum(new) / len(keys), 2),
        "diff": paired_diff(base, new),
    }


def pooled(sides: list[tuple[dict[str, float], dict[str, float]]]) -> dict:
    """RUN minus BASELINE with each input's difference averaged over the pairs' `sides` (all on
    one test set), then one paired bootstrap over the inputs."""
    from student_vs_teacher import paired_diff

    keys = sorted(sides[0][0])
    if any(set(a) != set(keys) or set(b) != set(keys) for a, b in sides):
        raise SystemExit("--pairs: the pairs of one task were scored on different test rows")
    mean = lambda scores: [sum(s[k] for s in scores) / len(scores) for k in keys]  # noqa: E731
    return paired_diff(mean([a for a, _ in sides]), mean([b for _, b in sides]))


def markdown(
    name: str, rows: list[dict], means: dict[str, float], pools: dict[str, dict], metric: str
) -> str:
    from student_vs_teacher import diff_cell

    label = {"em": "EM", "chrf": "chrF++"}[metric]
    lines = [
        f"### {name}: int8 students paired on the same real test rows",
        "",
        f"| baseline run | run | test n | baseline {label} | {label} | diff, paired 95% CI |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["diff"]
        lines.append(
            f"| {r['baseline']} | {r['run']} | {r['n']} | {r[f'baseline_{metric}']:.1f} | "
            f"{r[metric]:.1f} | {diff_cell(d)} |"
        )
    lines.append("")
    for task, mean in means.items():
        n = sum(r["task"] == task for r in rows)
        lines.append(f"Mean difference on {task} over {n} pair(s): {mean:+.2f} points.")
        if task in pools:
            lines.append(
                f"Pooled over them (each input's difference averaged over the {n} pairs, then "
                f"a paired bootstrap): {diff_cell(pools[task])} points."
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="names the result files")
    parser.add_argument(
        "--pairs", nargs="+", required=True, help="BASELINE:RUN run directories (RUN@TARGET)"
    )
    parser.add_argument(
        "--metric", default="em", choices=["em", "chrf"], help="per-input score (default: em)"
    )
    args = parser.parse_args(argv)
    from common.files import atomic_write_json, atomic_write_text

    pairs = [p.split(":", 1) for p in args.pairs]
    if any(len(p) != 2 for p in pairs):
        parser.error("--pairs: each is BASELINE:RUN")
    scores = {spec: per_input(spec, args.metric) for pair in pairs for spec in pair}
    rows = [compare(a, b, scores, args.metric) for a, b in pairs]
    tasks = dict.fromkeys(r["task"] for r in rows)
    means = {
        t: round(sum(r["diff"]["diff"] for r in rows if r["task"] == t)
                 / sum(r["task"] == t for r in rows), 2)
        for t in tasks
    }  # fmt: skip
    pools = {
        t: pooled([(scores[r["baseline"]], scores[r["run"]]) for r in rows if r["task"] == t])
        for t in tasks
        if sum(r["task"] == t for r in rows) >= 2
    }
    stem = RESULTS / f"paired_{args.name}"
    doc = {"metric": args.metric, "pairs": rows, "mean_diff": means, "pooled_diff": pools}
    atomic_write_json(stem.with_suffix(".json"), doc)
    md = markdown(args.name, rows, means, pools, args.metric)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

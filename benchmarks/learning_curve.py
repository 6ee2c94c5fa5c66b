"""What more teacher examples buy: the student's real-test score against training-set size.

    python benchmarks/learning_curve.py --run benchmarks/runs/sentiment-t300 --sizes 100,300

Reuses a finished student-vs-teacher run directory (its teacher-labelled data/train.jsonl,
validation split and real test.jsonl): no teacher call is made. For each size N it trains the
default student on the first N training rows (the order the teacher produced them), scores it
greedily with PyTorch on the real test set (bootstrap 95% CIs), and adds the run's own full-size
student when its report exists. Writes benchmarks/results/learning_curve_<run>.{json,md,png}
and RUN/learning_curve.json (the learning-curve section of `distill report RUN`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from summary import HEADLINE  # noqa: E402

RESULTS = HERE / "results"


def train_subset(run: Path, n: int, instruction: str, threads: int) -> Path:
    """The default student trained on the first `n` teacher-labelled rows (cached per size)."""
    from common.files import atomic_write_jsonl
    from common.jsonl import read_jsonl
    from students.config import TrainConfig
    from students.train import train_student

    out = run / "curve" / f"n{n}"
    if (out / "metrics.json").is_file():
        return out
    rows = read_jsonl(run / "data" / "train.jsonl")[:n]
    atomic_write_jsonl(out / "train.jsonl", rows)
    train_student(
        TrainConfig(threads=threads),
        out / "train.jsonl",
        run / "data" / "validation.jsonl",
        out,
        instruction=instruction,
        task_name=run.name,
    )
    return out


def score(model_dir: Path, test: list[dict], metric: str) -> dict:
    """Greedy PyTorch predictions on the real test rows: the metric with its bootstrap CI."""
    from distill.evaluation.metrics import bootstrap_ci, compute_metric
    from students.predict import TorchPredictor

    preds = TorchPredictor(model_dir).generate([r["input"] for r in test])
    result = compute_metric(metric, preds, [r["output"] for r in test])
    low, high = bootstrap_ci(result, seed=0)
    steps = json.loads((model_dir / "metrics.json").read_text())["global_steps"]
    return {"score": result.score, "ci95": [low, high], "steps": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a student_vs_teacher run directory")
    parser.add_argument("--sizes", default="100,300", help="training-set sizes to train")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from common.jsonl import read_jsonl
    from distill.task import load_task

    run = Path(args.run)
    task_name = run.name.split("-")[0]
    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    metric = HEADLINE.get(task_name, "chrf")
    test = read_jsonl(run / "test.jsonl")
    available = len(read_jsonl(run / "data" / "train.jsonl"))
    points = {}
    for n in sorted({min(int(x), available) for x in args.sizes.split(",")} | {available}):
        model = (
            run / "model"
            if n == available
            else train_subset(run, n, task.instruction, args.threads)
        )
        points[n] = score(model, test, metric)
        print(f"n={n}: {json.dumps(points[n])}", flush=True)
    write(run, metric, points)
    return 0


def write(run: Path, metric: str, points: dict[int, dict]) -> None:
    """results/learning_curve_<run>.{json,md,png}, and RUN/learning_curve.json, which
    RUN/report.html (`distill report RUN`) shows as its learning-curve section."""
    from common.files import atomic_write_bytes, atomic_write_json, atomic_write_text
    from distill.evaluation.plots import learning_curve_png
    from distill.stages.report import LEARNING_CURVE

    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"learning_curve_{run.name}"
    curve = {"metric": metric, "points": points}
    atomic_write_json(stem.with_suffix(".json"), curve)
    atomic_write_json(run / LEARNING_CURVE, curve)
    scale = 100.0  # scores are 0-1; the table and figure show percentages
    lines = [f"| teacher examples | steps | {metric} (95% CI) |", "|---|---|---|"]
    for n, p in points.items():
        lo, hi = (scale * v for v in p["ci95"])
        lines.append(f"| {n} | {p['steps']} | {scale * p['score']:.1f} [{lo:.1f}, {hi:.1f}] |")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    title = f"{run.name}: what more teacher examples buy"
    atomic_write_bytes(stem.with_suffix(".png"), learning_curve_png(points, metric, title))


if __name__ == "__main__":
    sys.exit(main())

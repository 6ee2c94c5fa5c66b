"""Can the teacher's labels be made better than its one greedy answer, without more teachers?

    python benchmarks/label_quality.py --task sentiment            # 600 inputs, ~8 min on 2 cores
    python benchmarks/label_quality.py --task intent --n 493 --skip 200

A student that imitates its teacher beats it only where the teacher's errors are noise the
student does not learn; where they are a bias, the student learns the bias too. This measures,
on real inputs label mode would label (the task's rows after the first `--skip`, which
student_vs_teacher.py keeps as its test set), how often the teacher's labels match the gold
labels nobody here wrote, for label strategies that cost no more than a few greedy calls:

- `greedy`: generate's default, one greedy answer with the demonstrations in the task file's order
  (`greedy, rotation K`: the same with the demonstrations rotated K places);
- `content-free`: generate's `--label-calibration content-free` (which the default, `auto`,
  keeps only where it evens the label mix), contextual calibration (Zhao et al. 2021):
  the teacher's distribution over the label set (its first-token log-probabilities,
  `--top-logprobs 5`) divided by its mean distribution for three inputs that say nothing
  (`N/A`, `[MASK]`, `...`; the run's calibration.json), then argmax;
- `calibrated a=A`: the same distribution divided by the mean distribution over all the
  inputs to the power A, then argmax (the prior estimated from the unlabelled inputs
  themselves, as in batch calibration, Zhou et al. 2023);
- `order ensemble`: the mean of the distributions under each rotation of the demonstrations
  (one greedy call per order; few-shot answers depend on the order, Lu et al. 2022), argmax;
- `order vote`: the majority of the greedy answers under the rotations (a tie keeps the first);
- `confident >= P`: only the inputs whose top label has probability >= P (a filter: fewer labels).

Each strategy's accuracy gets a bootstrap 95% CI and its difference from `greedy` a paired one,
with the label mix it produces. Writes benchmarks/results/label_quality_<task>.{json,md}; run
directories (one `distill generate --top-logprobs 5` run per demonstration order) go to
benchmarks/runs/label_quality/<task>/ and are reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from data_loaders import LOADERS, load

HERE = Path(__file__).parent
RESULTS = HERE / "results"
RUNS = HERE / "runs" / "label_quality"
ALPHAS = (0.5, 1.0)
THRESHOLDS = (0.5, 0.6, 0.7)


def rotations(task: Any) -> list[Any]:
    """The task with its demonstrations rotated: the file's order first, then each shift."""
    demos = task.demonstrations
    return [
        dataclasses.replace(task, demonstrations=demos[k:] + demos[:k]) for k in range(len(demos))
    ]


def label_run(
    task: Any, inputs: Path, exclude: list[str], out: Path
) -> tuple[list[dict], dict[str, float] | None]:
    """Label mode with --top-logprobs 5 (resumed when `out` holds a run, or lacks the
    content-free answers); its examples as the teacher answered, and the content-free prior."""
    from student_vs_teacher import _teacher_cfg

    from distill.generate.config import NO_TEST_SPLIT, GenerateConfig
    from distill.stages.generate import generate_data

    manifest = out / "manifest.json"
    calibration = out / "calibration.json"
    done = manifest.is_file() and json.loads(manifest.read_text()).get("complete")
    if not done or not calibration.is_file():
        cfg = GenerateConfig(
            inputs=str(inputs),
            top_logprobs=5,
            label_calibration="content-free",  # always asks the three content-free inputs
            **NO_TEST_SPLIT,
        )
        generate_data(task, cfg, _teacher_cfg("embedded"), out, exclude_inputs=exclude)
    examples = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines() if x]
    return examples, json.loads(calibration.read_text())["prior"]


def distributions(runs: list[list[dict]], labels: list[str]) -> tuple[list[str], np.ndarray]:
    """The inputs every run labelled, and their label distributions: (orders, inputs, labels),
    each row renormalised over the label set."""
    by_input = [{e["input"]: e for e in run} for run in runs]
    keys = [k for k in by_input[0] if all(k in r for r in by_input[1:])]
    probs = np.array(
        [[[r[k]["label_probs"].get(lab, 0.0) for lab in labels] for k in keys] for r in by_input]
    )
    probs /= np.clip(probs.sum(axis=2, keepdims=True), 1e-12, None)
    return keys, probs


def calibrated(probs: np.ndarray, alpha: float) -> np.ndarray:
    """argmax of p / prior**alpha, the prior being the mean distribution over the inputs."""
    prior = probs.mean(axis=0)
    return (probs / np.clip(prior, 1e-12, None) ** alpha).argmax(axis=1)


def order_vote(greedy: np.ndarray) -> np.ndarray:
    """Per input, the answer most orders gave (`greedy`: (orders, inputs)); ties keep the
    first order's answer."""
    out = greedy[0].copy()
    for i in range(greedy.shape[1]):
        counts = Counter(greedy[:, i].tolist())
        top = max(counts.values())
        if counts[out[i]] < top:
            out[i] = next(v for v in greedy[:, i] if counts[v] == top)
    return out


def strategies(
    greedy: np.ndarray, probs: np.ndarray, prior: np.ndarray | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each strategy's (kept-input mask, predicted label index); `prior`: the content-free
    distribution of the file's order (None: that strategy is left out)."""
    everything = np.ones(greedy.shape[1], bool)
    out = {"greedy": (everything, greedy[0])}
    for k in range(1, greedy.shape[0]):  # the same, the demonstrations rotated k places
        out[f"greedy, rotation {k}"] = (everything, greedy[k])
    out["argmax of probabilities"] = (everything, probs[0].argmax(axis=1))
    if prior is not None:
        out["content-free"] = (everything, (probs[0] / prior).argmax(axis=1))
    for a in ALPHAS:
        out[f"calibrated a={a}"] = (everything, calibrated(probs[0], a))
    out["order ensemble"] = (everything, probs.mean(axis=0).argmax(axis=1))
    out["order vote"] = (everything, order_vote(greedy))
    for t in THRESHOLDS:
        out[f"confident >= {t}"] = (probs[0].max(axis=1) >= t, greedy[0])
    return out


def score(gold: np.ndarray, strat: dict, labels: list[str]) -> dict[str, dict]:
    """Accuracy (bootstrap 95% CI), paired difference from greedy where all inputs are kept,
    the label mix of each strategy."""
    from student_vs_teacher import paired_diff

    from distill.evaluation.metrics import bootstrap_ci, exact_match

    base = (strat["greedy"][1] == gold).astype(float)
    out = {}
    for name, (keep, pred) in strat.items():
        em = exact_match([labels[k] for k in pred[keep]], [labels[k] for k in gold[keep]])
        low, high = bootstrap_ci(em, samples=2000, seed=0)  # seeded per strategy
        row = {
            "n": int(keep.sum()),
            "accuracy": round(100 * em.score, 2),
            "ci95": [round(100 * float(low), 2), round(100 * float(high), 2)],
            "labels": {labels[k]: int(v) for k, v in Counter(pred[keep].tolist()).most_common()},
        }
        if keep.all() and name != "greedy":
            row["vs_greedy"] = paired_diff(base.tolist(), (pred == gold).astype(float).tolist())
        out[name] = row
    return out


def confusion(gold: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, dict[str, int]]:
    """Gold label -> the teacher's greedy labels for it."""
    return {
        g: {p: int(((gold == i) & (pred == j)).sum()) for j, p in enumerate(labels)}
        for i, g in enumerate(labels)
    }


def _prior_line(prior: dict[str, float] | None) -> list[str]:
    if not prior:
        return []
    shares = " / ".join(f"{k} {v:.2f}" for k, v in prior.items())
    return [f"Content-free prior (the file's order): {shares}.", ""]


def markdown(meta: dict, rows: dict[str, dict], conf: dict[str, dict[str, int]]) -> str:
    """The strategies table, then the greedy confusion matrix."""
    from student_vs_teacher import diff_cell

    lines = [
        f"# Teacher label quality: {meta['task']} ({meta['n']} real inputs, "
        f"{meta['orders']} demonstration orders)",
        "",
        f"Gold label mix: {' / '.join(f'{k} {v}' for k, v in meta['gold'].items())}.",
        "",
        *_prior_line(meta.get("content_free_prior")),
        "| strategy | inputs kept | accuracy vs gold (95% CI) | vs greedy (paired) | label mix |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        d = r.get("vs_greedy")
        diff = diff_cell(d, missing="")
        mix = " / ".join(f"{k} {v}" for k, v in r["labels"].items())
        lines.append(
            f"| {name} | {r['n']} | {r['accuracy']:.1f} [{r['ci95'][0]:.1f}, "
            f"{r['ci95'][1]:.1f}] | {diff} | {mix} |"
        )
    labels = list(conf)
    lines += ["", "Greedy labels (columns) against gold (rows):", ""]
    lines += ["| gold | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {g} | " + " | ".join(str(conf[g][p]) for p in labels) + " |" for g in labels]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="sentiment", choices=sorted(LOADERS))
    parser.add_argument("--n", type=int, default=600, help="real inputs to label")
    parser.add_argument("--skip", type=int, default=300, help="first rows left out (test set)")
    args = parser.parse_args(argv)
    from common.files import atomic_write_json, atomic_write_jsonl, atomic_write_text
    from distill.generate.config import GenerateConfig
    from distill.generate.run import run_rules
    from distill.task import load_task

    task = load_task(HERE / "tasks" / f"{args.task}.toml")
    label_set = run_rules(task, GenerateConfig()).label_set
    if label_set is None:
        parser.exit(2, f"--task {args.task}: its task file defines no closed label set\n")
    labels = list(label_set.labels)
    rows = load(args.task)
    pool, test = rows[args.skip : args.skip + args.n], rows[: args.skip]
    runs_dir = RUNS / args.task
    runs_dir.mkdir(parents=True, exist_ok=True)
    inputs = runs_dir / "inputs.jsonl"
    if not inputs.is_file():
        atomic_write_jsonl(inputs, [{"input": r["input"]} for r in pool])
    exclude = [r["input"] for r in test]
    done = [
        label_run(t, inputs, exclude, runs_dir / f"order{k}") for k, t in enumerate(rotations(task))
    ]
    runs = [examples for examples, _ in done]
    cf = done[0][1]
    prior = np.array([cf[lab] for lab in labels]) if cf else None
    keys, probs = distributions(runs, labels)
    gold_of = {r["input"]: r["output"] for r in pool}
    gold = np.array([labels.index(gold_of[k]) for k in keys])
    answer = [{e["input"]: e["output"] for e in run} for run in runs]
    greedy = np.array([[labels.index(a[k]) for k in keys] for a in answer])
    rows_out = score(gold, strategies(greedy, probs, prior), labels)
    meta = {
        "task": args.task,
        "n": len(keys),
        "orders": len(runs),
        "content_free_prior": cf,
        "gold": {labels[k]: int(v) for k, v in Counter(gold.tolist()).most_common()},
    }
    conf = confusion(gold, greedy[0], labels)
    stem = RESULTS / f"label_quality_{args.task}"
    atomic_write_json(
        stem.with_suffix(".json"), {"meta": meta, "strategies": rows_out, "confusion": conf}
    )
    md = markdown(meta, rows_out, conf)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

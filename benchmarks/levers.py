"""Beyond imitation: each lever against plain imitation at an equal teacher budget.

    python benchmarks/levers.py --task sentiment --budget 300 --teacher-eval-from \\
        benchmarks/runs/sentiment-t300-g1000-lp --seed-cache benchmarks/runs/sentiment-t300-g1000-lp

Every arm may spend `--budget` teacher calls on the same real unlabelled inputs (the first ones of
the pool, test inputs excluded), then trains the default student, exports it (int8 ONNX with
the default gate) and scores it on the same real test set. Arms:

- `imitation`: one greedy label per input; the student learns the answer string.
- `soft`: the same calls and labels, plus the teacher's first-token log-probabilities; the student
  also learns the teacher's distribution over the label set (`--soft-label-weight 1`).
- `cot-labels`: the teacher reasons first (`--chain-of-thought`); the student learns only the
  final answers (what chain of thought does to the labels themselves).
- `rationale`: the same calls; the student also learns the reasoning as a second task
  (`--rationale-weight 0.5`, Hsieh et al. 2023) and never emits it.
- `active`: part of the budget labels inputs, the rest goes to an active round (`distill refine`:
  the teacher labels a fresh pool, and writes examples like those the student got wrong).
- `combined`: chain of thought + soft labels + rationale + the active round.

Budget: teacher calls are the requests each arm issued (label, rationalise, refine), cached or
not; the table also gives the characters the teacher wrote, since a reasoning answer costs
~100x a bare label in output tokens. `--seed-cache RUN` copies RUN/data/teacher_cache.sqlite
into an arm before it generates, so answers that run already paid for are replayed (its calls
still count here). Writes benchmarks/results/levers_<task>-b<budget>.{json,md,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from data_loaders import load  # noqa: E402
from student_vs_teacher import _export, _stage, _teacher_cfg, diff_cell, paired_diff  # noqa: E402

RESULTS = HERE / "results"
# the label requests of label mode, as student_vs_teacher.py sends them: greedy, one vote
# Label calibration is not one of the levers: every arm keeps the teacher's own answers, as all
# of them did when they were measured (before generate's default became `auto`).
LABEL = {
    "mode": "label",
    "votes": 1,
    "label_temperature": 0.0,
    "max_tokens": 64,
    "label_calibration": "none",
}
COT = {**LABEL, "chain_of_thought": True, "max_tokens": 256}


@dataclass(frozen=True)
class Arm:
    """One way to spend the budget: generate settings, train settings, an optional round."""

    name: str
    generate: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    refine: bool = False  # spend `active_share` of the budget on an active round
    data_from: str | None = None  # reuse another arm's data (same calls, another student)
    cache_from: str | None = None  # start from another arm's teacher cache (its answers replay)


ARMS = [
    Arm("imitation", {**LABEL, "top_logprobs": 5}),
    Arm(
        "soft", {}, {"soft_label_weight": 1.0, "soft_label_temperature": 1.0}, data_from="imitation"
    ),
    Arm("cot-labels", {**COT, "top_logprobs": 5}),
    Arm("rationale", {}, {"rationale_weight": 0.5}, data_from="cot-labels"),
    Arm("active", {**LABEL, "top_logprobs": 5}, refine=True),
    Arm(
        "combined",
        {**COT, "top_logprobs": 5},
        {"rationale_weight": 0.5, "soft_label_weight": 1.0, "soft_label_temperature": 1.0},
        refine=True,
        cache_from="cot-labels",
    ),
]


def free_text(arm: Arm) -> Arm:
    """The arm without soft labels, for a task with no label set: `combined` then combines the
    levers that apply (chain of thought, rationales, the round)."""
    kept = {k: v for k, v in arm.train.items() if not k.startswith("soft_label")}
    return dataclasses.replace(arm, train=kept)


def arm_data(run: Path, arm: Arm) -> Path:
    return run / (arm.data_from or arm.name) / "data"


def generate(
    task_name: str, run: Path, arm: Arm, n: int, seed_cache: Path | None, top_logprobs: bool
) -> None:
    """The arm's teacher data: `n` label requests' worth of the pool (cache seeded first)."""
    from distill.configs import build_config
    from distill.generate.config import GenerateConfig
    from distill.stages.generate import generate_data
    from distill.task import load_task

    data = run / arm.name / "data"
    if (data / "manifest.json").is_file():
        return
    if seed_cache is not None and not (data / "teacher_cache.sqlite").exists():
        data.mkdir(parents=True, exist_ok=True)
        shutil.copy(seed_cache / "data" / "teacher_cache.sqlite", data / "teacher_cache.sqlite")
    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    extra = {**arm.generate, "num_examples": n, "inputs": str(run / "unlabelled.jsonl")}
    if not top_logprobs:  # free text (no label set): no first-token distribution to keep
        extra.pop("top_logprobs", None)
    cfg = build_config(GenerateConfig, task.table("generate"), extra=extra)
    test = [json.loads(x)["input"] for x in (run / "test.jsonl").read_text().splitlines()]
    generate_data(task, cfg, _teacher_cfg("embedded"), data, exclude_inputs=test)


def train(task_name: str, run: Path, arm: Arm) -> None:
    from distill.configs import build_config
    from distill.stages.train import train_model
    from distill.task import load_task
    from students.config import TrainConfig

    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    cfg = build_config(TrainConfig, task.table("train"), extra=arm.train)
    train_model(task, cfg, arm_data(run, arm), run / arm.name / "model")


def evaluate(task_name: str, run: Path, arm: Arm) -> dict:
    """The ONNX student on the real test set (its report, predictions beside it)."""
    from distill.evaluation import write_report
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.reports import load_report
    from distill.stages.evaluate import evaluate_one
    from distill.task import load_task

    out = run / arm.name / "eval" / "student_onnx.json"
    if out.is_file():
        return load_report(out)
    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    cfg = EvalConfig(metrics=["em", "chrf"], latency_samples=5, student_threads=1,
                     max_new_tokens=64)  # fmt: skip
    rep = evaluate_one(str(run / arm.name / "onnx"), run / "test.jsonl", task=task, cfg=cfg,
                       teacher_cfg=None)  # fmt: skip
    write_report(rep, out)
    return rep


def teacher_report(task_name: str, run: Path, source: Path | None) -> dict:
    """The teacher's few-shot report on the test set: copied from `source` (same test file)."""
    from distill.evaluation import write_report
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.reports import load_report
    from distill.stages.evaluate import evaluate_one
    from distill.task import load_task

    out = run / "teacher" / "teacher.json"
    if not out.is_file() and source is not None:
        if (source / "test.jsonl").read_bytes() != (run / "test.jsonl").read_bytes():
            raise SystemExit(f"--teacher-eval-from {source}: another test set")
        out.parent.mkdir(parents=True, exist_ok=True)
        for name in ("teacher.json", "teacher.predictions.jsonl"):
            shutil.copy(source / "eval" / name, out.parent / name)
    if out.is_file():
        return load_report(out)
    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    cfg = EvalConfig(metrics=["em", "chrf"], latency_samples=5, max_new_tokens=64)
    rep = evaluate_one("teacher:embedded", run / "test.jsonl", task=task, cfg=cfg,
                       teacher_cfg=_teacher_cfg("embedded"))  # fmt: skip
    write_report(rep, out)
    return rep


def score_list(pred_file: Path, metric: str = "em") -> list[float]:
    """Per-example scores (EM 0/1, or sentence chrF++ in [0, 1]) for the paired differences."""
    return [json.loads(x)["scores"][metric] for x in pred_file.read_text().splitlines() if x]


def teacher_spend(run: Path, arm: Arm) -> dict[str, int]:
    """Teacher calls and characters written for the arm's data (and its round, if any)."""
    data = arm_data(run, arm)
    calls = chars = 0
    for line in (data / "journal.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "issue":
            calls += 1
        if rec.get("event") == "done" and rec.get("text"):
            chars += len(rec["text"])
    demos = data / "demo_rationales.json"
    if demos.is_file():  # one rationalise request per demonstration
        saved = json.loads(demos.read_text())
        calls += len(saved)
        chars += sum(len(r["rationale"]) for r in saved)
    refine = run / arm.name / "refine" / "manifest.json"
    if refine.is_file():
        for r in json.loads(refine.read_text())["rounds"]:
            calls += r["teacher"]["label"]["requests"] + r["teacher"]["similar"]["requests"]
        for journal in (run / arm.name / "refine").glob("round-*/journal.jsonl"):
            rows = [json.loads(x) for x in journal.read_text().splitlines() if x]
            chars += sum(len(r["text"] or "") for r in rows)
    return {"teacher_calls": calls, "teacher_chars": chars}


def label_quality(run: Path, arm: Arm, gold: dict[str, str]) -> dict[str, Any]:
    """How the teacher's answers in the arm's data compare with the gold outputs of the same
    real inputs (the loader's), and how they spread over the outputs."""
    from collections import Counter

    rows = [json.loads(x) for x in (arm_data(run, arm) / "examples.jsonl").open() if x.strip()]
    known = [r for r in rows if r["input"] in gold]
    match = sum(r["output"] == gold[r["input"]] for r in known)
    return {
        "teacher_labels_match_gold": round(100 * match / len(known), 2) if known else None,
        "teacher_labels_checked": len(known),
        "teacher_outputs_top": Counter(r["output"] for r in rows).most_common(4),
    }


def round_facts(run: Path, arm: Arm) -> dict[str, Any]:
    """What the README says of an arm beyond its score: the rationale rows' length (from the
    model's metrics.json) and the active round's outcome (RUN/refine/manifest.json)."""
    out: dict[str, Any] = {}
    metrics = json.loads((run / arm.name / "model" / "metrics.json").read_text())
    if metrics.get("rationale"):
        lengths = metrics["rationale"]["lengths"]
        out["rationale_rows"] = metrics["rationale"]["train_examples_with_rationale"]
        out["rationale_target_truncated"] = lengths["target_truncated"]
        out["rationale_target_tokens_p50"] = lengths["target_stats"]["p50"]
    refine = run / arm.name / "refine" / "manifest.json"
    if refine.is_file():
        out["rounds"] = [
            {
                "pool": r["pool"]["size"],
                "disagreements": r["disagreements"],
                "added": r["added"]["total"],
                "score": r["score"],
                "kept": r["kept"],
            }
            for r in json.loads(refine.read_text())["rounds"]
        ]
    return out


def result_row(
    run: Path, arm: Arm, rep: dict, teacher_scores: list[float], base: list[float], metric: str
) -> dict:
    mine = score_list(run / arm.name / "eval" / "student_onnx.predictions.jsonl", metric)
    score = rep["metrics"][metric]
    calib = rep.get("calibration") or {}
    return {
        "arm": arm.name,
        **teacher_spend(run, arm),
        "train_examples": sum(1 for _ in (arm_data(run, arm) / "train.jsonl").open()),
        "metric": metric,
        metric: round(100 * score["score"], 2),
        f"{metric}_ci95": [round(100 * x, 2) for x in score.get("ci95", [0, 0])],
        "vs_teacher": paired_diff(teacher_scores, mine),
        "vs_imitation": paired_diff(base, mine),
        "ece": calib.get("ece"),
        **round_facts(run, arm),
        "precision": json.loads((run / arm.name / "onnx" / "export_report.json").read_text()).get(
            "runtime_precision"
        ),
    }


METRIC_NAMES = {"em": "EM", "chrf": "chrF++"}


def markdown(rows: list[dict], teacher: dict, task: str, budget: int, metric: str = "em") -> str:
    """The README's table; with chrF++ the paired differences are of mean sentence chrF++."""
    t, name = teacher["metrics"][metric], METRIC_NAMES[metric]
    lines = [
        f"### {task}: levers at an equal budget of {budget} teacher calls "
        f"({teacher['n']} real test items; teacher {100 * t['score']:.1f} {name})",
        "",
        f"| arm | teacher calls | teacher chars | teacher labels = gold | train rows | ONNX {name} "
        "[95% CI] (precision shipped) | vs imitation (paired) | vs teacher (paired) | ECE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r[f"{metric}_ci95"]
        vi, vt = r["vs_imitation"], r["vs_teacher"]
        ece = "-" if r["ece"] is None else f"{100 * r['ece']:.1f}%"
        share = r.get("teacher_labels_match_gold")
        gold = "-" if share is None else f"{share:.0f}% of {r['teacher_labels_checked']}"
        lines.append(
            f"| {r['arm']} | {r['teacher_calls']} | {r['teacher_chars']:,} | {gold} "
            f"| {r['train_examples']} "
            f"| {r[metric]:.1f} [{lo:.1f}, {hi:.1f}] ({r['precision']}) "
            f"| {diff_cell(vi)} | {diff_cell(vt)} | {ece} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], teacher: dict, path: Path, title: str, metric: str = "em") -> None:
    """Score vs teacher calls: one point per arm with its 95% CI, the teacher as a line."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.files import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for k, r in enumerate(rows):
        y, (lo, hi) = r[metric], r[f"{metric}_ci95"]
        x = r["teacher_calls"] + 0.8 * (k - (len(rows) - 1) / 2)  # arms at equal calls side by side
        ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", capsize=4,
                    label=f"{r['arm']} ({r['teacher_calls']} calls)")  # fmt: skip
    ax.axhline(100 * teacher["metrics"][metric]["score"], color="grey", ls="--", label="teacher")
    ax.set_ylim(0, 100)
    ax.set_xlabel("teacher calls (arms with equal calls drawn side by side)")
    ax.set_ylabel(f"ONNX student {METRIC_NAMES[metric]}")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def run_arm(args: argparse.Namespace, run: Path, arm: Arm) -> None:
    n = args.budget
    if arm.refine:  # the round's share of the budget is spent after the first training
        n = args.budget - round(args.active_share * args.budget)
    seed = Path(args.seed_cache) if args.seed_cache else None
    if arm.cache_from is not None:
        seed = run / arm.cache_from
    if arm.data_from is None:
        _stage(f"{arm.name} generate", run / arm.name / "data" / "manifest.json",
               lambda: generate(args.task, run, arm, n, seed, args.top_logprobs))  # fmt: skip
    else:  # the export gate reads RUN/data/validation.jsonl beside the model
        link = run / arm.name / "data"
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path("..") / arm.data_from / "data")
    model = run / arm.name / "model"
    _stage(f"{arm.name} train", model / "distill.json", lambda: train(args.task, run, arm))
    if arm.refine:
        _stage(f"{arm.name} refine", run / arm.name / "refine" / "manifest.json",
               lambda: refine(args, run, arm))  # fmt: skip
    onnx = run / arm.name / "onnx"
    _stage(f"{arm.name} export", onnx / "export_report.json", lambda: _export(model, onnx))


def round_pool(calls: int, seeds_per_request: int = 3) -> int:
    """The largest pool whose round fits `calls`: pool labels plus, at worst (every pool input
    a disagreement), one write-similar request per `seeds_per_request` of them."""
    pool = calls
    while pool > 0 and pool + -(-pool // seeds_per_request) > calls:
        pool -= 1
    return pool


def refine(args: argparse.Namespace, run: Path, arm: Arm) -> None:
    """One active round with the rest of the budget (`round_pool`)."""
    from distill.refine.config import RefineConfig
    from distill.stages.refine import refine_model
    from distill.task import load_task

    cfg = RefineConfig(
        rounds=1,
        pool_inputs=str(run / "unlabelled.jsonl"),
        pool_size=round_pool(round(args.active_share * args.budget)),
        round_min_steps=args.round_min_steps,
        min_gain=0.0,
    )
    task = load_task(HERE / "tasks" / f"{args.task}.toml")
    test = [json.loads(x)["input"] for x in (run / "test.jsonl").read_text().splitlines()]
    refine_model(task, cfg, _teacher_cfg("embedded"), run / arm.name, exclude_inputs=test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--budget", type=int, default=300, help="teacher calls per arm")
    parser.add_argument("--arms", default=",".join(a.name for a in ARMS))
    parser.add_argument("--active-share", type=float, default=1 / 3,
                        help="share of the budget the active arms keep for their round")  # fmt: skip
    parser.add_argument("--round-min-steps", type=int, default=60,
                        help="optimizer steps of the active round's warm-started training")  # fmt: skip
    parser.add_argument("--no-top-logprobs", dest="top_logprobs", action="store_false",
                        help="free-text tasks: no label set, so no log-probabilities (and no "
                        "soft-label arm)")  # fmt: skip
    parser.add_argument("--seed-cache", help="a run dir whose teacher cache each arm starts from")
    parser.add_argument("--teacher-eval-from", help="a run dir with eval/teacher.* on test.jsonl")
    parser.add_argument("--source", help="a run dir with test.jsonl and unlabelled.jsonl")
    parser.add_argument("--metric", choices=sorted(METRIC_NAMES), default="em",
                        help="what the table scores (chrf where the teacher's exact matches "
                        "are too few to compare, e.g. temporal)")  # fmt: skip
    parser.add_argument("--runs", default=str(HERE / "runs" / "levers"))
    args = parser.parse_args(argv)
    run = Path(args.runs) / f"{args.task}-b{args.budget}"
    run.mkdir(parents=True, exist_ok=True)
    if args.source:
        for name in ("test.jsonl", "unlabelled.jsonl"):
            if not (run / name).is_file():
                shutil.copy(Path(args.source) / name, run / name)
    teacher = teacher_report(
        args.task, run, Path(args.teacher_eval_from) if args.teacher_eval_from else None
    )
    teacher_scores = score_list(run / "teacher" / "teacher.predictions.jsonl", args.metric)
    wanted = args.arms.split(",")
    arms = [a for a in ARMS if a.name in wanted]
    if not args.top_logprobs:
        if "soft" in wanted:
            parser.error("--no-top-logprobs: the soft arm needs them; leave it out")
        arms = [free_text(a) for a in arms]
    gold = {r["input"]: r["output"] for r in load(args.task)}  # before hours of arms, not after
    reports = {}
    for arm in arms:
        run_arm(args, run, arm)
        reports[arm.name] = evaluate(args.task, run, arm)
    base = score_list(run / "imitation" / "eval" / "student_onnx.predictions.jsonl", args.metric)
    rows = [result_row(run, a, reports[a.name], teacher_scores, base, args.metric) for a in arms]
    for arm, row in zip(arms, rows, strict=True):
        row.update(label_quality(run, arm, gold))
    write(rows, teacher, args)
    return 0


def write(rows: list[dict], teacher: dict, args: argparse.Namespace) -> None:
    from common.files import atomic_write_json, atomic_write_text

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"levers_{args.task}-b{args.budget}"
    table = markdown(rows, teacher, args.task, args.budget, args.metric)
    atomic_write_json(stem.with_suffix(".json"), {
        "task": args.task, "budget": args.budget, "active_share": args.active_share,
        "metric": args.metric, "teacher": {**teacher["metrics"], "n": teacher["n"]},
        "arms": rows,
    })  # fmt: skip
    atomic_write_text(stem.with_suffix(".md"), table)
    name = METRIC_NAMES[args.metric]
    plot(
        rows,
        teacher,
        stem.with_suffix(".png"),
        f"{args.task}: {name} vs teacher calls",
        args.metric,
    )
    print(table)
    print(f"wrote {stem}.json, .md, .png")


if __name__ == "__main__":
    sys.exit(main())

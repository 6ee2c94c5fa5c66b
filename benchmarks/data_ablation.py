"""Which of generate's data features earn their place? Each one switched off, one at a time.

    python benchmarks/data_ablation.py --task sentiment            # 300 examples an arm
    python benchmarks/data_ablation.py --task sentiment --arms label-requests,no-label-set
    python benchmarks/data_ablation.py --task sentiment --rewrite   # the table again, no runs

The default path without `--inputs`: the embedded teacher synthesizes the training set from the
task file alone (instruction + 3 made-up demonstrations), the embedded student trains on it with
`distill train`'s defaults, and the trained student is scored on real labelled test rows that
nobody here wrote (benchmarks/data_loaders.py; their inputs are excluded from generation). Every
arm generates the same number of accepted examples and differs from the baseline arm
(`label-requests`) in one setting of GenerateConfig. The arms share one teacher cache (copied
from the baseline's run before each
arm starts), so an arm pays only for the requests that differ; its teacher cost is reported as
the requests and tokens it would cost alone.

Per arm: yield (accepted examples per parsed teacher pair), duplicate rate, the label mix of the
training set, the student's exact match and macro-F1 on the test rows with bootstrap 95% CIs,
how many distinct answers it gives (a collapsed student gives one), and its exact match minus
the baseline arm's on the same test rows (paired bootstrap 95% CI). A second table pairs the
arms in COMPARISONS with their twins the same way, with the ratio of teacher work each needed.

Writes benchmarks/results/data_ablation_<task>.{json,md}; run directories go to
benchmarks/runs/data_ablation/<task>/ and are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from data_loaders import LOADERS, load

HERE = Path(__file__).parent
RESULTS = HERE / "results"
RUNS = HERE / "runs" / "data_ablation"

# Every arm starts from BASE: requests that each ask for one label, and three accepted examples
# mixed into each prompt, generate's defaults when the first arms were run (this ablation is
# why neither is any more), so "label-requests" is the baseline every other arm is compared
# with, and "no-label-requests-no-mixing" is today's default.
# BASE also pins synthesize answers at max_tokens (512), as every request was sent before
# synthesize answers got their own size (`synth_max_tokens`, measured by the "-synth-cap" arms).
BASE: dict[str, Any] = {"label_requests": True, "few_shot_accepted": 3, "synth_max_tokens": 512}
BASELINE = "label-requests"
MAX_LABELS_SHOWN = 8  # more distinct training outputs: a free-text task, shown as a count
# Each arm: the GenerateConfig settings it changes from BASE.
ARMS: dict[str, dict[str, Any]] = {
    BASELINE: {},
    # the baseline again with another generation seed: how far two runs of one recipe differ
    "label-requests-seed1": {"seed": 1},
    # the label set kept as a filter (outputs outside it rejected), but no request asks for a
    # label: the teacher picks each example's label (and so no balancing cap either)
    "no-label-requests": {"label_requests": False},
    "no-label-requests-seed1": {"label_requests": False, "seed": 1},
    # no label set: no request per label, no balancing, no rejection of outputs outside the set
    "no-label-set": {"infer_labels": False},
    # one constant temperature (the middle of the default 0.4 -> 1.0 ramp) instead of annealing
    "no-annealing": {"schedule": "constant", "temperature_start": 0.7},
    "no-attributes": {"attribute_prompts": False},
    # the label requests kept, their balancing cap off
    "no-lead-cap": {"max_label_lead": 0},
    "no-mixing": {"few_shot_accepted": 0},
    # today's default (no label requests) without accepted examples in the prompts
    "no-label-requests-no-mixing": {"label_requests": False, "few_shot_accepted": 0},
    "no-label-requests-no-mixing-seed1": {
        "label_requests": False,
        "few_shot_accepted": 0,
        "seed": 1,
    },
    # today's default: synthesize answers sized from the demonstrations, not 512 tokens
    "no-label-requests-no-mixing-synth-cap": {
        "label_requests": False,
        "few_shot_accepted": 0,
        "synth_max_tokens": None,
    },
    "no-label-requests-no-mixing-synth-cap-seed1": {
        "label_requests": False,
        "few_shot_accepted": 0,
        "synth_max_tokens": None,
        "seed": 1,
    },
    # today's default showing one demonstration a prompt instead of two: the teacher copies
    # what it is shown (a fifth of its sentiment pairs were demonstration copies)
    "no-label-requests-no-mixing-synth-cap-one-demo": {
        "label_requests": False,
        "few_shot_accepted": 0,
        "synth_max_tokens": None,
        "few_shot_demos": 1,
    },
    "no-label-requests-no-mixing-synth-cap-one-demo-seed1": {
        "label_requests": False,
        "few_shot_accepted": 0,
        "synth_max_tokens": None,
        "few_shot_demos": 1,
        "seed": 1,
    },
    "no-format-check": {"format_check": False},
    "no-near-dedup": {"near_dup_threshold": 1.0},
    # self-consistency on synthesized inputs: each is relabelled by a 3-sample vote
    "vote3": {"mode": "synthesize-label", "votes": 3},
}
# Arms measured against one another as well as against the baseline: each arm against the
# first of its twins (the same settings but the one it changes) that was run. On a task without
# a label set, such as questions, label_requests changes nothing, so "no-mixing" is a twin.
COMPARISONS: dict[str, tuple[str, ...]] = {
    "no-label-requests-no-mixing-synth-cap": ("no-label-requests-no-mixing", "no-mixing"),
    "no-label-requests-no-mixing-synth-cap-seed1": ("no-label-requests-no-mixing-seed1",),
    "no-label-requests-no-mixing-synth-cap-one-demo": ("no-label-requests-no-mixing-synth-cap",),
    "no-label-requests-no-mixing-synth-cap-one-demo-seed1": (
        "no-label-requests-no-mixing-synth-cap-seed1",
    ),
}


def generate_config(task: Any, arm: str, examples: int) -> Any:
    """The arm's GenerateConfig: the task file's [generate] table, BASE, the arm's changes.

    No test split is held out of the generated data: the real test rows score every arm.
    """
    from distill.configs import build_config
    from distill.generate.config import NO_TEST_SPLIT, GenerateConfig

    extra = {"num_examples": examples, **NO_TEST_SPLIT}
    settings = {**extra, **BASE, **ARMS[arm]}
    return build_config(GenerateConfig, task.table("generate"), extra=settings)


def test_rows(task: str, n: int) -> list[dict[str, str]]:
    """The first `n` rows of the task's seeded real data (student_vs_teacher's test rows too)."""
    return [{"input": r["input"], "output": r["output"]} for r in load(task)[:n]]


def seed_cache(arm_dir: Path, baseline_dir: Path) -> None:
    """Copy the baseline arm's teacher cache into a new arm's data directory (replays only)."""
    from distill.generate.store import CACHE

    src, dst = baseline_dir / "data" / CACHE, arm_dir / "data" / CACHE
    if src.is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def run_arm(task: Any, arm: str, examples: int, test: list[dict], arm_dir: Path) -> dict:
    """Generate and train the arm (each stage skipped when already done); return its record."""
    from student_vs_teacher import _teacher_cfg

    from distill.configs import build_config
    from distill.stages.generate import generate_data
    from distill.stages.train import train_model
    from students.config import TrainConfig

    data, model = arm_dir / "data", arm_dir / "model"
    manifest_file = data / "manifest.json"
    if not manifest_file.is_file() or not json.loads(manifest_file.read_text()).get("complete"):
        cfg = generate_config(task, arm, examples)
        generate_data(
            task, cfg, _teacher_cfg("embedded"), data, exclude_inputs=[r["input"] for r in test]
        )
    manifest = json.loads(manifest_file.read_text())
    # runs from before these settings: label requests on, synthesize answers at max_tokens
    had = {"label_requests": True, "synth_max_tokens": 512, **manifest["settings"]}
    stale = {k: had.get(k) for k, v in {**BASE, **ARMS[arm]}.items() if had.get(k) != v}
    if stale:  # generated under another definition of this arm: never report it as this one
        raise SystemExit(f"{data}: generated with {stale}, not arm {arm}'s settings; delete it")
    if not (model / "distill.json").is_file():
        train_cfg = build_config(TrainConfig, task.table("train"), extra={})
        start = time.perf_counter()
        metrics = train_model(task, train_cfg, data, model)
        metrics["train_seconds"] = round(time.perf_counter() - start, 1)
        (arm_dir / "train_metrics.json").write_text(json.dumps(metrics, indent=2))
    metrics = json.loads((arm_dir / "train_metrics.json").read_text())
    return {"data": data_stats(manifest, data), "train": train_stats(metrics)}


def data_stats(manifest: dict, data: Path) -> dict:
    """What generate produced and what it cost (from the manifest and the training split)."""
    counts, tokens = manifest["counts"], manifest.get("tokens") or {}
    train = [json.loads(x) for x in (data / "train.jsonl").read_text().splitlines() if x]
    return {
        "accepted": counts["accepted"],
        "train_rows": len(train),
        "requests": counts["requests"],
        "teacher_pairs": counts.get("teacher_pairs"),
        "yield": counts.get("accepted_per_teacher_pair"),
        "duplicate_rate": counts.get("duplicate_rate"),
        "near_duplicate_rate": counts.get("near_duplicate_rate"),
        "rejected_by_reason": counts.get("rejected_by_reason", {}),
        "train_labels": dict(Counter(r["output"] for r in train).most_common()),
        "completion_tokens": tokens.get("completion"),
        "generate_seconds": manifest.get("wall_s"),
    }


def train_stats(metrics: dict) -> dict:
    """The trainer's steps, epochs and wall time."""
    return {
        "steps": metrics.get("global_steps"),
        "best_epoch": metrics.get("best_epoch"),
        "seconds": metrics.get("train_seconds"),
    }


def predict(model_dir: Path, test: list[dict], cache: Path) -> list[str]:
    """The trained student's greedy answers on the test inputs (cached beside the model)."""
    from students.predict import TorchPredictor

    if cache.is_file():
        return json.loads(cache.read_text())
    preds = TorchPredictor(model_dir).generate([r["input"] for r in test])
    cache.write_text(json.dumps(preds))
    return preds


def score(preds: list[str], test: list[dict]) -> dict:
    """Exact match and macro-F1 with bootstrap 95% CIs, the distinct answers, the answer mix."""
    from distill.evaluation.metrics import bootstrap_ci, compute_metric

    refs = [r["output"] for r in test]
    out: dict[str, Any] = {
        "distinct_answers": len(set(preds)),
        "answers": dict(Counter(preds).most_common(6)),
    }
    for metric in ("em", "macro_f1"):
        result = compute_metric(metric, preds, refs)
        low, high = bootstrap_ci(result, seed=0)
        out[metric] = {"value": result.score, "ci": [low, high]}
    out["em_per_example"] = compute_metric("em", preds, refs).per_example.tolist()
    return out


def teacher_score(task: Any, test: list[dict], run_dir: Path) -> dict | None:
    """The teacher (few-shot, greedy, the task's demonstrations) on the same test rows."""
    from student_vs_teacher import _teacher_cfg

    from distill.evaluation import write_report
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.reports import load_report
    from distill.stages.evaluate import evaluate_one

    out = run_dir / "teacher.json"
    if not out.is_file():
        cfg = EvalConfig(metrics=["em", "macro_f1"], latency_samples=0, max_new_tokens=16)
        rep = evaluate_one(
            "teacher:embedded",
            run_dir / "test.jsonl",
            task=task,
            cfg=cfg,
            teacher_cfg=_teacher_cfg("embedded"),
        )
        write_report(rep, out)
    rep = load_report(out)
    return {k: rep["metrics"][k] for k in ("em", "macro_f1")}


def paired(baseline: list[float], arm: list[float]) -> dict:
    """The arm's exact match minus the baseline arm's, paired bootstrap 95% CI (points)."""
    from student_vs_teacher import paired_diff

    d = paired_diff(baseline, arm)
    return {
        "diff": d["diff"],
        "ci95": d["ci95"],
        "arm_only": d["student_only"],  # test rows only this arm's student gets right
        "baseline_only": d["teacher_only"],
    }


def comparisons(arms: dict[str, dict]) -> list[dict]:
    """Each COMPARISONS arm against its twin: paired exact match, and the teacher work each
    needed for the same number of accepted examples (requests, completion tokens)."""
    out = []
    for name, twins in COMPARISONS.items():
        twin = next((t for t in twins if t in arms), None)
        if name not in arms or twin is None:
            continue
        a, b = arms[name], arms[twin]
        diff = paired(b["student"]["em_per_example"], a["student"]["em_per_example"])
        out.append(
            {
                "arm": name,
                "against": twin,
                "em_diff": diff["diff"],
                "em_ci95": diff["ci95"],
                "requests_ratio": round(a["data"]["requests"] / b["data"]["requests"], 3),
                "completion_tokens_ratio": round(
                    a["data"]["completion_tokens"] / b["data"]["completion_tokens"], 3
                ),
                "yield": [b["data"]["yield"], a["data"]["yield"]],
            }
        )
    return out


def comparisons_markdown(rows: list[dict]) -> list[str]:
    """The COMPARISONS as a second table (none run: no table)."""
    from student_vs_teacher import diff_cell

    if not rows:
        return []
    lines = [
        "",
        "| arm | against | student EM diff (paired) | requests | completion tokens | yield |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['against']} "
            f"| {diff_cell({'diff': r['em_diff'], 'ci95': r['em_ci95']})} "
            f"| x{r['requests_ratio']:.2f} | "
            f"x{r['completion_tokens_ratio']:.2f} | {_num(r['yield'][0])} -> {_num(r['yield'][1])} |"
        )
    return lines


def markdown(meta: dict, arms: dict[str, dict]) -> str:
    """One row per arm: data (yield, duplicates, label mix), cost, the student's scores."""
    from student_vs_teacher import diff_cell

    lines = [
        f"# Data ablation: {meta['task']} ({meta['examples']} synthesized examples an arm, "
        f"{meta['test']} real test rows)",
        "",
    ]
    if meta.get("teacher"):
        t = meta["teacher"]
        lines += [
            f"Teacher (few-shot, greedy): EM {100 * t['em']['score']:.1f} "
            f"[{100 * t['em']['ci95'][0]:.1f}, {100 * t['em']['ci95'][1]:.1f}], macro-F1 "
            f"{100 * t['macro_f1']['score']:.1f}.",
            "",
        ]
    lines += [
        "| arm | changed | requests | completion tokens | generate s | yield | dup rate "
        "| train labels | student EM (95% CI) | vs label-requests (paired) | macro-F1 "
        "| distinct answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in arms.items():
        d, s = r["data"], r["student"]
        em = s["em"]
        diff = r.get("vs_baseline")
        vs_baseline = diff_cell(diff, missing="")
        changed = ", ".join(f"{k}={v}" for k, v in ARMS[name].items()) or "-"
        labels = _labels_cell(d["train_labels"])
        lines.append(
            f"| {name} | {changed} | {d['requests']} | {_int(d.get('completion_tokens'))} | "
            f"{_int(d.get('generate_seconds'))} | {_num(d['yield'])} | "
            f"{_num(d['duplicate_rate'])} | {labels} | {100 * em['value']:.1f} "
            f"[{100 * em['ci'][0]:.1f}, {100 * em['ci'][1]:.1f}] | {vs_baseline} | "
            f"{100 * s['macro_f1']['value']:.1f} | {s['distinct_answers']} |"
        )
    lines += comparisons_markdown(comparisons(arms))
    lines += rejections_markdown(arms)
    return "\n".join(lines) + "\n"


# What each of generate's filters threw away, one column each; the rest (unparsable answers,
# votes without a majority, outputs equal to their input) is summed into "other".
FILTERS = (
    "duplicate",
    "near_duplicate",
    "format_mismatch",
    "invalid_date",
    "out_of_label_set",
    "label_over_share",
    "leak",
)


def rejections_markdown(arms: dict[str, dict]) -> list[str]:
    """A third table: per arm, the examples each filter rejected on the way to the accepted set
    (how much work the exact dedup, near dedup, format check, label set, balancing cap and leak
    guard did, which says how far switching one off could move the data at all)."""
    lines = [
        "",
        "| arm | accepted | " + " | ".join(FILTERS) + " | other |",
        "|---|---|" + "---|" * (len(FILTERS) + 1),
    ]
    for name, r in arms.items():
        rejected = dict(r["data"].get("rejected_by_reason") or {})
        cells = [str(rejected.pop(reason, 0)) for reason in FILTERS]
        lines.append(
            f"| {name} | {r['data']['accepted']} | {' | '.join(cells)} | {sum(rejected.values())} |"
        )
    return lines


def _labels_cell(labels: dict[str, int]) -> str:
    """The training set's label mix, or for free-text outputs how many distinct ones."""
    if len(labels) > MAX_LABELS_SHOWN:
        return f"{len(labels)} distinct outputs"
    return " / ".join(f"{k} {v}" for k, v in labels.items())


def _int(x: float | None) -> str:
    """A count or a duration rounded to a whole number; "-" where the arm did not record it
    (generate time was recorded from the "-synth-cap" arms on)."""
    return "-" if x is None else f"{x:,.0f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def earlier_results(path: Path, meta: dict) -> tuple[dict, dict[str, dict]]:
    """The arms an earlier run of the same size recorded, so that running some arms keeps the
    others in the table (run directories are not kept between machines; the JSON is), and the
    teacher's score when this run skipped it."""
    if not path.is_file():
        return meta, {}
    old = json.loads(path.read_text())
    same = all(old["meta"].get(k) == meta[k] for k in ("task", "examples", "test"))
    if not same:
        return meta, {}
    if meta["teacher"] is None:
        meta = {**meta, "teacher": old["meta"].get("teacher")}
    return meta, {k: v for k, v in old["arms"].items() if k in ARMS}


def write_results(stem: Path, meta: dict, arms: dict[str, dict]) -> None:
    """The JSON (arms, their comparisons) and its table, each written whole or not at all."""
    from common.files import atomic_write_text

    base = arms.get(BASELINE)
    for rec in arms.values():
        if base is not None and rec is not base:
            rec["vs_baseline"] = paired(
                base["student"]["em_per_example"], rec["student"]["em_per_example"]
            )
    doc = {"meta": meta, "arms": arms, "comparisons": comparisons(arms)}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(stem.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(stem.with_suffix(".md"), markdown(meta, arms))


def rewrite(path: Path) -> int:
    """Recompute the comparisons and the table of a results JSON without running an arm."""
    if not path.is_file():
        print(f"error: {path} does not exist: run the ablation first", file=sys.stderr)
        return 2
    old = json.loads(path.read_text())
    arms = {k: v for k, v in old["arms"].items() if k in ARMS}
    write_results(path.with_suffix(""), old["meta"], arms)
    print(path.with_suffix(".md").read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sentiment", choices=sorted(LOADERS))
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arm names")
    parser.add_argument("--examples", type=int, default=300, help="accepted examples an arm")
    parser.add_argument("--test", type=int, default=500, help="real test rows")
    parser.add_argument("--no-teacher-eval", action="store_true", help="skip the teacher's score")
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="run nothing: rewrite the JSON and table from the arms the JSON holds",
    )
    args = parser.parse_args(argv)
    if args.rewrite:
        return rewrite(RESULTS / f"data_ablation_{args.task}.json")
    names = args.arms.split(",")
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown arm(s) {', '.join(unknown)} (known: {', '.join(ARMS)})")
    if BASELINE in names:  # first: its teacher cache seeds every other arm
        names = [BASELINE] + [n for n in names if n != BASELINE]

    from common.files import atomic_write_jsonl
    from distill.task import load_task

    task = load_task(HERE / "tasks" / f"{args.task}.toml")
    run_dir = RUNS / f"{args.task}-n{args.examples}"
    test = test_rows(args.task, args.test)
    atomic_write_jsonl(run_dir / "test.jsonl", test)
    meta: dict[str, Any] = {"task": args.task, "examples": args.examples, "test": len(test)}
    meta["teacher"] = None if args.no_teacher_eval else teacher_score(task, test, run_dir)
    stem = RESULTS / f"data_ablation_{args.task}"
    meta, results = earlier_results(stem.with_suffix(".json"), meta)
    for name in names:
        arm_dir = run_dir / name
        if name != BASELINE:
            seed_cache(arm_dir, run_dir / BASELINE)
        print(f"[{name}] generating and training ...", flush=True)
        record = run_arm(task, name, args.examples, test, arm_dir)
        preds = predict(arm_dir / "model", test, arm_dir / "test_predictions.json")
        record["student"] = score(preds, test)
        results[name] = record
        print(json.dumps({name: {**record["data"], "em": record["student"]["em"]}})[:600])
        write_results(stem, meta, results)
    print((RESULTS / f"data_ablation_{args.task}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

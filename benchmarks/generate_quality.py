"""Quality of `distill generate` with the embedded teacher on the temporal task.

1. Ablation (synthesize mode, as in Prompt2Model's): the same number of examples generated
   with and without few-shot mixing of accepted examples and temperature annealing. Near-dup
   filtering is OFF in these arms so that what the teacher wrote is measured, not what the
   filter removed: distinct share (distinct normalised inputs / parsed pairs), near-duplicate
   rate (MinHash Jaccard >= 0.8 against an earlier distinct input), distinct-2 of the accepted
   inputs, accepted examples per minute.
2. Self-consistency (label mode, k=3) on ctparse's hand-labelled temporal corpus (gold outputs
   nobody here wrote): accuracy of accepted labels, how many rejected (low-agreement) inputs
   had a wrong majority answer, and the accuracy a single sample would have had.

    python benchmarks/generate_quality.py --quick   # 2 arms x 24 examples, 24 labelled inputs
    python benchmarks/generate_quality.py           # 4 arms x 200 examples, 150 inputs (slow)

The embedded teacher (Qwen2.5-Coder-0.5B Q4_K_M, llama.cpp) shares 2 CPU cores with other
work here, so only the reduced sizes were run; the README states which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ARMS = {
    "mixing+annealing": {"few_shot_accepted": 3, "schedule": "linear"},
    "annealing only": {"few_shot_accepted": 0, "schedule": "linear"},
    "mixing only": {"few_shot_accepted": 3, "schedule": "constant", "temperature_start": 0.7},
    "neither": {"few_shot_accepted": 0, "schedule": "constant", "temperature_start": 0.7},
}
QUICK_ARMS = ("mixing+annealing", "neither")


def diversity(journal: Path, accepted: list[dict]) -> dict:
    """Distinct share, near-dup rate over every parsed pair; distinct-2 over accepted inputs."""
    from distill.generate.dedup import NearDupIndex, input_key
    from distill.generate.prompts import parse_pairs
    from distill.generate.store import read_log

    inputs = [
        i
        for r in read_log(journal)
        if r["event"] == "done" and r.get("text")
        for i, _ in parse_pairs(r["text"])
    ]
    distinct = list({input_key(i): i for i in inputs}.values())
    near = NearDupIndex(0.8, min_words=1)
    near_dups = sum(near.check_and_add(t) for t in distinct)
    bigrams = [
        b for e in accepted for b in zip(e["input"].split(), e["input"].split()[1:], strict=False)
    ]
    return {
        "parsed_pairs": len(inputs),
        "distinct_share": round(len(distinct) / max(len(inputs), 1), 3),
        "near_dup_rate": round(near_dups / max(len(distinct), 1), 3),
        "distinct_2": round(len(set(bigrams)) / max(len(bigrams), 1), 3),
    }


def run_arm(name: str, n: int, task, teacher_cfg, out: Path) -> dict:
    from distill.generate import run_generate
    from distill.generate.config import GenerateConfig

    cfg = GenerateConfig(
        num_examples=n, near_dup_threshold=1.0, max_tokens=256, overwrite=True, **ARMS[name]
    )
    t0 = time.perf_counter()
    m = run_generate(task, cfg, teacher_cfg, out)
    minutes = (time.perf_counter() - t0) / 60
    accepted = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    return {
        "arm": name,
        "accepted": m["counts"]["accepted"],
        "requests": m["counts"]["requests"],
        "exact_duplicates": m["counts"]["duplicates_removed"],
        "rejected": m["counts"]["rejected"],
        "accepted_per_min": round(m["counts"]["accepted"] / minutes, 1),
        **diversity(out / "journal.jsonl", accepted),
    }


def self_consistency(n: int, task, teacher_cfg, out: Path) -> dict:
    """Label n gold-labelled ctparse inputs with k=3 votes; score accepted and rejected."""
    sys.path.insert(0, str(HERE))
    from data_loaders import load_temporal

    from distill.generate import run_generate
    from distill.generate.config import GenerateConfig
    from distill.generate.vote import normalise_text

    gold_rows = load_temporal(seed=0)[:n]
    gold = {r["input"]: r["output"] for r in gold_rows}
    inputs = out / "inputs.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    inputs.write_text("".join(json.dumps({"input": r["input"]}) + "\n" for r in gold_rows))
    cfg = GenerateConfig(
        inputs=str(inputs),
        num_examples=n,
        votes=3,
        min_agreement=0.6,
        max_tokens=48,
        near_dup_threshold=1.0,
        overwrite=True,
    )
    m = run_generate(task, cfg, teacher_cfg, out / "run")
    run = out / "run"
    same = lambda a, b: normalise_text(a, lowercase=True) == normalise_text(b, lowercase=True)  # noqa: E731
    accepted = [json.loads(x) for x in (run / "examples.jsonl").read_text().splitlines()]
    rejected = [json.loads(x) for x in (run / "rejected.jsonl").read_text().splitlines()]
    low = [r for r in rejected if r["reason"] == "low_agreement"]
    low_wrong = sum(
        not same(Counter(r["outputs"]).most_common(1)[0][0], gold[r["input"]]) for r in low
    )
    first = _first_samples(run / "journal.jsonl", list(gold))
    return {
        "inputs": n,
        "accepted": len(accepted),
        "accepted_accuracy": round(
            sum(same(e["output"], gold[e["input"]]) for e in accepted) / max(len(accepted), 1), 3
        ),
        "rejected_low_agreement": len(low),
        "rejected_majority_wrong": low_wrong,
        "single_sample_accuracy": round(
            sum(same(o, gold[i]) for i, o in first.items()) / max(len(first), 1), 3
        ),
        "agreement_histogram": m["counts"]["vote_agreement_histogram"],
        "rejected_by_reason": m["counts"]["rejected_by_reason"],
    }


def _first_samples(journal: Path, inputs: list[str]) -> dict[str, str]:
    """The first label answer per input: what labelling without a vote would have kept."""
    from distill.generate.dedup import input_key
    from distill.generate.prompts import parse_label
    from distill.generate.store import read_log

    by_key = {input_key(i): i for i in inputs}
    first: dict[str, str] = {}
    for r in read_log(journal):
        if r["event"] == "done" and r.get("text") and by_key[r["key"]] not in first:
            first[by_key[r["key"]]] = parse_label(r["text"])
    return first


def markdown(arms: list[dict], sc: dict) -> str:
    lines = [
        "| arm | accepted | requests | parsed pairs | distinct share | near-dup rate | distinct-2 "
        "| accepted/min |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in arms:
        lines.append(
            f"| {a['arm']} | {a['accepted']} | {a['requests']} | {a['parsed_pairs']} "
            f"| {a['distinct_share']:.3f} | {a['near_dup_rate']:.3f} | {a['distinct_2']:.3f} "
            f"| {a['accepted_per_min']} |"
        )
    lines += [
        "",
        "| labelled inputs | accepted | accepted accuracy | single-sample accuracy "
        "| rejected (low agreement) | of which majority wrong | agreement histogram |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {sc['inputs']} | {sc['accepted']} | {sc['accepted_accuracy']:.3f} "
        f"| {sc['single_sample_accuracy']:.3f} | {sc['rejected_low_agreement']} "
        f"| {sc['rejected_majority_wrong']} | {sc['agreement_histogram']} |",
    ]
    return "\n".join(lines)


def plot(arms: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a["arm"] for a in arms]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [a["distinct_share"] for a in arms], 0.4, label="distinct share")
    ax.bar([i + 0.2 for i in x], [a["near_dup_rate"] for a in arms], 0.4, label="near-dup rate")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("distill generate: diversity ablation (embedded teacher, temporal task)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--examples", type=int, default=None, help="accepted examples per arm")
    ap.add_argument("--label-inputs", type=int, default=None)
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="per-request teacher timeout")
    ap.add_argument("--work", default=str(HERE / ".cache" / "generate_quality"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from distill.task import load_task
    from teachers.config import TeacherConfig

    task = load_task(HERE / "tasks" / "temporal.toml")
    # a generous timeout: on a busy 2-core machine one answer can take minutes, and a timed-out
    # request is retried from scratch (the 120 s default made every attempt start over)
    teacher_cfg = TeacherConfig(
        teacher=args.teacher, max_in_flight=2, timeout_s=args.timeout_s, max_retries=1
    )
    n = args.examples or (24 if args.quick else 200)
    m = args.label_inputs or (24 if args.quick else 150)
    names = QUICK_ARMS if args.quick else tuple(ARMS)
    work = Path(args.work)
    name = "generate_quality_quick" if args.quick else "generate_quality"
    RESULTS.mkdir(exist_ok=True)
    result: dict = {"teacher": args.teacher, "examples_per_arm": n, "arms": []}
    for arm in names:  # partial results are saved after every arm: the slow teacher may be cut off
        result["arms"].append(
            run_arm(arm, n, task, teacher_cfg, work / arm.replace("+", "_").replace(" ", "_"))
        )
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    arms = result["arms"]
    sc = result["self_consistency"] = self_consistency(m, task, teacher_cfg, work / "label")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(arms, sc)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    plot(arms, RESULTS / f"{name}.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

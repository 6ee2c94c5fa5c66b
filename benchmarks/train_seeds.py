"""Does a training setting move the student beyond its seed-to-seed spread? Arms x seeds.

    python benchmarks/train_seeds.py --name ema-quickstart --data runs/quickstart/data \\
        --task examples/hotel_sentiment.toml --test examples/hotel_sentiment_test.jsonl \\
        --teacher runs/quickstart/report.json --arm ema_decay=0.99 --seeds 0,1,2

Every (arm, seed) runs `distill train` on one run's teacher-labelled data (its train and
validation splits: the same teacher labels for every arm, so only the training differs), with
the task's [train] settings, the settings every arm shares (`--base`, none by default) and
the arm's own (`--arm KEY=VALUE[,KEY=VALUE]`, keys of `distill train`; the `default` arm has
none), then `distill eval` scores the torch student on a
real labelled test set. Per seed, each arm is paired with `default` input by input (same
seed, same test rows); pooled over seeds, each input's difference is averaged across seeds
before the bootstrap, so the interval is about the test rows, and the per-seed rows show the
seeds' spread. With `--teacher` (a run's report.json or an eval .predictions.jsonl scored on
the same test set) each arm is also paired with the teacher.

Models and scores are kept under benchmarks/runs/train_seeds/NAME/ (a finished (arm, seed) is
not trained again); writes benchmarks/results/train_seeds_NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

HERE = Path(__file__).parent
RESULTS = HERE / "results"
RUNS = HERE / "runs" / "train_seeds"


def parse_arm(spec: str, flag: str = "--arm") -> tuple[str, list[str]]:
    """`ema_decay=0.99,lr=2e-4` -> (the spec as the arm's name, distill train flags); a true
    or false value is a switch (`copy_as_written=false` -> `--no-copy-as-written`)."""
    flags: list[str] = []
    for item in spec.split(",") if spec else []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SystemExit(f"{flag} {spec}: each setting is KEY=VALUE (e.g. ema_decay=0.99)")
        name = key.strip().replace("_", "-")
        switch = {"true": [f"--{name}"], "false": [f"--no-{name}"]}.get(value.strip().lower())
        flags += switch or [f"--{name}", value.strip()]
    return spec, flags


def read_scores(path: Path, metric: str) -> dict[str, float]:
    """Input -> the per-example `metric` score, from an eval .predictions.jsonl or from the
    teacher's report inside a `distill run` report.json."""
    if path.suffix == ".json":
        reports = json.loads(path.read_text()).get("reports", [])
        rows = next((r["examples"] for r in reports if r.get("kind") == "teacher"), None)
        if rows is None:
            raise SystemExit(f"--teacher {path}: no teacher report with examples in it")
    else:
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {r["input"]: float(r["scores"][metric]) for r in rows}


def _cli(*argv: str, log: Path) -> None:
    """One `python -m distill` command, its output kept in `log`; a failure stops the benchmark."""
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", "distill", *argv], stdout=out, stderr=out)
    if code:
        raise SystemExit(f"distill {argv[0]} failed (exit {code}); see {log}")


def train_and_score(args: argparse.Namespace, arm: str, flags: list[str], seed: int) -> Path:
    """Train and score one (arm, seed) unless done; the eval .predictions.jsonl it wrote."""
    out = RUNS / args.name / f"{arm}-s{seed}"
    preds = out / "eval.predictions.jsonl"
    spec = {"data": str(args.data), "task": str(args.task), "test": str(args.test)}
    spec |= {"flags": flags, "seed": seed}
    done = out / "spec.json"
    if preds.is_file() and done.is_file():
        if json.loads(done.read_text()) != spec:
            raise SystemExit(f"{out}: made with other settings ({done}); delete it")
        return preds
    out.mkdir(parents=True, exist_ok=True)
    print(f"[{arm} seed {seed}] training ...", flush=True)
    task = ["--task", str(args.task)]
    model = ["--out", str(out / "model")]
    _cli("train", "--data", str(args.data), *task, *model, "--seed", str(seed), *flags,
         log=out / "train.log")  # fmt: skip
    _cli("eval", "--model", str(out / "model"), "--data", str(args.test), *task,
         "--out", str(out / "eval.json"), "--latency-samples", "0", log=out / "eval.log")  # fmt: skip
    from common.files import atomic_write_json

    atomic_write_json(done, spec)  # written last: its presence means the pair is finished
    return preds


def paired(base: list[list[float]], arm: list[list[float]]) -> dict:
    """Arm minus base (points), each input's difference averaged over the seeds, with
    student_vs_teacher's paired bootstrap 95% CI over the inputs."""
    import numpy as np
    from student_vs_teacher import paired_diff

    mean = [np.asarray(x, float).mean(axis=0).tolist() for x in (base, arm)]
    d = paired_diff(*mean)
    return {"diff": d["diff"], "ci95": d["ci95"]}


def summarise(args: argparse.Namespace, scores: dict[str, dict[int, dict[str, float]]]) -> dict:
    """Per arm: each seed's score, the mean, and the pairings with default and the teacher."""
    keys = sorted(next(iter(next(iter(scores.values())).values())))
    seeds = sorted(next(iter(scores.values())))
    teacher = read_scores(Path(args.teacher), args.metric) if args.teacher else None
    if teacher is not None and set(teacher) != set(keys):
        raise SystemExit(f"--teacher {args.teacher}: scored on other test rows than --test")

    rows = {arm: [[by_seed[s][k] for k in keys] for s in seeds] for arm, by_seed in scores.items()}
    out: dict[str, Any] = {"metric": args.metric, "test_n": len(keys), "seeds": seeds, "arms": {}}
    if teacher is not None:
        out["teacher"] = round(100 * sum(teacher.values()) / len(keys), 2)
    for arm, arm_rows in rows.items():
        per_seed = [round(100 * sum(r) / len(keys), 2) for r in arm_rows]
        entry = {"per_seed": per_seed, "mean": round(sum(per_seed) / len(per_seed), 2)}
        entry["vs_default"] = paired(rows["default"], arm_rows)
        entry["per_seed_vs_default"] = [
            paired([b], [a]) for b, a in zip(rows["default"], arm_rows, strict=True)
        ]
        if teacher is not None:
            entry["vs_teacher"] = paired([[teacher[k] for k in keys]], arm_rows)
        out["arms"][arm] = entry
    return out


def markdown(name: str, result: dict, args: argparse.Namespace) -> str:
    from student_vs_teacher import diff_cell

    metric = {"em": "exact match", "chrf": "sentence chrF++"}[result["metric"]]
    seeds = ", ".join(map(str, result["seeds"]))
    head = f"### {name}: {metric} (%) on {result['test_n']} real test rows, training seeds {seeds}"
    teacher = f" Teacher: {result['teacher']:.1f}." if "teacher" in result else ""
    lines = [
        head,
        "",
        f"Data: `{args.data}`.{teacher}",
        "",
        "| arm | per seed | mean | vs default, paired (pooled 95% CI) | vs teacher, paired |",
        "|---|---|---|---|---|",
    ]
    for arm, r in result["arms"].items():
        d, t = r["vs_default"], r.get("vs_teacher")
        vt = diff_cell(t)
        lines.append(
            f"| {arm} | {' / '.join(f'{s:.1f}' for s in r['per_seed'])} | {r['mean']:.1f} | "
            f"{diff_cell(d)} | {vt} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="names the runs and result files")
    parser.add_argument("--data", type=Path, required=True, help="RUN/data of a generate run")
    parser.add_argument("--task", type=Path, required=True, help="the task file")
    parser.add_argument("--test", type=Path, required=True, help="real labelled test JSONL")
    parser.add_argument("--teacher", help="teacher scores: RUN/report.json or .predictions.jsonl")
    parser.add_argument("--arm", action="append", default=[], help="KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--base", default="", help="KEY=VALUE[,...] every arm shares")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--metric", default="em", choices=["em", "chrf"])
    args = parser.parse_args(argv)
    for flag, path in (("--data", args.data), ("--task", args.task), ("--test", args.test)):
        if not path.exists():
            parser.error(f"{flag} {path}: not found")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: comma-separated integers, e.g. 0,1,2")
    base = parse_arm(args.base, "--base")[1]
    arms = [("default", base)] + [(name, base + f) for name, f in map(parse_arm, args.arm)]
    from common.files import atomic_write_json, atomic_write_text

    scores: dict[str, dict[int, dict[str, float]]] = {}
    for seed in seeds:  # seed-major: an interrupted run has whole pairs to show
        for arm, flags in arms:
            preds = train_and_score(args, arm, flags, seed)
            scores.setdefault(arm, {})[seed] = read_scores(preds, args.metric)
    result = summarise(args, scores)
    stem = RESULTS / f"train_seeds_{args.name}"
    given = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    atomic_write_json(stem.with_suffix(".json"), {"args": given, **result})
    md = markdown(args.name, result, args)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

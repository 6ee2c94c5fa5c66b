"""How long the whole default `distill run` takes, stage by stage, on this machine.

    python benchmarks/run_time.py --task sentiment --examples 300     # ~10-15 min on 2 cores

Runs `distill run --task benchmarks/tasks/<task>.toml --out DIR --num-examples N` as a user
would (the CLI in a subprocess, every setting at its default: synthesize mode with the embedded
teacher, since no inputs are given; the embedded student; int8 export; the student-vs-teacher
table on the generated test split), in a fresh run directory, and timestamps each stage as the
CLI announces it. Reports each stage's wall time, the total, and the teacher's work from the
generate manifest (requests, teacher pairs, yield). Writes
benchmarks/results/run_time_<task>-n<N>.{json,md}; the run directory is
benchmarks/runs/run_time/<task>-n<N>/ (deleted first: a timing needs a fresh run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
RUNS = HERE / "runs" / "run_time"
STAGE = re.compile(r"^== (generate|train|refine|export|eval)\b")


def stage_times(marks: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds from each stage's announcement to the next one's (the last: to `end`)."""
    out: dict[str, float] = {}
    for (t, name), nxt in zip(marks, [m[0] for m in marks[1:]] + [end], strict=True):
        out[name] = round(out.get(name, 0.0) + nxt - t, 1)
    return out


def run_cli(cmd: list[str], log: Path) -> tuple[dict[str, float], float, int]:
    """Run `cmd`, copy its output to `log`, and time its stages; (stages, total, exit code)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    marks: list[tuple[float, str]] = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc, log.open("w") as out:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if m := STAGE.match(line.strip()):
                marks.append((time.perf_counter() - start, m.group(1)))
    total = time.perf_counter() - start
    return stage_times(marks, total), round(total, 1), proc.returncode


def teacher_work(run_dir: Path) -> dict:
    """Requests, teacher pairs, yield and why pairs were rejected, from the generate manifest."""
    m = json.loads((run_dir / "data" / "manifest.json").read_text())
    c = m["counts"]
    return {
        "accepted": c["accepted"],
        "requests": c["requests"],
        "teacher_pairs": c.get("teacher_pairs"),
        "yield": c.get("accepted_per_teacher_pair"),
        "mode": m["settings"].get("mode") or "synthesize",
        "rejected_by_reason": c.get("rejected_by_reason", {}),
        "repeats_within_answer": c.get("repeats_within_answer"),
    }


def markdown(summary: dict) -> str:
    """One line per stage, the total, and the teacher's work."""
    w = summary["teacher"]
    lines = [
        f"# `distill run` at its defaults: {summary['task']}, {summary['examples']} examples",
        "",
        f"Command: `{summary['command']}`",
        "",
        "| stage | wall time |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v / 60:.1f} min ({v:.0f} s) |" for k, v in summary["stages_s"].items()]
    lines += [
        f"| **total** | **{summary['total_s'] / 60:.1f} min** |",
        "",
        f"Teacher: {w['requests']} requests, {w['teacher_pairs']} pairs, {w['accepted']} "
        f"accepted (yield {w['yield']:.2f}).",
    ]
    if w.get("rejected_by_reason"):  # recorded from the synth_max_tokens run on
        reasons = sorted(w["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(
            "Rejected: "
            + ", ".join(f"{k} {v}" for k, v in reasons)
            + f" ({w['repeats_within_answer']} of them repeats inside one answer)."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="sentiment", help="a task file in benchmarks/tasks/")
    parser.add_argument("--examples", type=int, default=300, help="--num-examples of the run")
    args = parser.parse_args(argv)
    task = HERE / "tasks" / f"{args.task}.toml"
    if not task.is_file():
        parser.exit(2, f"--task: {task} not found\n")
    from common.files import atomic_write_json, atomic_write_text

    name = f"{args.task}-n{args.examples}"
    run_dir = RUNS / name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    rel = task.relative_to(HERE.parent)
    command = f"distill run --task {rel} --out RUN --num-examples {args.examples}"
    cmd = [sys.executable, "-m", "distill", "run", "--task", str(task), "--out", str(run_dir)]
    cmd += ["--num-examples", str(args.examples)]
    stages, total, rc = run_cli(cmd, RUNS / f"{name}.log")
    if rc != 0:
        print(f"distill run exited {rc}; see {RUNS / f'{name}.log'}", file=sys.stderr)
        return rc
    summary = {
        "task": args.task,
        "examples": args.examples,
        "command": command,
        "stages_s": stages,
        "total_s": total,
        "teacher": teacher_work(run_dir),
    }
    stem = RESULTS / f"run_time_{name}"
    atomic_write_json(stem.with_suffix(".json"), summary)
    md = markdown(summary)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-tensor against per-channel int8 scales, on the same trained students.

    python benchmarks/int8_scales.py --run benchmarks/runs/address-t300-written \\
        --run benchmarks/runs/trec-t300

For each student_vs_teacher run: exports its trained model twice (`distill export
--int8-scales per_tensor` and `per_channel`, under RUN/int8_scales/, with the default gate),
decodes the run's real test set with what each export ships (its int8 graphs, or fp32 where
the gate refused int8) and with fp32, as the student decodes (label-set or copy decoding
included), and scores them against gold with the task's headline
metric (summary.HEADLINE). Reports the per-channel minus per-tensor difference (paired
bootstrap CI on the test rows), each one's agreement with fp32, what each gate let ship, and the
latency ratio, timed back to back at batch 1 and one thread on the same inputs, alternating
the two so that the machine's noise falls on both. Writes benchmarks/results/int8_scales.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from student_vs_teacher import diff_cell, paired_diff
from summary import HEADLINE

RESULTS = Path(__file__).parent / "results"
SCALES = ("per_tensor", "per_channel")
LATENCY_INPUTS = 50


def export(run: Path, scales: str) -> dict:
    """RUN/int8_scales/<scales>: the run's model exported with these scales (kept when done)."""
    from distill.stages.export import export_student
    from exports.config import ExportConfig

    out = run / "int8_scales" / scales
    report = out / "export_report.json"
    if not report.is_file():
        export_student(run / "model", out, ExportConfig(int8_scales=scales))
    data = json.loads(report.read_text())
    return {"dir": out, "precision": data["runtime_precision"]}


def score(task: str, answers: list[str], gold: list[str]) -> tuple[float, list[float]]:
    """The task's headline metric (points) and its per-example values (0-1)."""
    from distill.evaluation.metrics import chrf, exact_match

    res = exact_match(answers, gold) if HEADLINE.get(task, "chrf") == "em" else chrf(answers, gold)
    return 100 * res.score, [float(x) for x in res.per_example]


def latency_ratio(a, b, inputs: list[str]) -> dict:
    """p50 ms of each runtime at batch 1, timed alternately on the same inputs."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for i, text in enumerate(inputs):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for k in order:
            rt = (a, b)[k]
            start = time.perf_counter()
            rt.generate([text], batch_size=1)
            times[k].append(1000 * (time.perf_counter() - start))
    p50 = [statistics.median(times[k]) for k in (0, 1)]
    return {"per_tensor_ms": round(p50[0], 2), "per_channel_ms": round(p50[1], 2),
            "ratio": round(p50[1] / p50[0], 3)}  # fmt: skip


def compare(run: Path) -> dict:
    """One run's row: both exports' scores, fp32 agreement, what each gate let ship, latency."""
    from exports.runtime import OnnxSeq2Seq

    rows = [json.loads(x) for x in (run / "test.jsonl").read_text().splitlines() if x.strip()]
    inputs, gold = [r["input"] for r in rows], [r["output"] for r in rows]
    task = run.name.split("-")[0]
    exports = {scales: export(run, scales) for scales in SCALES}
    fp32 = OnnxSeq2Seq(exports["per_tensor"]["dir"], threads=2, precision="fp32")
    ref = fp32.generate(inputs, batch_size=16)
    row: dict = {"run": run.name, "n": len(rows), "metric": HEADLINE.get(task, "chrf")}
    row["fp32"] = round(score(task, ref, gold)[0], 2)
    per_example, timed = {}, {}
    for scales, exp in exports.items():
        rt = OnnxSeq2Seq(exp["dir"], threads=2)  # what ships: fp32 when the gate refused int8
        answers = rt.generate(inputs, batch_size=16)
        value, per_example[scales] = score(task, answers, gold)
        row[scales] = {
            "score": round(value, 2),
            "agrees_with_fp32": round(
                100 * sum(a == r for a, r in zip(answers, ref, strict=True)) / len(ref), 1
            ),
            "ships": exp["precision"],
            "answers": answers,
        }
        timed[scales] = OnnxSeq2Seq(exp["dir"], threads=1)
    row["per_channel_minus_per_tensor"] = paired_diff(
        per_example["per_tensor"], per_example["per_channel"]
    )
    row["latency"] = latency_ratio(
        timed["per_tensor"], timed["per_channel"], inputs[:LATENCY_INPUTS]
    )
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "### int8 scales on the same students: per-channel against per-tensor",
        "",
        "| run | metric | test n | fp32 | per-tensor (agrees with fp32) | per-channel (agrees) "
        "| per-channel minus per-tensor (paired 95% CI) | ships (tensor / channel) | p50 ms tensor / channel |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, c, d, lat = (
            r["per_tensor"],
            r["per_channel"],
            r["per_channel_minus_per_tensor"],
            r["latency"],
        )
        lines.append(
            f"| {r['run']} | {r['metric']} | {r['n']} | {r['fp32']:.1f} "
            f"| {t['score']:.1f} ({t['agrees_with_fp32']:.1f}%) | {c['score']:.1f} ({c['agrees_with_fp32']:.1f}%) "
            f"| {diff_cell(d)} "
            f"| {t['ships']} / {c['ships']} "
            f"| {lat['per_tensor_ms']:.1f} / {lat['per_channel_ms']:.1f} ({lat['ratio']:.2f}x) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, action="append", required=True,
                    help="a student_vs_teacher run directory (repeat for more)")  # fmt: skip
    ap.add_argument("--name", default="int8_scales", help="result file stem")
    args = ap.parse_args(argv)
    for run in args.run:
        for need in ("test.jsonl", "model/distill.json"):
            if not (run / need).is_file():
                print(
                    f"error: {run / need} is missing (run student_vs_teacher first)",
                    file=sys.stderr,
                )
                return 2
    rows = [compare(run) for run in args.run]
    from common.files import atomic_write_text

    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(rows, indent=1) + "\n")
    atomic_write_text(RESULTS / f"{args.name}.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

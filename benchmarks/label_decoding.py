"""Free greedy against greedy inside the label set, on the same exported students.

    python benchmarks/label_decoding.py --runs intent-t200 sentiment-t600-g3000-lp-auto

For each run directory of `student_vs_teacher.py` (benchmarks/runs/<run>): its shipped ONNX
student (the precision its export gate chose) decodes the run's real test set twice, freely
(`labels=[]`) and held to the label set of the run's generate manifest (what `distill train`
now writes into distill.json), and both are scored against gold by exact match, with a paired
bootstrap CI of the difference. Latency is per input at batch 1 and one thread, the two modes
timed alternately on the same inputs (each input once per mode, after one untimed warm-up each),
so machine noise falls on both; the ratio of their p50s is the speed-up.

Writes benchmarks/results/label_decoding.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from student_vs_teacher import diff_cell, paired_diff

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def run_labels(run: Path) -> list[str]:
    """The label set generate held the run's training data to (manifest rules.labels)."""
    manifest = json.loads((run / "data" / "manifest.json").read_text(encoding="utf-8"))
    labels = (manifest.get("rules") or {}).get("labels") or []
    if not labels:
        raise SystemExit(f"{run}/data/manifest.json: no rules.labels (not a label-set task)")
    return list(labels)


def measure(run: Path, latency_n: int) -> dict[str, Any]:
    """Both decodings of one run's ONNX student on its test set: quality, agreement, latency."""
    from common.metrics import exact_match_hits
    from exports.runtime import OnnxSeq2Seq

    labels = run_labels(run)
    rows = [json.loads(x) for x in (run / "test.jsonl").read_text().splitlines() if x.strip()]
    inputs, gold = [r["input"] for r in rows], [r["output"] for r in rows]
    model = OnnxSeq2Seq(run / "onnx", threads=1)
    free = model.generate(inputs, labels=[])
    held = model.generate(inputs, labels=labels)
    hits_free, hits_held = exact_match_hits(free, gold), exact_match_hits(held, gold)
    in_set = [i for i, p in enumerate(free) if p.strip() in labels]
    lat = _latencies(model, inputs[:latency_n], labels)
    p50 = {k: 1000 * float(np.median(v)) for k, v in lat.items()}
    return {
        "run": run.name,
        "precision": model.precision,
        "n": len(rows),
        "labels": labels,
        "label_tokens": [
            len(model.tokenizer.encode(x, add_special_tokens=False).ids) for x in labels
        ],
        "em_free": round(100 * float(np.mean(hits_free)), 2),
        "em_label_set": round(100 * float(np.mean(hits_held)), 2),
        "diff": paired_diff(hits_free, hits_held),
        "free_outside_set": len(rows) - len(in_set),
        "same_where_free_in_set": sum(free[i] == held[i] for i in in_set),
        "free_in_set": len(in_set),
        "latency_n": len(lat["free"]),
        "p50_ms_free": round(p50["free"], 2),
        "p50_ms_label_set": round(p50["label_set"], 2),
        "speedup": round(p50["free"] / p50["label_set"], 2),
    }


def _latencies(model: Any, inputs: list[str], labels: list[str]) -> dict[str, list[float]]:
    """Batch-1 seconds per input for each mode, the modes alternating input by input."""
    modes = {"free": [], "label_set": labels}
    for mode in modes.values():  # warm-up: first-run allocations are not per-input cost
        model.generate(inputs[:1], labels=mode, batch_size=1)
    out: dict[str, list[float]] = {k: [] for k in modes}
    for text in inputs:
        for name, mode in modes.items():
            t0 = time.perf_counter()
            model.generate([text], labels=mode, batch_size=1)
            out[name].append(time.perf_counter() - t0)
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    """One row per run: exact match both ways, the paired difference, latency both ways."""
    lines = [
        "| run | int8/fp32 | test n | labels (tokens each) | EM free | EM label set "
        "| diff, paired 95% CI | free answers outside the set | p50 ms free / label set "
        "| speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = r["diff"]
        toks = f"{len(r['labels'])} ({min(r['label_tokens'])}-{max(r['label_tokens'])})"
        lines.append(
            f"| {r['run']} | {r['precision']} | {r['n']} | {toks} | {r['em_free']:.1f} "
            f"| {r['em_label_set']:.1f} | {diff_cell(d)} | {r['free_outside_set']} "
            f"| {r['p50_ms_free']:.1f} / {r['p50_ms_label_set']:.1f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run dirs under --runs-dir")
    parser.add_argument("--runs-dir", default=str(HERE / "runs"))
    parser.add_argument("--latency-n", type=int, default=100, help="inputs timed per mode")
    parser.add_argument("--out", default=str(RESULTS / "label_decoding"), help="path stem")
    args = parser.parse_args(argv)
    results = []
    for name in args.runs:
        run = Path(args.runs_dir) / name
        if not (run / "onnx").is_dir():
            raise SystemExit(f"--runs: {run}/onnx not found (run student_vs_teacher.py first)")
        results.append(measure(run, args.latency_n))
        print(markdown(results[-1:]).splitlines()[-1], flush=True)
    from common.files import atomic_write_json, atomic_write_text

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/label_decoding.py " + " ".join(argv or sys.argv[1:])
    atomic_write_json(out.with_suffix(".json"), {"command": command, "results": results})
    atomic_write_text(out.with_suffix(".md"), markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Copy decoding's variants on the same exported weights: free greedy, token spans and word spans.

    python benchmarks/copy_decoding.py --run benchmarks/runs/address-t300-span-v

Decodes a student_vs_teacher run's test inputs with its shipped ONNX student three ways (no
retraining, so the difference is the decoding's alone): `free` (greedy over the whole
vocabulary), `token` (any contiguous run of the input's tokens: copy decoding's first version)
and `word` (runs that start at a word's first piece and end at a word's last: today's default,
common.copy_decoding.word_bounds). Scores exact match against gold and pairs each variant with
the teacher's and with the others on the same examples. Writes
benchmarks/results/copy_decoding_<run>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from student_vs_teacher import diff_cell, paired_diff

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("free", "token", "word")


def decode(rt, inputs: list[str], variant: str) -> list[str]:
    """The shipped student's greedy answers under one variant (its distill.json's copy_input
    is overridden: the variants are compared on the same weights)."""
    rt.meta.copy_input = variant != "free"
    rt.copy_words = variant == "word"
    return rt.generate(inputs, batch_size=16, max_new_tokens=64)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def compare(run: Path, threads: int) -> dict:
    """Each variant's answers and exact match, paired against the teacher and each other."""
    from distill.evaluation.metrics import bootstrap_ci, exact_match
    from exports.runtime import OnnxSeq2Seq

    rows = _jsonl(run / "test.jsonl")
    inputs, gold = [r["input"] for r in rows], [r["output"] for r in rows]
    teacher = [p["scores"]["em"] for p in _jsonl(run / "eval" / "teacher.predictions.jsonl")]
    if len(teacher) != len(rows):
        raise SystemExit(
            f"{run}/eval/teacher.predictions.jsonl: {len(teacher)} rows, test has {len(rows)}"
        )
    out: dict = {
        "run": run.name,
        "n": len(rows),
        "teacher_em": round(100 * sum(teacher) / len(rows), 2),
    }
    hits: dict[str, list[float]] = {}
    rt = OnnxSeq2Seq(run / "onnx", threads=threads)  # loaded once: the variants share weights
    for variant in VARIANTS:
        answers = decode(rt, inputs, variant)
        em = exact_match(answers, gold)
        hits[variant] = [float(x) for x in em.per_example]
        low, high = bootstrap_ci(em)
        out[variant] = {
            "em": round(100 * em.score, 2),
            "ci95": [round(100 * low, 2), round(100 * high, 2)],
            "empty": sum(not a.strip() for a in answers),
            "vs_teacher": paired_diff(teacher, hits[variant]),
            "answers": answers,
        }
    out["by_case"] = by_case(gold, {"teacher": teacher, **hits})
    out["word_vs_token"] = paired_diff(hits["token"], hits["word"])
    out["word_vs_free"] = paired_diff(hits["free"], hits["word"])
    return out


def case_of(text: str) -> str:
    """How an answer is written: `lower`, `upper` (all capitals) or `mixed`."""
    return "upper" if text.isupper() else "lower" if text.islower() else "mixed"


def by_case(gold: list[str], hits: dict[str, list[float]]) -> dict[str, dict]:
    """Exact match (%) of each decoder and the teacher, split by how the gold answer is written
    (an all-caps, lower-case or mixed-case city); `n` rows in each."""
    out: dict[str, dict] = {}
    for case in ("lower", "mixed", "upper"):
        rows = [i for i, g in enumerate(gold) if case_of(g) == case]
        if rows:
            out[case] = {"n": len(rows)} | {
                k: round(100 * sum(v[i] for i in rows) / len(rows), 1) for k, v in hits.items()
            }
    return out


def markdown(res: dict) -> str:
    """One row per variant: EM with its CI, empty answers, paired differences."""
    lines = [
        f"### {res['run']}: copy decoding's variants on the same int8 weights "
        f"({res['n']} real test items; teacher {res['teacher_em']:.1f}% EM)",
        "",
        "| decoding | EM [95% CI] | empty answers | vs teacher (paired) | vs word spans (paired) |",
        "|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        r = res[v]
        vs_word = "-" if v == "word" else diff_cell(res[f"word_vs_{v}"], sign=-1)
        lines.append(
            f"| {v} | {r['em']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}] | {r['empty']} "
            f"| {diff_cell(r['vs_teacher'])} | {vs_word} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a student_vs_teacher run directory")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for need in ("test.jsonl", "onnx", "eval/teacher.predictions.jsonl"):
        if not (args.run / need).exists():
            print(
                f"error: {args.run / need} is missing (run student_vs_teacher first)",
                file=sys.stderr,
            )
            return 2
    res = compare(args.run, args.threads)
    RESULTS.mkdir(exist_ok=True)
    from common.files import atomic_write_text

    stem = RESULTS / f"copy_decoding_{res['run']}"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(res, indent=1) + "\n")
    atomic_write_text(stem.with_suffix(".md"), markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

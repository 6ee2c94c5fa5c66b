"""Training throughput: our length-grouped dynamic padding vs Seq2SeqTrainer padding to max length.

Same data (variable-length synthetic text-to-text pairs), same model init, same number of
examples, one process, in one run. Reports samples/s, real (non-pad) tokens/s, the ratio (wall
clock and process CPU seconds, the latter steadier on a shared machine), and
peak RSS. Students: the embedded MiniLM encoder-decoder (49M) and a T5-small-shaped model
(random init from config; no pretrained T5 is reachable offline).

    nice python benchmarks/train_throughput.py          # 256 examples; long on a shared box
    nice python benchmarks/train_throughput.py --quick  # 64 examples; 9-24 min at load ~9
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).parent / "results"


def make_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Inputs of 5..120 words (long-tailed), outputs of 1..25 words."""
    rng = random.Random(seed)
    words = [
        "the",
        "date",
        "was",
        "moved",
        "to",
        "March",
        "after",
        "New",
        "York",
        "reviews",
        "said",
        "it's",
        "fine,",
        "really",
        "ok",
    ]
    rows = []
    for _ in range(n):
        n_in = min(120, int(rng.expovariate(1 / 25)) + 5)
        n_out = rng.randint(1, 25)
        rows.append(
            {
                "input": " ".join(rng.choices(words, k=n_in)),
                "output": " ".join(rng.choices(words, k=n_out)),
            }
        )
    return rows


def build_student(kind: str, out: Path) -> Path:
    if kind == "embedded":
        from students.presets import embedded_student_dir

        return embedded_student_dir()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from tiny_models import tiny_t5_dir  # test helpers, not in the wheel

    return tiny_t5_dir(out, d_model=512)  # t5-small width; 2+2 layers keep the run short


def ours(student: Path, rows, batch: int, tmp: Path) -> dict:
    """Our loop: one epoch, no validation; time the whole train_student call minus load/save."""
    from students import train as tr
    from students.config import TrainConfig

    data = tmp / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(
        student=str(student),
        epochs=1,
        lr=1e-4,
        batch_size=batch,
        threads=2,
        max_source_length=160,
        max_target_length=48,
    )
    timing = {}
    original = tr._Run._train_epoch

    def timed(self):
        start, cpu = time.perf_counter(), time.process_time()
        original(self)
        timing["s"] = time.perf_counter() - start
        timing["cpu"] = time.process_time() - cpu
        timing["tokens"] = sum(len(e.source) + len(e.target) for e in self.train)

    tr._Run._train_epoch = timed
    try:
        tr.train_student(cfg, data, None, tmp / "ours", instruction="Summarise.", task_name="bench")
    finally:
        tr._Run._train_epoch = original
    return {
        "seconds": timing["s"],
        "cpu_seconds": timing["cpu"],
        "samples_s": len(rows) / timing["s"],
        "tokens_s": timing["tokens"] / timing["s"],
    }


def baseline(student: Path, rows, batch: int, tmp: Path) -> dict:
    """Plain Seq2SeqTrainer: tokenizer padding='max_length' (the classic recipe), no grouping."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(str(student))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(student))

    def encode(r):
        src = tok(
            f"Summarise.\nInput: {r['input']}",
            max_length=160,
            truncation=True,
            padding="max_length",
        )
        tgt = tok(
            r["output"],
            max_length=48,
            truncation=True,
            padding="max_length",
            add_special_tokens=False,
        )
        labels = [t if t != tok.pad_token_id else -100 for t in tgt["input_ids"]]
        return {
            "input_ids": src["input_ids"],
            "attention_mask": src["attention_mask"],
            "labels": labels,
        }

    ds = Dataset.from_list(rows).map(encode, remove_columns=["input", "output"])
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp / "hf"),
        per_device_train_batch_size=batch,
        num_train_epochs=1,
        learning_rate=1e-4,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ds)
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    s, cpu = time.perf_counter() - start, time.process_time() - cpu
    real = sum(sum(a) for a in ds["attention_mask"]) + sum(
        sum(x != -100 for x in lab) for lab in ds["labels"]
    )
    return {"seconds": s, "cpu_seconds": cpu, "samples_s": len(rows) / s, "tokens_s": real / s}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(kind: str, which: str, n: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        student = build_student(kind, tmp / "student")
        rows = make_rows(n, seed=0)
        result = (ours if which == "ours" else baseline)(student, rows, batch, tmp)
    return {**result, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer examples")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "WHICH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement per process so peak RSS is per configuration
        print(json.dumps(run_one(args.child[0], args.child[1], int(args.child[2]), 16)))
        return
    import subprocess

    n = 64 if args.quick else 256
    rows = []
    for kind in ("embedded", "t5-small-shape"):
        res = {}
        for which in ("ours", "baseline"):
            out = (
                subprocess.run(
                    [sys.executable, __file__, "--child", kind, which, str(n)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            res[which] = json.loads(out)
        rows.append(
            {
                "student": kind,
                "examples": n,
                **{f"{w}_{k}": v for w, r in res.items() for k, v in r.items()},
                "speedup": res["ours"]["samples_s"] / res["baseline"]["samples_s"],
                # CPU seconds of the process: robust when other jobs share the cores.
                "cpu_speedup": res["baseline"]["cpu_seconds"] / res["ours"]["cpu_seconds"],
            }
        )
    write(rows, "train_throughput_quick" if args.quick else "train_throughput")


def write(rows: list[dict], name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| student | examples | ours samples/s | baseline samples/s | speed-up (wall) | "
        "ours CPU s | baseline CPU s | speed-up (CPU) | ours real tok/s | "
        "baseline real tok/s | ours peak RSS MB | baseline peak RSS MB |",
        "|" + " --- |" * 12,
    ]
    for r in rows:
        lines.append(
            f"| {r['student']} | {r['examples']} | {r['ours_samples_s']:.2f} | {r['baseline_samples_s']:.2f} | "
            f"{r['speedup']:.2f}x | {r['ours_cpu_seconds']:.0f} | {r['baseline_cpu_seconds']:.0f} | "
            f"{r['cpu_speedup']:.2f}x | {r['ours_tokens_s']:.0f} | {r['baseline_tokens_s']:.0f} | "
            f"{r['ours_peak_rss_mb']:.0f} | {r['baseline_peak_rss_mb']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

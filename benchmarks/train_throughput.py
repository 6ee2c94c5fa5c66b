"""Training throughput: our loop against the `Seq2SeqTrainer` setups a user would really pick.

Arms (same data, same model init, same number of examples, one process each, in one run):
  ours             our loop: length-grouped batches, per-batch padding
  hf_grouped       Seq2SeqTrainer + DataCollatorForSeq2Seq (per-batch padding) +
                   group_by_length (transformers 5: train_sampling_strategy="group_by_length"):
                   the strongest stock baseline, the one compared against
  hf_dynamic       Seq2SeqTrainer + DataCollatorForSeq2Seq, no grouping (plain per-batch padding)
  hf_pad_max       Seq2SeqTrainer, tokenizer padding='max_length' (the classic recipe; weakest)
Reports samples/s, real (non-pad) tokens/s, ratios of ours to each baseline (wall clock and
process CPU seconds, the latter steadier on a shared machine), and peak RSS. Students: the
embedded MiniLM encoder-decoder (49M) and a T5-small-width model (random init from config; no
pretrained T5 is reachable offline).

    nice python benchmarks/train_throughput.py                        # 256 examples, all arms
    nice python benchmarks/train_throughput.py --quick --students t5-small-shape
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


ARMS = ("ours", "hf_grouped", "hf_dynamic", "hf_pad_max")


def baseline(student: Path, rows, batch: int, tmp: Path, arm: str = "hf_pad_max") -> dict:
    """Seq2SeqTrainer as a user sets it up: `arm` picks the padding and grouping (see ARMS)."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Seq2SeqTrainer,
        Seq2SeqTrainingArguments,
    )

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(str(student))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(student))

    padding = "max_length" if arm == "hf_pad_max" else False  # else: the collator pads

    def encode(r):
        src = tok(
            f"Summarise.\nInput: {r['input']}",
            max_length=160,
            truncation=True,
            padding=padding,
        )
        tgt = tok(
            r["output"],
            max_length=48,
            truncation=True,
            padding=padding,
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
        # transformers 5 spells group_by_length=True as train_sampling_strategy
        train_sampling_strategy="group_by_length" if arm == "hf_grouped" else "random",
    )
    collator = None if arm == "hf_pad_max" else DataCollatorForSeq2Seq(tok, model=model)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ds, data_collator=collator)
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
        if which == "ours":
            result = ours(student, rows, batch, tmp)
        else:
            result = baseline(student, rows, batch, tmp, which)
    return {**result, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer examples (64)")
    parser.add_argument(
        "--students",
        default="embedded,t5-small-shape",
        help="comma-separated: embedded, t5-small-shape",
    )
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated of {ARMS}")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "WHICH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement per process so peak RSS is per configuration
        print(json.dumps(run_one(args.child[0], args.child[1], int(args.child[2]), 16)))
        return
    import subprocess

    n = 64 if args.quick else 256
    arms = [a for a in args.arms.split(",") if a]
    if "ours" not in arms or set(arms) - set(ARMS):
        parser.error(f"--arms: must include 'ours' and be among {ARMS}")
    rows = []
    for kind in args.students.split(","):
        res = {}
        for which in arms:
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
        for which in [a for a in arms if a != "ours"]:
            rows.append(
                {
                    "student": kind,
                    "examples": n,
                    "baseline": which,
                    **{f"ours_{k}": v for k, v in res["ours"].items()},
                    **{f"baseline_{k}": v for k, v in res[which].items()},
                    "speedup": res["ours"]["samples_s"] / res[which]["samples_s"],
                    # CPU seconds of the process: robust when other jobs share the cores.
                    "cpu_speedup": res[which]["cpu_seconds"] / res["ours"]["cpu_seconds"],
                    "load_average_1m": os.getloadavg()[0],
                }
            )
    write(rows, "train_throughput_quick" if args.quick else "train_throughput")


def write(rows: list[dict], name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| student | examples | baseline | ours samples/s | baseline samples/s | speed-up (wall) | "
        "ours CPU s | baseline CPU s | speed-up (CPU) | ours real tok/s | "
        "baseline real tok/s | ours peak RSS MB | baseline peak RSS MB |",
        "|" + " --- |" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['student']} | {r['examples']} | {r['baseline']} | {r['ours_samples_s']:.2f} | {r['baseline_samples_s']:.2f} | "
            f"{r['speedup']:.2f}x | {r['ours_cpu_seconds']:.0f} | {r['baseline_cpu_seconds']:.0f} | "
            f"{r['cpu_speedup']:.2f}x | {r['ours_tokens_s']:.0f} | {r['baseline_tokens_s']:.0f} | "
            f"{r['ours_peak_rss_mb']:.0f} | {r['baseline_peak_rss_mb']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()

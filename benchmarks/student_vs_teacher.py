"""Student vs teacher on a real task: the whole pipeline, then one comparison table.

    python benchmarks/student_vs_teacher.py --task temporal          # ~25 min on 2 cores
    python benchmarks/student_vs_teacher.py --task spider --quick    # smoke run, a few minutes

Steps (each skipped when its output already exists in benchmarks/runs/<task>[-quick]/, so an
interrupted run resumes): load the real test set (data no one here wrote, shipped in packages:
benchmarks/data_loaders.py) -> `distill generate` with the embedded teacher, the test inputs
excluded -> `distill train` (embedded 49M student) -> `distill export` (int8 ONNX) ->
`distill eval` of the teacher (few-shot, greedy), the torch student and the ONNX student on the
same test set. Writes benchmarks/results/student_vs_teacher_<task>.{json,md,png} and prints the
Markdown table with ratios against the teacher.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from data_loaders import EXTRA_INPUTS, LOADERS, load, load_extra

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TEACHER_ONLY = False


@dataclass(frozen=True)
class Sizes:
    """How big each stage is.

    The issue asked for ~300 generated examples and ~200 test inputs; on the 2 cores this ran on,
    shared with five other jobs, the embedded teacher decoded ~2.6 tokens/s in total, so the
    full sizes were cut to what fits one task in ~40 minutes. On an idle machine (~45 tokens/s)
    raise them with --generate/--test.
    """

    test: int
    generate: int
    epochs: int | None  # None: `distill train`'s default
    latency_samples: int


FULL = Sizes(test=200, generate=300, epochs=None, latency_samples=20)
QUICK = Sizes(test=10, generate=12, epochs=1, latency_samples=3)


def _stage(name: str, done: Path, fn) -> float:
    """Run `fn` unless `done` exists; return the seconds it took (0 when skipped)."""
    if done.exists():
        print(f"[{name}] reusing {done}", flush=True)
        return 0.0
    print(f"[{name}] running ...", flush=True)
    start = time.perf_counter()
    fn()
    took = time.perf_counter() - start
    print(f"[{name}] done in {took:.0f} s", flush=True)
    return took


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    from common.files import atomic_write_jsonl

    atomic_write_jsonl(path, rows)


def run_pipeline(
    task_name: str,
    sizes: Sizes,
    run_dir: Path,
    teacher: str,
    data_mode: str,
    options: dict[str, Any] | None = None,
) -> dict:
    """Generate, train, export (the stages `distill run` uses); return the seconds each took.

    `options`: what the flags change (`top_logprobs` and `label_calibration` for generate;
    soft-label weight and temperature, `min_label_prob`, `metric_for_best`, `seed` and
    `copy_decoding` for train); None or missing: the defaults.
    """
    from distill.configs import build_config
    from distill.generate.config import NO_TEST_SPLIT, GenerateConfig
    from distill.stages.generate import generate_data
    from distill.stages.train import train_model
    from distill.task import load_task
    from students.config import TrainConfig

    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    test = [json.loads(x) for x in (run_dir / "test.jsonl").read_text().splitlines()]
    data, model, onnx = run_dir / "data", run_dir / "model", run_dir / "onnx"
    # No test split held out of the teacher's labels: `distill run --test` holds none (the table
    # is scored on the real test rows), so every accepted label trains or validates here too.
    extra: dict[str, Any] = {"num_examples": sizes.generate, **NO_TEST_SPLIT}
    if data_mode == "label":
        # the teacher labels real unlabelled inputs (gold outputs dropped, test inputs excluded);
        # greedy and one vote: the student learns exactly what the teacher answers
        extra.update(
            inputs=str(run_dir / "unlabelled.jsonl"), mode="label", votes=1, label_temperature=0.0
        )
    if data_mode == "label-vote":
        # a self-consistency vote of 3 samples at temperature 0.7, inputs without a majority
        # rejected (generate's label-mode default until this benchmark measured it)
        extra.update(
            inputs=str(run_dir / "unlabelled.jsonl"), mode="label", votes=3, label_temperature=0.7
        )
    if data_mode != "synthesize":
        extra["max_tokens"] = 64
    options = options or {}
    for key in ("top_logprobs", "label_calibration"):  # generate's, where given (0 included)
        if options.get(key) is not None:
            extra[key] = options[key]
    gen_cfg = build_config(GenerateConfig, task.table("generate"), extra=extra)
    teacher_cfg = _teacher_cfg(teacher)
    timings = {}
    timings["generate_s"] = _stage(
        "generate",
        data / "manifest.json",
        lambda: generate_data(
            task, gen_cfg, teacher_cfg, data, exclude_inputs=[r["input"] for r in test]
        ),
    )
    train_extra: dict[str, Any] = {} if sizes.epochs is None else {"epochs": sizes.epochs}
    train_keys = (
        "soft_label_weight",
        "soft_label_temperature",
        "min_label_prob",
        "metric_for_best",
        "seed",
        "copy_decoding",
    )
    for key in train_keys:
        if options.get(key) is not None:
            train_extra[key] = options[key]
    train_cfg = build_config(TrainConfig, task.table("train"), extra=train_extra)
    if TEACHER_ONLY:
        return timings
    timings["train_s"] = _stage(
        "train", model / "distill.json", lambda: train_model(task, train_cfg, data, model)
    )
    # The gate's held-out pairs: RUN/data/validation.jsonl beside the model (never the test set).
    timings["export_s"] = _stage(
        "export",
        onnx / "export_report.json",
        # The export's own gate with its default rule: when int8 fails it, fp32 is what ships,
        # and the ONNX row of the table then measures fp32 (its report says which precision).
        lambda: _export(model, onnx),
    )
    return timings


def _export(model: Path, onnx: Path) -> None:
    """`distill run`'s export stage with the default config and gate; say when int8 failed."""
    from distill.stages.export import export_student
    from exports.config import ExportConfig

    outcome = export_student(model, onnx, ExportConfig())
    if outcome.failure:
        print(f"[export] int8 gate failed, fp32 kept: {outcome.failure}", flush=True)


def _teacher_cfg(teacher: str) -> Any:
    """Requests in flight = the embedded server's 2 decoding slots.

    More would wait in llama.cpp's queue while their client-side timeout runs, and on 2 busy
    shared cores a queued 512-token request can time out and be retried again and again.
    """
    from teachers.config import TeacherConfig

    threads = int(os.environ.get("DISTILL_BENCH_TEACHER_THREADS", "0")) or None
    return TeacherConfig(
        teacher=teacher, max_in_flight=2, parallel=2, timeout_s=900.0, threads=threads
    )


def evaluate_all(
    task_name: str, sizes: Sizes, run_dir: Path, teacher: str, limit: int | None = None
) -> list[dict]:
    """Teacher, torch student and ONNX student on the test set; reports written in run_dir/eval."""
    from distill.evaluation import write_report
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.reports import load_report
    from distill.stages.evaluate import evaluate_one
    from distill.task import load_task

    task = load_task(HERE / "tasks" / f"{task_name}.toml")
    cfg = EvalConfig(
        metrics=["em", "em_nospace", "chrf"],
        latency_samples=sizes.latency_samples,
        student_threads=1,  # what one CPU core of a small server gives each request
        limit=limit,
    )
    targets = {
        "teacher": f"teacher:{teacher}",
        "student_torch": str(run_dir / "model"),
        "student_onnx": str(run_dir / "onnx"),
    }
    if TEACHER_ONLY:
        targets = {"teacher": targets["teacher"]}
    reports = []
    for key, target in targets.items():
        out = run_dir / "eval" / f"{key}.json"
        if out.is_file():
            print(f"[eval {key}] reusing {out}", flush=True)
            reports.append(load_report(out))
            continue
        print(f"[eval {key}] running ...", flush=True)
        rep = evaluate_one(
            target,
            run_dir / "test.jsonl",
            task=task,
            cfg=cfg,
            teacher_cfg=_teacher_cfg(teacher),
        )
        write_report(rep, out)
        reports.append(rep)
    return reports


def paired_diff(teacher: list[float], student: list[float], samples: int = 2000) -> dict:
    """Student minus teacher on the same examples (points), with a paired bootstrap 95% CI
    (`distill run`'s own, `metrics.paired_bootstrap`), and the examples only the student gets
    right (`student_only`) and only the teacher (`teacher_only`)."""
    from distill.evaluation.metrics import paired_bootstrap

    d = paired_bootstrap(teacher, student, samples=samples)
    return {
        "diff": d["diff"],
        "ci95": d["ci95"],
        "student_only": d["better"],
        "teacher_only": d["worse"],
    }


def diff_cell(d: dict | None, sign: int = 1, missing: str = "-") -> str:
    """A `paired_diff` as one table cell, `+1.0 [-0.5, +2.3]` (`missing` where there is none).

    sign=-1 states the difference the other way round (teacher minus student).
    """
    if not d:
        return missing
    lo, hi = sorted(sign * x for x in d["ci95"])
    return f"{sign * d['diff']:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def paired_em(run_dir: Path, reports: list[dict]) -> dict[str, dict]:
    """`paired_diff` of exact match for each student against the teacher (the eval keys)."""

    def em(key: str) -> list[float]:
        path = run_dir / "eval" / f"{key}.predictions.jsonl"
        return [json.loads(x)["scores"]["em"] for x in path.read_text().splitlines() if x]

    keys = ["student_torch", "student_onnx"][: len(reports) - 1]
    return {k: paired_diff(em("teacher"), em(k)) for k in keys}


def ratios_markdown(reports: list[dict], paired: dict[str, dict] | None = None) -> str:
    """Student vs teacher: quality difference (points; EM with its paired 95% CI), speed-up."""
    teacher = reports[0]
    lines = [
        "| student | EM diff (pts, paired 95% CI) | chrF++ diff | p50 latency speed-up "
        "| throughput ratio |",
        "|---|---|---|---|---|",
    ]
    pairs = list((paired or {}).values())
    for i, rep in enumerate(reports[1:]):
        em = (rep["metrics"]["em"]["score"] - teacher["metrics"]["em"]["score"]) * 100
        # the point estimate from the reports' scores; the interval from the paired bootstrap
        em_cell = (
            diff_cell({"diff": em, "ci95": pairs[i]["ci95"]}) if i < len(pairs) else f"{em:+.1f}"
        )
        chrf = (rep["metrics"]["chrf"]["score"] - teacher["metrics"]["chrf"]["score"]) * 100
        speed = _ratio(teacher["latency_ms"]["p50"], rep["latency_ms"]["p50"])
        thr = _ratio(rep.get("throughput_per_s"), teacher.get("throughput_per_s"))
        lines.append(f"| {rep['name']} | {em_cell} | {chrf:+.1f} | {speed} | {thr} |")
    return "\n".join(lines) + "\n"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def chart(reports: list[dict], path: Path, title: str) -> None:
    """Quality (EM, chrF++ with 95% CIs) and p50 latency: the chart RUN/report.html shows."""
    from common.files import atomic_write_bytes
    from distill.evaluation.plots import quality_latency_png

    atomic_write_bytes(path, quality_latency_png(reports, title, metrics=("em", "chrf")))


def _train_choices(name: str) -> list[str]:
    """The values `distill train` accepts for a setting (its TrainConfig field's choices)."""
    from dataclasses import fields

    from students.config import TrainConfig

    return next(f for f in fields(TrainConfig) if f.name == name).metadata["choices"]


def _generate_choices(name: str) -> list[str]:
    """The values `distill generate` accepts for a setting (its GenerateConfig field's)."""
    from dataclasses import fields

    from distill.generate.config import GenerateConfig

    return list(next(f for f in fields(GenerateConfig) if f.name == name).metadata["choices"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(LOADERS), required=True)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--teacher", default="embedded", help="teacher spec (default: embedded)")
    parser.add_argument("--runs", default=str(HERE / "runs"), help="where run dirs go")
    parser.add_argument(
        "--data-mode",
        choices=["label", "label-vote", "synthesize"],
        default="label",
        help="label: the teacher labels the real inputs left out of the test set (gold outputs "
        "unused), one greedy answer each (generate's default); label-vote: the same inputs "
        "with a 3-sample self-consistency vote at temperature 0.7; synthesize: the teacher writes inputs and outputs "
        "from the task spec alone",
    )
    parser.add_argument("--generate", type=int, help="examples to generate (overrides the size)")
    parser.add_argument("--test", type=int, help="test examples (overrides the size)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: train's)")
    parser.add_argument(
        "--tag",
        help="suffix of the run dir and result files, e.g. g1000 for a larger training set "
        "(copy another run's data/teacher_cache.sqlite in first to reuse its teacher answers)",
    )
    parser.add_argument(
        "--eval-limit", type=int, help="evaluate on the first N test examples only (time budget)"
    )
    parser.add_argument(
        "--top-logprobs",
        type=int,
        help="ask the teacher for K first-token alternatives (soft labels, calibration; "
        "generate's default: 5 in label modes unless --label-calibration none)",
    )
    parser.add_argument(
        "--label-calibration",
        choices=_generate_choices("label_calibration"),
        help="generate's label calibration (default: generate's, auto since 2026-12-05; none: "
        "the teacher's answers, as every run before that)",
    )
    parser.add_argument("--soft-label-weight", type=float, help="train's soft-label weight")
    parser.add_argument("--soft-label-temperature", type=float, help="train's soft temperature")
    parser.add_argument(
        "--min-label-prob",
        type=float,
        help="train only on the teacher labels it gave at least this probability "
        "(needs --top-logprobs)",
    )
    parser.add_argument(
        "--train-seed", type=int, help="train's seed (data order, init, dropout; default 0)"
    )
    parser.add_argument(
        "--metric-for-best",
        choices=_train_choices("metric_for_best"),
        help="train's validation metric that picks the best epoch (default: auto)",
    )
    parser.add_argument(
        "--copy-decoding",
        choices=_train_choices("copy_decoding"),
        help="train's copy decoding (default: auto; off: free decoding, as every run before "
        "2026-12-06)",
    )
    parser.add_argument(
        "--extra-inputs",
        action="store_true",
        help="also offer the teacher the task's real unlabelled inputs from outside its "
        "labelled corpus (address: usaddress's other addresses, data_loaders.EXTRA_INPUTS), after "
        "the labelled pool; the test set is unchanged",
    )
    parser.add_argument(
        "--teacher-only",
        action="store_true",
        help="only the teacher's work: generate the data and evaluate the teacher (fills the "
        "run dir so student settings can be compared later without the teacher)",
    )
    args = parser.parse_args(argv)
    if args.extra_inputs and args.task not in EXTRA_INPUTS:
        parser.error(
            f"--extra-inputs: no extra inputs for {args.task} (only {', '.join(EXTRA_INPUTS)})"
        )
    global TEACHER_ONLY
    TEACHER_ONLY = args.teacher_only
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(
        test=args.test or sizes.test,
        generate=args.generate or sizes.generate,
        epochs=args.epochs or sizes.epochs,
        latency_samples=sizes.latency_samples,
    )
    suffix = "-quick" if args.quick else ""
    if args.test:  # another test set: its own run dir (the generated data excludes it)
        suffix += f"-t{sizes.test}"
    if args.data_mode != "label":
        suffix += f"-{args.data_mode}"
    if args.tag:
        suffix += f"-{args.tag}"
    run_dir = Path(args.runs) / f"{args.task}{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = load(args.task)
    test = rows[: sizes.test]
    extra = load_extra(args.task) if args.extra_inputs else []
    if not (run_dir / "test.jsonl").is_file():
        _write_jsonl(run_dir / "test.jsonl", test)
        # the rest of the pool, without its gold outputs (then any extra real inputs): inputs
        # for the teacher to label
        pool = [r["input"] for r in rows[sizes.test :]] + extra
        _write_jsonl(run_dir / "unlabelled.jsonl", [{"input": x} for x in pool])
    options = {
        "top_logprobs": args.top_logprobs,
        "label_calibration": args.label_calibration,
        "soft_label_weight": args.soft_label_weight,
        "soft_label_temperature": args.soft_label_temperature,
        "min_label_prob": args.min_label_prob,
        "seed": args.train_seed,
        "metric_for_best": args.metric_for_best,
        "copy_decoding": args.copy_decoding,
        "extra_inputs": len(extra) or None,
    }
    timings = run_pipeline(args.task, sizes, run_dir, args.teacher, args.data_mode, options)
    reports = evaluate_all(args.task, sizes, run_dir, args.teacher, args.eval_limit)
    if TEACHER_ONLY:
        return 0
    return write_results(
        args.task, suffix, sizes, run_dir, reports, timings, len(rows), args.data_mode, options
    )


def write_results(
    task: str,
    suffix: str,
    sizes: Sizes,
    run_dir: Path,
    reports: list[dict],
    timings: dict,
    pool: int,
    data_mode: str,
    options: dict | None = None,
) -> int:
    """JSON + Markdown + PNG under benchmarks/results, and the table on stdout.

    `options` (the generate/train flags that were set) go in the JSON, so a row records how it
    was made."""
    from common.files import atomic_write_json, atomic_write_text
    from distill.evaluation import compare_markdown

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"student_vs_teacher_{task}{suffix}"
    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    summary = {
        "task": task,
        "sizes": sizes.__dict__,
        "test_pool": pool,
        "data_mode": data_mode,
        "options": {k: v for k, v in (options or {}).items() if v is not None},
        "timings_s": timings,
        "generate_manifest_counts": manifest.get("counts"),
        # what label calibration did or, under auto, declined (label counts both ways)
        "generate_manifest_calibration": manifest.get("calibration"),
        "reports": [{k: v for k, v in r.items() if k != "examples"} for r in reports],
        "paired_em_vs_teacher": paired_em(run_dir, reports),
    }
    atomic_write_json(stem.with_suffix(".json"), summary)
    table = (
        compare_markdown(reports) + "\n" + ratios_markdown(reports, summary["paired_em_vs_teacher"])
    )
    title = f"{task}: teacher vs student ({reports[0]['n']} real test examples)"
    atomic_write_text(stem.with_suffix(".md"), f"### {title}\n\n{table}")
    chart(reports, stem.with_suffix(".png"), title)
    print(f"\n### {title}\n\n{table}")
    print(f"wrote {stem}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`distill run`: generate, train, export, then evaluate student and teacher side by side.

Every stage is resumable on its own (generate continues its run, train has checkpoints), and
`run` records what each finished stage consumed in RUN/run_state.json, so a rerun skips a stage
whose inputs and settings have not changed and redoes everything downstream of one that has.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import xxhash

from distill.configs import add_config_args
from distill.errors import UserError
from distill.io import atomic_write_json, atomic_write_text, read_jsonl
from distill.stages import STAGE_CONFIGS

HELP = "generate, train, export and evaluate in one go (student vs teacher table at the end)"
STAGES = ("teacher", "generate", "train", "export", "eval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--task/--out/--test plus every stage's flags (a name shared by stages sets all of them)."""
    parser.add_argument("--task", required=True, help="task spec (TOML)")
    parser.add_argument("--out", required=True, help="run directory (data/, model/, onnx/)")
    parser.add_argument(
        "--test",
        default=None,
        help="labelled test JSONL (input, output); "
        "default: the held-out validation split of the generated data",
    )
    parser.add_argument(
        "--skip-teacher-eval",
        action="store_true",
        help="evaluate only the student (saves teacher calls)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="redo train/export/eval even when their inputs did not change",
    )
    seen: set[str] = set()
    for stage in STAGES:
        cls = STAGE_CONFIGS[stage]()
        names = {f.name for f in dataclasses.fields(cls)}
        add_config_args(parser, cls, skip=tuple(seen & names))
        seen |= names


def run(args: argparse.Namespace) -> int:
    """Run the stages in order, skipping those already done with the same inputs."""
    from distill.commands.common import stage_config
    from distill.task import load_task

    task = load_task(args.task)
    cfgs = {stage: stage_config(stage, task, args) for stage in STAGES}
    test_rows = read_jsonl(args.test) if args.test else None
    root = Path(args.out)
    state = _State(root / "run_state.json", force=args.force)
    data_dir = _generate(task, cfgs, root, test_rows)
    model_dir = _train(task, cfgs, root, data_dir, state)
    onnx_dir = _export(cfgs, root, model_dir, state)
    test_path = Path(args.test) if args.test else data_dir / "validation.jsonl"
    _evaluate(task, cfgs, root, onnx_dir, model_dir, test_path, state, args.skip_teacher_eval)
    return 0


class _State:
    """Fingerprints of finished stages, so a rerun redoes only what changed."""

    def __init__(self, path: Path, force: bool) -> None:
        self.path = path
        self.force = force
        self.done: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}

    def fresh(self, stage: str, fingerprint: str, artefact: Path) -> bool:
        return not self.force and artefact.exists() and self.done.get(stage) == fingerprint

    def mark(self, stage: str, fingerprint: str) -> None:
        self.done[stage] = fingerprint
        atomic_write_json(self.path, self.done)


def _fingerprint(*parts: Any) -> str:
    h = xxhash.xxh3_128()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.read_bytes() if part.is_file() else str(part).encode())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _generate(task: Any, cfgs: dict[str, Any], root: Path, test_rows: list[dict] | None) -> Path:
    from distill.generate import run_generate

    data_dir = root / "data"
    _banner(
        f"generate: {cfgs['generate'].num_examples or 'default number of'} examples from teacher "
        f"'{cfgs['teacher'].teacher}' -> {data_dir}"
    )
    exclude = [r["input"] for r in test_rows] if test_rows else []
    run_generate(task, cfgs["generate"], cfgs["teacher"], data_dir, exclude_inputs=exclude)
    return data_dir


def _train(task: Any, cfgs: dict[str, Any], root: Path, data_dir: Path, state: _State) -> Path:
    from distill.commands.common import with_registered_extra_data
    from students.train import train_student

    cfgs["train"] = with_registered_extra_data(cfgs["train"], data_dir)
    model_dir = root / "model"
    train, val = data_dir / "train.jsonl", data_dir / "validation.jsonl"
    fp = _fingerprint(dataclasses.asdict(cfgs["train"]), task.instruction, train, val)
    if state.fresh("train", fp, model_dir / "distill.json"):
        _banner(f"train: {model_dir} is up to date (same data and settings), skipping")
        return model_dir
    _banner(f"train: student '{cfgs['train'].student}' -> {model_dir}")
    card = {"teacher": cfgs["teacher"].teacher, "data": str(data_dir)}
    train_student(
        cfgs["train"],
        train,
        val if val.is_file() else None,
        model_dir,
        instruction=task.instruction,
        task_name=task.name,
        card=card,
    )
    state.mark("train", fp)
    return model_dir


def _export(cfgs: dict[str, Any], root: Path, model_dir: Path, state: _State) -> Path:
    from distill.commands.export import heldout_pairs, unlabelled_inputs
    from exports.export import ExportError, export_model

    onnx_dir = root / "onnx"
    fp = _fingerprint(dataclasses.asdict(cfgs["export"]), state.done.get("train"))
    if state.fresh("export", fp, onnx_dir / "distill.json"):
        _banner(f"export: {onnx_dir} is up to date, skipping")
        return onnx_dir
    _banner(f"export: {model_dir} -> {onnx_dir} (quantize={cfgs['export'].quantize})")
    # Same held-out source as `distill export` (RUN/data/validation.jsonl beside the model).
    heldout, _ = heldout_pairs(model_dir, None, cfgs["export"].max_heldout)
    try:
        report = export_model(
            model_dir,
            onnx_dir,
            cfgs["export"],
            heldout=heldout,
            unlabelled=unlabelled_inputs(model_dir),
        )
    except ExportError as exc:
        if not (onnx_dir / "distill.json").is_file():
            raise UserError(f"export failed: {exc}") from None
        # The int8 gate failed: the export kept fp32 and the runtime serves that instead.
        print(f"warning: {exc}; continuing with the fp32 ONNX model")
        report = exc.report
    gate = report.get("gate", {})
    if gate:
        print(f"quality gate: {json.dumps(gate)}")
    state.mark("export", fp)
    return onnx_dir


def _evaluate(
    task: Any,
    cfgs: dict[str, Any],
    root: Path,
    onnx_dir: Path,
    model_dir: Path,
    test_path: Path,
    state: _State,
    skip_teacher: bool,
) -> None:
    from distill.evaluation import compare_markdown, evaluate_target

    if not test_path.is_file():
        raise UserError(f"--test: {test_path} not found (no held-out split was written)")
    _banner(f"eval: student vs teacher on {test_path}")
    targets = [str(onnx_dir), str(model_dir)]
    if not skip_teacher:
        targets.append(f"teacher:{cfgs['teacher'].teacher}")
    reports = []
    for target in targets:
        teacher_cfg = cfgs["teacher"] if target.startswith("teacher:") else None
        report = evaluate_target(
            target, test_path, task=task, cfg=cfgs["eval"], teacher_cfg=teacher_cfg
        )
        reports.append(report)
    table = compare_markdown(reports)
    atomic_write_json(root / "report.json", {"test": str(test_path), "reports": reports})
    atomic_write_text(root / "report.md", table + "\n")
    print(table)
    if test_path.name == "validation.jsonl":
        print(
            "\nnote: references are the teacher's own labels (no --test given), so the "
            "teacher row measures its self-agreement, not its accuracy."
        )

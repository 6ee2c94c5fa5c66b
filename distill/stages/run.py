"""`distill run`'s engine: generate, train, export and evaluate in order, each through the same
stage function its own subcommand calls, skipping what is up to date.

Every stage is resumable on its own (generate continues its run, train has checkpoints), and the
run records what each finished stage consumed in RUN/run_state.json (a fingerprint of its
settings and inputs), so a rerun skips a stage whose inputs and settings have not changed and
redoes everything downstream of one that has. Evaluation is fingerprinted per target: a rerun
reuses the teacher's scores (the expensive, paid part) unless the teacher, the task, the test
set or the eval settings changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from common.cards import CARD_FILE, replace_section
from common.files import atomic_write_json, atomic_write_text
from common.jsonl import read_jsonl
from common.meta import META_FILE
from distill.errors import UserError
from distill.generate.calibration import summary_line
from distill.stages.evaluate import check_eval, evaluate_one
from distill.stages.export import export_student
from distill.stages.generate import check_generate, generate_data
from distill.stages.refine import check_refine
from distill.stages.train import check_train, train_model

if TYPE_CHECKING:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.records import EvalReport
    from distill.generate.config import GenerateConfig
    from distill.refine.config import RefineConfig
    from distill.task import TaskSpec
    from exports.config import ExportConfig
    from students.config import TrainConfig
    from teachers.config import TeacherConfig

STATE_FILE = "run_state.json"
REPORT_JSON, REPORT_MD = "report.json", "report.md"


@dataclass
class StageConfigs:
    """One config per stage, as `distill.stages.STAGES` lists them."""

    teacher: TeacherConfig
    generate: GenerateConfig
    train: TrainConfig
    refine: RefineConfig
    export: ExportConfig
    eval: EvalConfig


@dataclass
class RunOptions:
    """What `distill run` was asked to do beyond the stage settings."""

    root: Path
    test: Path | None = None  # labelled test JSONL; None: the generated test split
    force: bool = False  # redo train/export/eval even when up to date
    skip_teacher_eval: bool = False
    show_errors: int = 10  # worst examples per target in RUN/report.html


def check_run(cfgs: StageConfigs, opts: RunOptions) -> list[str]:
    """Every check that needs no teacher, up front; returns the test inputs to exclude.

    A typo in any stage's settings must fail in a second, not after the teacher has run.
    """
    if opts.show_errors < 0:
        raise UserError(f"--show-errors: must be >= 0 (got {opts.show_errors})")
    check_generate(cfgs.generate)
    check_train(cfgs.train)
    check_eval(cfgs.eval)
    if cfgs.refine.rounds:
        check_refine(cfgs.refine, cfgs.generate)
    if cfgs.train.rationale_weight > 0 and not cfgs.generate.chain_of_thought:
        raise UserError(
            "--rationale-weight: the rationales come from the teacher's reasoning; add "
            "--chain-of-thought (or [generate] chain_of_thought = true), or set it to 0"
        )
    return [r["input"] for r in read_jsonl(opts.test)] if opts.test else []


def run_pipeline(
    task: TaskSpec, cfgs: StageConfigs, opts: RunOptions, log: Callable[[str], None] = print
) -> list[EvalReport]:
    """Run the stages in order, skipping those already done with the same inputs.

    Returns the evaluation reports (student ONNX, student torch, teacher unless skipped) and
    writes them to RUN/report.json, the comparison table to RUN/report.md and the page a person
    reads (table, charts, data, worst errors) to RUN/report.html.
    """
    from distill.stages.report import write_run_report

    exclude = check_run(cfgs, opts)
    cfgs = _no_generated_test_when_given(cfgs, opts, log)
    run = _Pipeline(task, cfgs, opts, RunState(opts.root / STATE_FILE, force=opts.force), log)
    data_dir = opts.root / "data"
    log(
        f"\n== generate: {cfgs.generate.num_examples or 'default number of'} examples from teacher "
        f"'{cfgs.teacher.teacher}' -> {data_dir}"
    )
    manifest = generate_data(task, cfgs.generate, cfgs.teacher, data_dir, exclude_inputs=exclude)
    if line := summary_line(manifest.get("calibration")):
        log(line)
    if manifest["stopped"] in ("batch_pending", "cancelled"):  # the data is not all there yet
        raise UserError(f"generate: {manifest['message']}; then rerun `distill run`")
    model_dir = run.train(data_dir)
    if cfgs.refine.rounds:
        run.refine(exclude)
    onnx_dir = run.export(model_dir)
    reports = run.evaluate(onnx_dir, model_dir, opts.test or held_out_test(data_dir, log))
    log(f"wrote {write_run_report(opts.root, opts.show_errors)}")
    return reports


def _no_generated_test_when_given(
    cfgs: StageConfigs, opts: RunOptions, log: Callable[[str], None]
) -> StageConfigs:
    """With `--test FILE` the table is scored on FILE, so a generated test split would only take
    paid examples (up to a quarter of a small run) away from training: hold none out."""
    from distill.generate.config import NO_TEST_SPLIT

    gen = cfgs.generate
    if opts.test is None or all(getattr(gen, k) == v for k, v in NO_TEST_SPLIT.items()):
        return cfgs
    log(f"--test {opts.test}: no test split is held out of the generated data (all of it trains)")
    gen = dataclasses.replace(gen, **NO_TEST_SPLIT)
    return dataclasses.replace(cfgs, generate=gen)


# Below this many test rows one disagreement moves a score by more than 2 points: the table
# says so instead of presenting its confidence intervals as meaningful.
MIN_TEST_ROWS = 50


def held_out_test(data_dir: Path, log: Callable[[str], None]) -> Path:
    """The generated test split (never trained on, nor used for early stopping or the gate).

    With `test_fraction = 0` there is none: the validation split stands in, with a warning that
    it picked the best epoch and gated int8, so the scores are optimistic.
    """
    test = data_dir / "test.jsonl"
    if test.is_file() and test.stat().st_size:
        return test
    log(
        "warning: no generated test split (test_fraction = 0): scoring on validation.jsonl, "
        "which chose the best epoch and gated int8 (optimistic); pass --test FILE for real data"
    )
    return data_dir / "validation.jsonl"


class RunState:
    """Fingerprints of finished stages (RUN/run_state.json), so a rerun redoes only what changed."""

    def __init__(self, path: Path, force: bool) -> None:
        self.path = path
        self.force = force
        self.done: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}

    def fresh(self, stage: str, fingerprint: str, artefact: Path) -> bool:
        """True when `stage` finished with this fingerprint and its artefact is still there."""
        return not self.force and artefact.exists() and self.done.get(stage) == fingerprint

    def mark(self, stage: str, fingerprint: str) -> None:
        """Record a finished stage (written at once: a later crash keeps it)."""
        self.done[stage] = fingerprint
        atomic_write_json(self.path, self.done)


def fingerprint(*parts: Any) -> str:
    """xxh3 of the parts: a Path by its file's bytes, anything else by its JSON."""
    h = xxhash.xxh3_128()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.read_bytes() if part.is_file() else str(part).encode())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass
class _Pipeline:
    """One `distill run`: the stages after generation, each skipped when up to date."""

    task: TaskSpec
    cfgs: StageConfigs
    opts: RunOptions
    state: RunState
    log: Callable[[str], None]

    def train(self, data_dir: Path) -> Path:
        """RUN/model from RUN/data (distill.stages.train), unless data and settings are unchanged."""
        from distill.stages.train import with_registered_extra_data

        cfg = with_registered_extra_data(self.cfgs.train, data_dir)
        model_dir = self.opts.root / "model"
        train, val = data_dir / "train.jsonl", data_dir / "validation.jsonl"
        fp = fingerprint(dataclasses.asdict(cfg), self.task.instruction, train, val)
        if self.state.fresh("train", fp, model_dir / META_FILE):
            self.log(f"\n== train: {model_dir} is up to date (same data and settings), skipping")
            return model_dir
        self.log(f"\n== train: student '{cfg.student}' -> {model_dir}")
        train_model(self.task, cfg, data_dir, model_dir, data_flag="--out")
        self.state.done.pop("refine", None)  # a new model: earlier rounds refined the old one
        self.state.mark("train", fp)
        return model_dir

    def refine(self, exclude: list[str]) -> None:
        """Active rounds on RUN/model (distill.stages.refine), unless done with these settings
        on this trained model; the rounds themselves resume where a killed run stopped."""
        from distill.stages.refine import refine_model

        cfg = self.cfgs.refine
        fp = fingerprint(dataclasses.asdict(cfg), self.state.done.get("train"))
        manifest = self.opts.root / "refine" / "manifest.json"
        if self.state.fresh("refine", fp, manifest):
            self.log("\n== refine: rounds already done with these settings, skipping")
            return
        self.log(f"\n== refine: up to {cfg.rounds} active round(s) on {self.opts.root / 'model'}")
        refine_model(
            self.task, cfg, self.cfgs.teacher, self.opts.root, exclude_inputs=exclude, log=self.log
        )
        self.state.mark("refine", fp)

    def model_mark(self) -> list[str | None]:
        """What RUN/model is: the train fingerprint, and the refine one when rounds ran."""
        refined = self.state.done.get("refine")
        return [self.state.done.get("train"), *([refined] if refined else [])]

    def export(self, model_dir: Path) -> Path:
        """RUN/onnx from RUN/model (distill.stages.export), unless the model and settings are
        unchanged. A failed int8 gate keeps fp32 and the run goes on with it."""
        onnx_dir = self.opts.root / "onnx"
        cfg = self.cfgs.export
        fp = fingerprint(dataclasses.asdict(cfg), *self.model_mark())
        if self.state.fresh("export", fp, onnx_dir / META_FILE):
            self.log(f"\n== export: {onnx_dir} is up to date, skipping")
            return onnx_dir
        self.log(f"\n== export: {model_dir} -> {onnx_dir} (quantize={cfg.quantize})")
        outcome = export_student(model_dir, onnx_dir, cfg)
        if outcome.failure:
            self.log(f"warning: {outcome.failure}; continuing with the fp32 ONNX model")
        if outcome.report.get("gate"):
            self.log(f"quality gate: {json.dumps(outcome.report['gate'])}")
        self.state.mark("export", fp)
        return onnx_dir

    def evaluate(self, onnx_dir: Path, model_dir: Path, test_path: Path) -> list[EvalReport]:
        """Score each target, reusing a previous report whose fingerprint still matches."""
        if not test_path.is_file():
            raise UserError(f"--test: {test_path} not found (no held-out split was written)")
        self.log(f"\n== eval: student vs teacher on {test_path}")
        report_path = self.opts.root / REPORT_JSON
        previous = _previous_reports(report_path)
        reports, marks = [], {}
        for target, fp in self._eval_targets(onnx_dir, model_dir, test_path):
            key = f"eval {target}"
            if target in previous and self.state.fresh(key, fp, report_path):
                self.log(f"eval: {target}: same model, data and settings, reusing its scores")
                reports.append(previous[target])
                continue
            reports.append(self._score(target, test_path))
            marks[key] = fp
        notes = eval_notes(reports, teacher_labels=self.opts.test is None)
        _write_reports(self.opts.root, test_path, reports, notes, self.log)
        for key, fp in marks.items():  # only once the reports they stand for are on disk
            self.state.mark(key, fp)
        return reports

    def _score(self, target: str, test_path: Path) -> EvalReport:
        teacher_cfg = self.cfgs.teacher if target.startswith("teacher:") else None
        return evaluate_one(
            target, test_path, task=self.task, cfg=self.cfgs.eval, teacher_cfg=teacher_cfg,
            flag="eval",
        )  # fmt: skip

    def _eval_targets(
        self, onnx_dir: Path, model_dir: Path, test_path: Path
    ) -> list[tuple[str, str]]:
        """(target, fingerprint) for the ONNX student, the torch student and the teacher."""
        shared = (dataclasses.asdict(self.cfgs.eval), test_path)
        targets = [
            (str(onnx_dir), fingerprint(*shared, self.state.done.get("export"))),
            (str(model_dir), fingerprint(*shared, *self.model_mark())),
        ]
        if not self.opts.skip_teacher_eval:
            task = self.task
            demos = [[d.input, d.output] for d in task.demonstrations]
            teacher = dataclasses.asdict(self.cfgs.teacher)
            fp = fingerprint(*shared, teacher, task.name, task.instruction, demos)
            targets.append((f"teacher:{self.cfgs.teacher.teacher}", fp))
        return targets


def _previous_reports(path: Path) -> dict[str, EvalReport]:
    """Reports of the last run by target ({} when there is none or it is unreadable)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return {r["target"]: r for r in saved["reports"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # nothing reusable: every target is scored again


def _write_reports(
    root: Path, test_path: Path, reports: list[EvalReport], notes: str, log: Callable[[str], None]
) -> None:
    from distill.evaluation.reports import compare_markdown, paired_markdown

    table = compare_markdown(reports) + paired_markdown(reports) + notes
    atomic_write_json(root / REPORT_JSON, {"test": str(test_path), "reports": reports})
    atomic_write_text(root / REPORT_MD, table + "\n")
    add_eval_to_cards(root, test_path, table)
    log(table)


def add_eval_to_cards(root: Path, test_path: Path, table: str) -> list[Path]:
    """Put the student-vs-teacher table into the model cards of RUN/model and RUN/onnx (a
    marked section, replaced on every evaluation); returns the cards updated."""
    body = (
        "## Student vs teacher\n\n"
        f"Scored by `distill run` on `{test_path}` (also in {REPORT_MD} beside this folder).\n\n"
        + table
    )
    updated = []
    for card in (root / "model" / CARD_FILE, root / "onnx" / CARD_FILE):
        if card.is_file():
            text = replace_section(card.read_text(encoding="utf-8"), "eval", body)
            atomic_write_text(card, text)
            updated.append(card)
    return updated


def eval_notes(reports: list[EvalReport], *, teacher_labels: bool) -> str:
    """What the reader must know about the test set under the table ("" when nothing)."""
    notes = []
    n = min((r["n"] for r in reports), default=0)
    if n < MIN_TEST_ROWS:
        notes.append(
            f"only {n} test rows (< {MIN_TEST_ROWS}): one disagreement moves a score by "
            f"{100 / max(n, 1):.1f} points, so the CIs above decide nothing; use more examples "
            "or --test FILE"
        )
    if teacher_labels:
        notes.append(
            "references are the teacher's own labels (no --test given): the teacher row measures "
            "its self-agreement, not its accuracy"
        )
    return "".join(f"\nnote: {line}\n" for line in notes)

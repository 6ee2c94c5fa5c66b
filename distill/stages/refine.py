"""The refine stage: active rounds on a run directory that has data/ and model/ (see
distill/refine). Called by `distill refine` and by `distill run --rounds R` alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.files import read_json_object
from distill.errors import UserError

if TYPE_CHECKING:
    from distill.generate.config import GenerateConfig
    from distill.refine.config import RefineConfig
    from distill.task import TaskSpec
    from teachers.config import TeacherConfig


def refine_model(
    task: TaskSpec,
    cfg: RefineConfig,
    teacher_cfg: TeacherConfig,
    root: Path,
    *,
    exclude_inputs: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) `cfg.rounds` rounds on RUN=`root`; returns RUN/refine/manifest.json.

    Generate's settings come from RUN/data/manifest.json (what made the data, so label
    requests are generate's own) and the training settings from RUN/model/metrics.json.
    """
    from distill.generate.run import run_rules
    from distill.refine.asks import LabelPlan, generate_label_indices
    from distill.refine.rounds import Context, run_rounds

    root = Path(root)
    data = root / "data"
    gen_cfg = generate_settings(data)
    pool_path = pool_inputs_path(cfg, gen_cfg)
    plan = LabelPlan(
        gen_cfg,
        run_rules(task, gen_cfg),
        task.instruction,
        label_demos(task, gen_cfg, data),
        generate_label_indices(data),
    )
    test = data / "test.jsonl"
    tests = [r["input"] for r in _rows(test)] if test.is_file() and test.stat().st_size else []
    protected = [d.input for d in task.demonstrations] + tests + list(exclude_inputs or [])
    ctx = Context(
        task=task,
        cfg=cfg,
        teacher_cfg=teacher_cfg,
        root=root,
        plan=plan,
        pool_inputs=[r["input"] for r in _rows(Path(pool_path))],
        pool_path=pool_path,
        protected=protected,
        metric=_metric(root / "model"),
        log=log,
    )
    return run_rounds(ctx)


def label_demos(task: TaskSpec, gen_cfg: GenerateConfig, data: Path) -> list[tuple[str, str]]:
    """The demonstrations generate's label prompts showed: with chain of thought, each with
    the rationale generate saved (so the prompts, and the cache keys, are generate's)."""
    from distill.generate.rationale import cot_demos, known_rationales

    demos = [(d.input, d.output) for d in task.demonstrations]
    if not gen_cfg.chain_of_thought:
        return demos
    rationales = known_rationales(task.demonstrations, data) or [""] * len(demos)
    return cot_demos(demos, rationales)


def _rows(path: Path) -> list[dict[str, Any]]:
    from common.jsonl import read_jsonl

    return read_jsonl(path, required=("input",))


def generate_settings(data: Path) -> GenerateConfig:
    """The GenerateConfig that wrote RUN/data (its manifest's settings)."""
    from distill.generate.config import GenerateConfig

    path = data / "manifest.json"
    if not path.is_file():
        raise UserError(f"--out: {data} has no manifest.json (run `distill generate` first)")
    settings = read_json_object(path).get("settings", {})
    known = {f.name for f in dataclasses.fields(GenerateConfig)}
    return GenerateConfig(**{k: v for k, v in settings.items() if k in known})


def check_refine(cfg: RefineConfig, gen_cfg: GenerateConfig) -> None:
    """What `distill run` checks before any teacher call: the rounds have a pool file."""
    pool_inputs_path(cfg, gen_cfg)


def pool_inputs_path(cfg: RefineConfig, gen_cfg: GenerateConfig) -> str:
    """--pool-inputs, else generate's --inputs (label mode: the inputs it did not label yet
    are the natural pool); else a one-line error: a round probes the student with real inputs,
    and teacher-written ones would only ask it about the training distribution again."""
    path = cfg.pool_inputs or (gen_cfg.inputs if gen_cfg.resolved_mode == "label" else None)
    if not path:
        raise UserError(
            "--pool-inputs / [refine] pool_inputs: needed (a JSONL file of unlabelled inputs, "
            "field 'input', that the rounds probe the student with)"
        )
    if not Path(path).is_file():
        raise UserError(f"--pool-inputs: {path}: file not found")
    return path


def _metric(model_dir: Path) -> str:
    """The validation metric rounds are compared on: the one that picked the best epoch."""
    path = model_dir / "metrics.json"
    if not path.is_file():
        raise UserError(f"--out: {model_dir} has no metrics.json (run `distill train` first)")
    return read_json_object(path).get("settings", {}).get("metric_for_best", "chrf")

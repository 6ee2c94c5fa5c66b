"""The export stage: a trained student dir -> an ONNX dir (int8 behind the quality gate).

Held-out pairs for the gate: the given JSONL file, else RUN/data/validation.jsonl beside the
model dir, else the `heldout` list in the model dir's distill.json; then topped up with the
inputs of RUN/data/train.jsonl (int8-vs-fp32 agreement needs no labels), max_heldout in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.jsonl import read_jsonl
from common.meta import META_FILE, read_meta
from distill.errors import UserError

if TYPE_CHECKING:
    from exports.card import CardFacts
    from exports.config import ExportConfig


@dataclass
class ExportOutcome:
    """What an export produced: its report, where the gate's pairs came from, and why the
    gate failed (None when it passed or was skipped; the directory is written either way)."""

    report: dict[str, Any]
    heldout_source: str
    failure: str | None = None


def heldout_pairs(
    model_dir: Path, heldout: str | Path | None, cap: int
) -> tuple[list[tuple[str, str]], str]:
    """Held-out (input, output) pairs for the gate and where they came from."""
    if heldout:
        rows = read_jsonl(heldout)
        return [(r["input"], r["output"]) for r in rows][:cap], str(heldout)
    default = model_dir.parent / "data" / "validation.jsonl"
    if default.is_file() and default.stat().st_size:  # empty when the data was too small
        rows = read_jsonl(default)
        return [(r["input"], r["output"]) for r in rows][:cap], str(default)
    listed = read_meta(model_dir).heldout
    pairs = [
        (r["input"], r["output"])
        for r in listed
        if isinstance(r, dict) and {"input", "output"} <= set(r)
    ]
    return pairs[:cap], f"{model_dir / META_FILE} (heldout)" if pairs else "none"


def training_pairs(model_dir: Path) -> list[tuple[str, str]]:
    """Training pairs next to the model dir (RUN/data/train.jsonl): extra gate rows.

    Their outputs are the references both precisions are scored against: the gate compares
    int8 with fp32 on the same targets, so the pairs need not be held out.
    """
    path = model_dir.parent / "data" / "train.jsonl"
    if not path.is_file() or not path.stat().st_size:
        return []
    return [(r["input"], r["output"]) for r in read_jsonl(path)]


def card_facts(model_dir: Path) -> CardFacts:
    """What the ONNX model card needs beyond the model dir: license and teacher from the
    generate manifest beside it (RUN/data), the base model from the student's name."""
    from distill.stages.train import model_card_facts, read_manifest
    from students.presets import base_model_id

    manifest = read_manifest(model_dir.parent / "data")
    facts: CardFacts = {"teacher": model_card_facts(manifest)["teacher"]}
    if manifest.license:
        facts["license"] = manifest.license
    if base := base_model_id(read_meta(model_dir).student):
        facts["base_model"] = base
    return facts


def export_student(
    model_dir: Path, out: Path, cfg: ExportConfig, heldout: str | Path | None = None
) -> ExportOutcome:
    """Export, quantise and gate `model_dir` into `out`; a bad model dir is a UserError."""
    from exports.pipeline import ExportError, export_model

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / META_FILE).is_file():
        raise UserError(
            f"--model: {model_dir} has no {META_FILE} (expected a dir from `distill train`)"
        )
    pairs, source = heldout_pairs(model_dir, heldout, cfg.max_heldout)
    try:
        report = export_model(
            model_dir,
            out,
            cfg,
            heldout=pairs,
            training=training_pairs(model_dir),
            card=card_facts(model_dir),
        )
        return ExportOutcome(report, source)
    except ExportError as exc:
        return ExportOutcome(exc.report, source, failure=str(exc))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--model: {exc}") from None

"""`export_model`: the export pipeline, a trained student dir -> an ONNX dir (fp32 + int8).

Steps: export the three graphs with torch.onnx (dynamo, `onnx_export`), copy config, tokenizer
and distill.json, quantise (`quantize`), then run the quality gate (`gate`): when it fails for
int8, the int8 graphs are removed and fp32 kept (and without gate inputs int8 never ships). The directory is built under a temporary name
and renamed into place; `export_report.json` records every number and which precision to load,
and `README.md` is the model card (exports/card.py) the Hugging Face hub reads.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

from common.cards import CARD_FILE
from common.files import atomic_dir, files_size
from common.meta import META_FILE, read_meta
from exports.card import CardFacts, onnx_card
from exports.config import ExportConfig
from exports.gate import GateReport, check_fp32, judge_int8, no_inputs
from exports.layout import CONFIG_FILES, GRAPHS, REPORT_FILE, TOKENIZER_FILES, graph_file


class ExportError(Exception):
    """The export ran but failed a check (fp32 parity or the int8 quality gate)."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


def export_model(
    model_dir: Path,
    out_dir: Path,
    cfg: ExportConfig,
    *,
    heldout: list[tuple[str, str]] | None = None,
    training: list[tuple[str, str]] | None = None,
    unlabelled: list[str] | None = None,
    card: CardFacts | None = None,
) -> ExportReport:
    """Export `model_dir` into `out_dir` (replaced only when complete); returns the report.

    The gate runs on `heldout` pairs first, then `training` pairs, then `unlabelled` inputs
    (no reference), `cfg.max_heldout` in all. Raises ExportError (with the directory written, fp32 kept) when a gate fails.
    `card`: facts for the model card (README.md) that the model dir does not hold.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / META_FILE).is_file():
        raise FileNotFoundError(
            f"{model_dir / META_FILE}: not found (not a model dir from distill train?)"
        )
    with atomic_dir(out_dir) as tmp:
        extra = [*(training or []), *((x, None) for x in unlabelled or [])]
        rows = _gate_rows(heldout or [], extra, cfg.max_heldout)
        report = _build(model_dir, tmp, cfg, rows)
        _write_card(tmp, report, card or {}, out_dir)
    if report["gate"]["status"] == "failed":
        raise ExportError(report["gate"]["reason"], report)
    return report


def _write_card(out: Path, report: ExportReport, facts: CardFacts, where: Path) -> None:
    """README.md: the model card (exports/card.py), written with the graphs it describes
    into the temporary directory `out` that becomes `where`."""
    text = onnx_card(out, report, read_meta(out), facts, where)
    (out / CARD_FILE).write_text(text, encoding="utf-8")


def _gate_rows(
    heldout: list[tuple[str, str]], extra: list[tuple[str, str | None]], cap: int
) -> list[tuple[str, str | None]]:
    """Held-out pairs first, then distinct extra rows (reference None if unlabelled), `cap` in all."""
    rows: list[tuple[str, str | None]] = list(heldout[:cap])
    seen = {x for x, _ in rows}
    for x, y in extra:
        if len(rows) >= cap:
            break
        if x not in seen:
            seen.add(x)
            rows.append((x, y))
    return rows


class ExportReport(TypedDict):
    """export_report.json: every number of an export and which precision the runtime loads."""

    model_dir: str
    settings: dict[str, Any]  # the ExportConfig
    graphs: dict[str, dict[str, Any]]  # "fp32" / "int8" -> graph -> op counts (and quant stats)
    gate: GateReport
    runtime_precision: str  # "int8" only when quantised and the gate let int8 through
    int8_scales: str | None  # the shipped int8's scales: per_tensor or per_channel (None: fp32)
    sizes: dict[str, Any]  # bytes of safetensors, fp32 and int8 graphs; fp32/int8 ratio
    seconds: dict[str, float]  # export, quantize, gate


def _build(
    model_dir: Path, out: Path, cfg: ExportConfig, heldout: list[tuple[str, str | None]]
) -> ExportReport:
    """Export, quantise and gate into the (temporary) directory `out`; write the report."""
    from exports.quantize import op_counts

    t0 = time.perf_counter()
    model, paths = _export_fp32(model_dir, out)
    graphs = {"fp32": {g: op_counts(paths[g]) for g in GRAPHS}}
    t_export = time.perf_counter() - t0
    scales = "per_channel" if cfg.int8_scales == "per_channel" else "per_tensor"
    if cfg.quantize == "int8":
        graphs["int8"] = _quantize_all(paths, out, cfg, scales == "per_channel")
    t_quant = time.perf_counter() - t0 - t_export
    fp32 = check_fp32(model, out, cfg, heldout) if heldout else None
    gate = judge_int8(fp32, out, cfg) if fp32 else no_inputs(cfg)
    if fp32 and _retry_per_channel(cfg, gate):
        first = gate
        scales = "per_channel"
        graphs["int8"] = _quantize_all(paths, out, cfg, per_channel=True)
        gate = judge_int8(fp32, out, cfg)  # against the same fp32 outputs: not recomputed
        gate["per_tensor_try"] = {k: first[k] for k in ("reason", "decision") if k in first}
    runtime = _keep_int8_or_remove(out, cfg, gate)
    report: ExportReport = {
        "model_dir": str(model_dir),
        "settings": asdict(cfg),
        "graphs": graphs,
        "gate": gate,
        "runtime_precision": runtime,
        "int8_scales": scales if runtime == "int8" else None,
        "sizes": _sizes(model_dir, out),
        "seconds": {
            "export": round(t_export, 2),
            "quantize": round(t_quant, 2),
            "gate": round(time.perf_counter() - t0 - t_export - t_quant, 2),
        },
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _export_fp32(model_dir: Path, out: Path) -> tuple[Any, dict[str, Path]]:
    """The torch model and its three fp32 graphs (nodes named by module), side files copied."""
    from transformers import AutoModelForSeq2SeqLM

    from exports.onnx_export import export_graphs
    from exports.quantize import name_nodes_by_module

    # Eager attention: SDPA's data-dependent `is_causal` does not trace with dynamic lengths.
    model = AutoModelForSeq2SeqLM.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    paths = export_graphs(model, out)
    for p in paths.values():
        name_nodes_by_module(p)
    _copy_side_files(model_dir, out)
    return model, paths


def _retry_per_channel(cfg: ExportConfig, gate: GateReport) -> bool:
    """int8_scales auto: per-tensor int8 failed the quality rule itself (fp32 was faithful)."""
    return (
        cfg.quantize == "int8"
        and cfg.int8_scales == "auto"
        and not gate["int8_ok"]
        and "decision" in gate
    )


def _quantize_all(
    paths: dict[str, Path], out: Path, cfg: ExportConfig, per_channel: bool
) -> dict[str, Any]:
    """int8 twins of the three graphs; returns each one's quantisation report."""
    from exports.quantize import quantize_graph

    return {
        g: quantize_graph(
            paths[g],
            out / graph_file(g, "int8"),
            per_channel=per_channel,
            keep_fp32=cfg.keep_fp32,
            optimize=cfg.optimize,
        )
        for g in GRAPHS
    }


def _keep_int8_or_remove(out: Path, cfg: ExportConfig, gate: GateReport) -> str:
    """The precision the runtime loads; int8 graphs that failed the gate are deleted."""
    if cfg.quantize == "int8" and gate["int8_ok"]:
        return "int8"
    if cfg.quantize == "int8":
        for g in GRAPHS:  # an int8 model that failed the gate must not be loadable by mistake
            (out / graph_file(g, "int8")).unlink(missing_ok=True)
    return "fp32"


def _copy_side_files(model_dir: Path, out: Path) -> None:
    """Config, generation config, tokenizer files and distill.json travel with the graphs."""
    for name in (*CONFIG_FILES, *TOKENIZER_FILES, META_FILE):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    if not (out / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir / 'tokenizer.json'}: not found (the runtime needs it)")


def _sizes(model_dir: Path, out: Path) -> dict:
    fp32 = files_size([out / graph_file(g, "fp32") for g in GRAPHS])
    int8 = files_size([out / graph_file(g, "int8") for g in GRAPHS])
    st = files_size(sorted(model_dir.glob("*.safetensors")))
    return {
        "safetensors_bytes": st,
        "onnx_fp32_bytes": fp32,
        "onnx_int8_bytes": int8,
        "fp32_over_int8": round(fp32 / int8, 2) if int8 else None,
    }

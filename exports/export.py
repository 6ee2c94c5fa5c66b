"""`export_model`: a trained student dir -> an ONNX dir (fp32 + int8) with a quality gate.

Steps: export the three graphs with torch.onnx (dynamo), copy config/tokenizer/distill.json,
quantise, then gate: on held-out inputs (topped up with unlabelled ones) fp32 ONNX greedy must
equal PyTorch greedy token for token, and int8 must pass `exports.int8_rule.decide` (an exact
binomial bound on how often it may be worse than fp32, within `max_quality_drop`), or the int8
graphs are removed and fp32 kept. Without gate inputs int8 is never shipped (fail closed). The directory is built under a temporary name and
renamed into place; `export_report.json` records every number and which precision to load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from exports.config import ExportConfig
from exports.layout import (
    CONFIG_FILES,
    DISTILL_FILE,
    GRAPHS,
    REPORT_FILE,
    TOKENIZER_FILES,
    graph_file,
)


class ExportError(Exception):
    """The export ran but failed a check (fp32 parity or the int8 quality gate)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def dir_size(paths: list[Path]) -> int:
    """Total bytes of the files that exist among `paths`."""
    return sum(p.stat().st_size for p in paths if p.is_file())


def export_model(
    model_dir: Path,
    out_dir: Path,
    cfg: ExportConfig,
    *,
    heldout: list[tuple[str, str]] | None = None,
    unlabelled: list[str] | None = None,
) -> dict:
    """Export `model_dir` into `out_dir` (replaced only when complete); returns the report.

    The gate runs on `heldout` pairs first, then `unlabelled` inputs, `cfg.max_heldout` in
    all. Raises ExportError (with the directory written, fp32 kept) when a gate fails.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / DISTILL_FILE).is_file():
        raise FileNotFoundError(
            f"{model_dir / DISTILL_FILE}: not found (not a model dir from distill train?)"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        rows = _gate_rows(heldout or [], unlabelled or [], cfg.max_heldout)
        report = _build(model_dir, tmp, cfg, rows)
        _swap_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if report["gate"]["status"] == "failed":
        raise ExportError(report["gate"]["reason"], report)
    return report


def _gate_rows(
    heldout: list[tuple[str, str]], unlabelled: list[str], cap: int
) -> list[tuple[str, str | None]]:
    """Labelled pairs first, then distinct unlabelled inputs (reference None), `cap` in all."""
    rows: list[tuple[str, str | None]] = list(heldout[:cap])
    seen = {x for x, _ in rows}
    for x in unlabelled:
        if len(rows) >= cap:
            break
        if x not in seen:
            seen.add(x)
            rows.append((x, None))
    return rows


def _swap_into_place(tmp: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _build(
    model_dir: Path, out: Path, cfg: ExportConfig, heldout: list[tuple[str, str | None]]
) -> dict:
    from transformers import AutoModelForSeq2SeqLM

    from exports.onnx_export import export_graphs
    from exports.quantize import name_nodes_by_module, op_counts, quantize_graph

    t0 = time.perf_counter()
    # Eager attention: SDPA's data-dependent `is_causal` does not trace with dynamic lengths.
    model = AutoModelForSeq2SeqLM.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    paths = export_graphs(model, out)
    for p in paths.values():
        name_nodes_by_module(p)
    _copy_side_files(model_dir, out)
    report: dict[str, Any] = {"model_dir": str(model_dir), "settings": _settings(cfg), "graphs": {}}
    report["graphs"]["fp32"] = {g: op_counts(paths[g]) for g in GRAPHS}
    t_export = time.perf_counter() - t0
    if cfg.quantize == "int8":
        report["graphs"]["int8"] = {
            g: quantize_graph(
                paths[g],
                out / graph_file(g, "int8"),
                per_channel=cfg.per_channel,
                keep_fp32=cfg.keep_fp32,
                optimize=cfg.optimize,
            )
            for g in GRAPHS
        }
    t_quant = time.perf_counter() - t0 - t_export
    report["gate"] = _gate(model, out, cfg, heldout)
    report["runtime_precision"] = (
        "int8" if cfg.quantize == "int8" and report["gate"]["int8_ok"] else "fp32"
    )
    if cfg.quantize == "int8" and report["runtime_precision"] == "fp32":
        for g in GRAPHS:  # an int8 model that failed the gate must not be loadable by mistake
            (out / graph_file(g, "int8")).unlink(missing_ok=True)
    report["sizes"] = _sizes(model_dir, out)
    report["seconds"] = {
        "export": round(t_export, 2),
        "quantize": round(t_quant, 2),
        "gate": round(time.perf_counter() - t0 - t_export - t_quant, 2),
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _settings(cfg: ExportConfig) -> dict:
    from dataclasses import asdict

    return asdict(cfg)


def _copy_side_files(model_dir: Path, out: Path) -> None:
    """Config, generation config, tokenizer files and distill.json travel with the graphs."""
    for name in (*CONFIG_FILES, *TOKENIZER_FILES, DISTILL_FILE):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
    if not (out / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{model_dir / 'tokenizer.json'}: not found (the runtime needs it)")


def _sizes(model_dir: Path, out: Path) -> dict:
    fp32 = dir_size([out / graph_file(g, "fp32") for g in GRAPHS])
    int8 = dir_size([out / graph_file(g, "int8") for g in GRAPHS])
    st = dir_size(sorted(model_dir.glob("*.safetensors")))
    return {
        "safetensors_bytes": st,
        "onnx_fp32_bytes": fp32,
        "onnx_int8_bytes": int8,
        "fp32_over_int8": round(fp32 / int8, 2) if int8 else None,
    }


def _gate(model: Any, out: Path, cfg: ExportConfig, rows: list[tuple[str, str | None]]) -> dict:
    """fp32 parity (token for token vs PyTorch greedy), then the int8 decision rule.

    Fails closed: with no inputs, int8 is not shipped (fp32 parity cannot be checked either).
    """
    from exports.int8_rule import decide, rows_needed
    from exports.runtime import OnnxSeq2Seq

    if not rows:
        if cfg.quantize != "int8":
            return {"status": "skipped", "reason": "no gate inputs", "n": 0, "int8_ok": False}
        reason = (
            "no gate inputs (held-out pairs or training inputs) to compare int8 with fp32; "
            f"the int8 graphs were removed and fp32 kept (the rule needs at least "
            f"{rows_needed(cfg.max_quality_drop)} inputs)"
        )
        return {"status": "failed", "reason": reason, "n": 0, "int8_ok": False}
    inputs = [x for x, _ in rows]
    refs = [y for _, y in rows]
    labelled = [i for i, y in enumerate(refs) if y is not None]
    fp32 = OnnxSeq2Seq(out, precision="fp32")
    onnx_ids = fp32.generate_ids(inputs, batch_size=cfg.gate_batch_size)
    torch_ids = _torch_greedy(model, fp32, inputs, cfg.gate_batch_size)
    same = sum(a == b for a, b in zip(onnx_ids, torch_ids, strict=True))
    gate: dict[str, Any] = {
        "n": len(inputs),
        "n_labelled": len(labelled),
        "fp32_token_parity": same / len(inputs),
    }
    fp32_texts = fp32.tokenizer.decode_batch(onnx_ids, skip_special_tokens=True)
    if labelled:
        gate["fp32"] = quality([fp32_texts[i] for i in labelled], [refs[i] for i in labelled])
    if same != len(inputs):
        bad = next(i for i, (a, b) in enumerate(zip(onnx_ids, torch_ids, strict=True)) if a != b)
        reason = f"fp32 ONNX differs from PyTorch on {len(inputs) - same}/{len(inputs)} inputs (first: #{bad})"
        return {**gate, "status": "failed", "reason": reason, "int8_ok": False}
    if cfg.quantize != "int8":
        return {**gate, "status": "passed", "int8_ok": False}
    int8_texts = OnnxSeq2Seq(out, precision="int8").generate(inputs, batch_size=cfg.gate_batch_size)
    if labelled:
        gate["int8"] = quality([int8_texts[i] for i in labelled], [refs[i] for i in labelled])
        gate["int8_drop_points"] = round(
            max(gate["fp32"][k] - gate["int8"][k] for k in ("exact_match", "chrf_pp")), 3
        )
    gate["int8_agrees_with_fp32"] = sum(
        a == b for a, b in zip(int8_texts, fp32_texts, strict=True)
    ) / len(inputs)
    decision = decide(fp32_texts, int8_texts, refs, cfg.max_quality_drop)
    gate["decision"] = decision.as_dict()
    if not decision.passed:
        reason = (
            f"int8 may be worse than fp32 on {decision.possibly_worse}/{decision.n} gate inputs: "
            f"95% upper bound {decision.upper_bound_points:.2f} points > max_quality_drop "
            f"{cfg.max_quality_drop}; the int8 graphs were removed and fp32 kept"
        )
        return {**gate, "status": "failed", "reason": reason, "int8_ok": False}
    return {**gate, "status": "passed", "int8_ok": True}


def _torch_greedy(model: Any, runtime: Any, inputs: list[str], batch_size: int) -> list[list[int]]:
    """PyTorch greedy ids on exactly the token ids the runtime feeds (same batches, same padding)."""
    import torch

    meta = runtime.meta
    out: list[list[int]] = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch_size):
            ids, mask = runtime.encode(inputs[i : i + batch_size])
            gen = model.generate(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                max_new_tokens=int(meta.get("max_new_tokens", 64)),
                num_beams=1,
                do_sample=False,
            )  # (batch, 1 + generated)
            out += [_cut(row[1:].tolist(), int(meta["eos_token_id"])) for row in gen]
    return out


def _cut(row: list[int], eos: int) -> list[int]:
    """Ids before the first EOS (what follows is padding of finished rows)."""
    return row[: row.index(eos)] if eos in row else row


def quality(predictions: list[str], references: list[str]) -> dict:
    """Exact match (%) and corpus chrF++ (0-100) of predictions against references."""
    from sacrebleu.metrics import CHRF

    exact = (
        100.0
        * sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True))
        / max(1, len(references))
    )
    chrf = CHRF(word_order=2).corpus_score(predictions, [references]).score
    return {"exact_match": round(exact, 3), "chrf_pp": round(chrf, 3)}

"""The files of an exported ONNX directory and how to read its settings (stdlib only).

The layout is the one Optimum's `ORTModelForSeq2SeqLM` reads: `encoder_model.onnx`,
`decoder_model.onnx` (first step, no past), `decoder_with_past_model.onnx` (one step with the
KV cache), their int8 twins `*_quantized.onnx`, `config.json`, tokenizer files, plus our
`distill.json` (text template, special ids) and `export_report.json` (which precision passed
the quality gate). Kept import-light so the runtime and the exporter share one definition.
"""

from __future__ import annotations

from pathlib import Path

from common.files import read_json_object

GRAPHS = ("encoder_model", "decoder_model", "decoder_with_past_model")
REPORT_FILE = "export_report.json"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "spiece.model",
)
CONFIG_FILES = ("config.json", "generation_config.json")


def graph_file(graph: str, precision: str) -> str:
    """File name of one graph: `decoder_model.onnx` (fp32) or `decoder_model_quantized.onnx`."""
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision: must be 'fp32' or 'int8' (got {precision!r})")
    return f"{graph}.onnx" if precision == "fp32" else f"{graph}_quantized.onnx"


def resolve_precision(onnx_dir: Path, precision: str) -> str:
    """Which graphs to load: 'auto' means int8 when the gate passed and the files exist.

    The report's `runtime_precision` is the exporter's decision; without a report, int8 is
    used only if all three int8 graphs are there.
    """
    if precision in ("fp32", "int8"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision: must be 'auto', 'fp32' or 'int8' (got {precision!r})")
    report_path = onnx_dir / REPORT_FILE
    if report_path.is_file():
        return str(read_json_object(report_path).get("runtime_precision", "fp32"))
    has_int8 = all((onnx_dir / graph_file(g, "int8")).is_file() for g in GRAPHS)
    return "int8" if has_int8 else "fp32"

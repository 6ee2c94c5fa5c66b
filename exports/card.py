"""The model card of an exported directory (RUN/onnx/README.md), as the Hugging Face hub reads it.

YAML front matter (`huggingface_hub.ModelCard.load` parses it), then what the files are, the
precision the runtime loads and why (the quality gate's verdict and numbers from
export_report.json), the sizes, and three ways to run the model: the torch-free runtime,
`distill serve`, and plain onnxruntime (the graphs' inputs and outputs). Written into the export's
temporary directory, so it lands with the graphs or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from common.cards import front_matter, md_cell
from common.meta import META_FILE, StudentMeta
from exports.layout import CONFIG_FILES, GRAPHS, REPORT_FILE, TOKENIZER_FILES, graph_file

if TYPE_CHECKING:
    from exports.pipeline import ExportReport


class CardFacts(TypedDict, total=False):
    """What the exporter cannot know from the model dir; the caller (distill) fills it in."""

    license: str  # a hub license id; "unknown" when absent
    base_model: str  # the hub id the student was fine-tuned from
    teacher: str  # the teacher that wrote the training data
    datasets: list[str]  # the training data (a hub id or a local path)


GRAPH_ROLES = {
    "encoder_model": "encoder: input_ids, attention_mask (batch, src) -> last_hidden_state "
    "(batch, src, d)",
    "decoder_model": "decoder, first step: input_ids (batch, tgt), encoder_attention_mask, "
    "encoder_hidden_states -> logits (batch, tgt, vocab) and present.{i}.decoder/encoder.key/value",
    "decoder_with_past_model": "decoder, later steps: input_ids (batch, 1), "
    "encoder_attention_mask, past_key_values.{i}.decoder/encoder.key/value -> logits and "
    "present.{i}.decoder.key/value (the cross-attention cache of the first step is reused)",
}


def onnx_card(
    out: Path, report: ExportReport, meta: StudentMeta, facts: CardFacts, where: Path | None = None
) -> str:
    """The card's text for the export directory `out` (its files are listed as they are);
    `where` is where the directory will be (its name in the code shown), default `out`."""
    precision = report["runtime_precision"]
    data = {
        "library_name": "onnx",
        "pipeline_tag": "text2text-generation",
        "license": facts.get("license") or "unknown",
        "base_model": facts.get("base_model"),
        "datasets": facts.get("datasets"),
        "tags": ["onnx", "onnxruntime", precision, "seq2seq", "distillation", "distill"],
    }
    title = meta.task_name or "student"
    parts = [
        front_matter(data),
        f"# {title}: ONNX student ({precision})\n",
        _intro(meta, facts),
        _files(out, report),
        _gate(report),
        _sizes(report),
        _usage(where or out, meta),
    ]
    return "\n".join(parts)


def _intro(meta: StudentMeta, facts: CardFacts) -> str:
    lines = [
        "A seq2seq student distilled from a teacher LLM by `distill` and exported to ONNX "
        "(encoder and decoder with a KV cache; runs on a CPU with onnxruntime, tokenizers and "
        "numpy, no torch).",
        "",
    ]
    if meta.instruction:
        lines += [f"> {meta.instruction}", ""]
    facts_rows = [
        ("student", meta.student or meta.model_type or "unknown"),
        ("parameters", f"{meta.num_parameters:,}" if meta.num_parameters else "unknown"),
        ("base model", facts.get("base_model") or "unknown"),
        ("teacher", facts.get("teacher") or "unknown"),
        ("max new tokens", meta.max_new_tokens),
        ("license", facts.get("license") or "unknown"),
    ]
    lines += [f"- {k}: {v}" for k, v in facts_rows]
    return "\n".join(lines) + "\n"


def _files(out: Path, report: ExportReport) -> str:
    rows = []
    for precision in ("fp32", "int8"):
        for g in GRAPHS:
            path = out / graph_file(g, precision)
            if path.is_file():
                rows.append((path.name, f"{precision} {g.replace('_model', '')} graph", path))
    side = [
        (REPORT_FILE, "every number of the export: settings, op counts, sizes, the gate"),
        (META_FILE, "source-text template, special token ids, decoding limit"),
        *((name, "model configuration") for name in CONFIG_FILES),
        *((name, "tokenizer") for name in TOKENIZER_FILES),
    ]
    rows += [(name, what, out / name) for name, what in side if (out / name).is_file()]
    lines = ["## Files", "", "| file | what | bytes |", "|---|---|---|"]
    lines += [f"| `{name}` | {what} | {path.stat().st_size:,} |" for name, what, path in rows]
    precision = report["runtime_precision"]
    lines += [
        "",
        f"The runtime loads **{precision}** (`runtime_precision` in {REPORT_FILE}): "
        + (
            "the int8 graphs passed the quality gate."
            if precision == "int8"
            else "int8 was not shipped (not quantised, or it did not pass the gate)."
        ),
        "",
    ]
    return "\n".join(lines)


def _gate(report: ExportReport) -> str:
    gate = report["gate"]
    rows: list[tuple[str, Any]] = [
        ("status", gate["status"]),
        ("gate inputs", gate["n"]),
        ("of which with a reference", gate.get("n_labelled", 0)),
        ("fp32 ONNX = PyTorch greedy, token for token", gate.get("fp32_token_parity")),
        ("int8 output = fp32 output", gate.get("int8_agrees_with_fp32")),
        ("int8 drop, worst metric (points)", gate.get("int8_drop_points")),
    ]
    for precision in ("fp32", "int8"):
        for metric, value in (gate.get(precision) or {}).items():
            rows.append((f"{precision} {metric}", value))
    decision = gate.get("decision") or {}
    rows += [(f"rule: {k}", v) for k, v in decision.items()]
    if gate.get("reason"):
        rows.append(("reason", gate["reason"]))
    lines = ["## Quality gate", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {md_cell(v)} |" for k, v in rows if v is not None]
    return "\n".join(lines) + "\n"


def _sizes(report: ExportReport) -> str:
    sizes = report["sizes"]
    rows = [
        ("PyTorch safetensors", sizes["safetensors_bytes"]),
        ("ONNX fp32 (3 graphs)", sizes["onnx_fp32_bytes"]),
        ("ONNX int8 (3 graphs)", sizes["onnx_int8_bytes"]),
    ]
    lines = ["## Sizes", "", "| | bytes |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in rows]
    if sizes.get("fp32_over_int8"):
        lines.append(f"| fp32 / int8 | {sizes['fp32_over_int8']} |")
    return "\n".join(lines) + "\n"


def _usage(out: Path, meta: StudentMeta) -> str:
    example = json.dumps({"inputs": ["..."]})
    return "\n".join(
        [
            "## Run it",
            "",
            "With the torch-free runtime (onnxruntime, tokenizers, numpy):",
            "",
            "```python",
            "from exports.runtime import OnnxSeq2Seq",
            "",
            f'model = OnnxSeq2Seq("{out}", threads=1)  # precision="auto": the gate\'s choice',
            'print(model.generate(["your input"], num_beams=1, max_new_tokens=None))',
            "```",
            "",
            "As an HTTP service (micro-batching, /healthz, /metrics):",
            "",
            "```bash",
            f"distill serve --model {out}",
            f"curl -s localhost:8000/v1/generate -d '{example}'",
            "```",
            "",
            "From plain onnxruntime: the three graphs use Optimum's `ORTModelForSeq2SeqLM` "
            "layout and names.",
            "",
            *(f"- `{g}`: {GRAPH_ROLES[g]}" for g in GRAPHS),
            "",
            "Greedy decoding: encode the source text ("
            + (f"`{meta.task_prefix}` followed by " if meta.task_prefix else "")
            + "`distill.json`'s `source_template` with "
            "the instruction and the input, through `tokenizer.json`"
            + (f", cut to {meta.max_source_length} tokens" if meta.max_source_length else "")
            + f"), start the decoder with token {meta.decoder_start_token_id}, run "
            "`decoder_model` once, then `decoder_with_past_model` one token at a time, feeding "
            "each step's `present.*` back as `past_key_values.*`, until token "
            f"{meta.eos_token_id} (end) or {meta.max_new_tokens} new tokens; padding is token "
            f"{meta.pad_token_id}.",
            "",
        ]
    )

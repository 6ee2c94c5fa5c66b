"""`distill export`: a trained student dir -> int8 ONNX with a quality gate.

    distill export --model runs/dates/model --out runs/dates/onnx
    distill export --model runs/dates/model --out runs/dates/onnx --quantize none
    distill export --model M --out O --heldout test.jsonl --keep-fp32 DenseReluDense.wo --int8-scales per_channel

Held-out inputs for the gate: --heldout FILE.jsonl, else RUN/data/validation.jsonl next to the
model dir, else the `heldout` list in the model dir's distill.json; then topped up with the
inputs of RUN/data/train.jsonl (int8-vs-fp32 agreement needs no labels), --max-heldout in all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distill.configs import add_config_args

HELP = "export a trained student to ONNX (encoder + decoder with KV cache), int8, quality-gated"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags: model dir, output dir, held-out data, task file; then the [export] settings."""
    from exports.config import ExportConfig

    parser.add_argument(
        "--model", required=True, help="model dir written by `distill train` (RUN/model)"
    )
    parser.add_argument("--out", help="ONNX dir to write (default: RUN/onnx next to the model dir)")
    parser.add_argument(
        "--heldout",
        help="JSONL with 'input'/'output' for the quality gate "
        "(default: RUN/data/validation.jsonl if it exists)",
    )
    parser.add_argument("--task", help="task TOML whose [export] table sets defaults")
    add_config_args(parser, ExportConfig)


def run(args: argparse.Namespace) -> int:
    """Export, quantise, gate; print the summary. Exit 1 when a gate fails (fp32 is kept)."""
    from distill.stages import stage_config
    from distill.stages.export import export_student
    from distill.task import load_task

    cfg = stage_config("export", load_task(args.task) if args.task else None, args)
    model_dir = Path(args.model)
    out = Path(args.out) if args.out else model_dir.parent / "onnx"
    outcome = export_student(model_dir, out, cfg, heldout=args.heldout)
    _print_summary(outcome.report, out, outcome.heldout_source)
    if outcome.failure:
        print(f"distill export: gate failed: {outcome.failure}")
        return 1
    return 0


def _print_summary(report: dict, out: Path, source: str) -> None:
    sizes, gate = report["sizes"], report["gate"]
    mb = lambda b: f"{b / 1e6:.1f} MB"  # noqa: E731
    print(f"wrote {out} (runtime loads {report['runtime_precision']})")
    print(
        f"  sizes: safetensors {mb(sizes['safetensors_bytes'])}, onnx fp32 {mb(sizes['onnx_fp32_bytes'])}, "
        f"int8 {mb(sizes['onnx_int8_bytes'])}"
    )
    print(
        f"  gate ({gate['n']} inputs, {gate.get('n_labelled', 0)} with references: held-out "
        f"from {source}, then training pairs): "
        f"{gate['status']}"
        + (f", fp32 token parity {gate['fp32_token_parity']:.3f}" if gate["n"] else "")
        + (f", int8 drop {gate['int8_drop_points']} points" if "int8_drop_points" in gate else "")
        + (
            f", int8 changed or possibly worse on {d['possibly_worse']}/{d['n']} "
            f"({d.get('metric', 'exact_match')} rule: 95% bound "
            f"{d['upper_bound_points']} <= {d['max_drop_points']}?)"
            if (d := gate.get("decision"))
            else ""
        )
    )
    if gate.get("reason"):
        print(f"  {gate['reason']}")

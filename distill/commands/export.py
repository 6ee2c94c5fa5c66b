"""`distill export`: a trained student dir -> int8 ONNX with a quality gate.

    distill export --model runs/dates/model --out runs/dates/onnx
    distill export --model runs/dates/model --out runs/dates/onnx --quantize none
    distill export --model M --out O --heldout test.jsonl --keep-fp32 DenseReluDense.wo --per-channel

Held-out inputs for the gate: --heldout FILE.jsonl, else RUN/data/validation.jsonl next to the
model dir, else the `heldout` list in the model dir's distill.json; then topped up with the
inputs of RUN/data/train.jsonl (int8-vs-fp32 agreement needs no labels), --max-heldout in all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.configs import add_config_args
from distill.errors import UserError

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


def heldout_pairs(
    model_dir: Path, heldout: str | None, cap: int
) -> tuple[list[tuple[str, str]], str]:
    """Held-out (input, output) pairs for the gate and where they came from."""
    from distill.io import read_jsonl

    if heldout:
        rows = read_jsonl(heldout)
        return [(r["input"], r["output"]) for r in rows][:cap], heldout
    default = model_dir.parent / "data" / "validation.jsonl"
    if default.is_file():
        rows = read_jsonl(default)
        return [(r["input"], r["output"]) for r in rows][:cap], str(default)
    meta_path = model_dir / "distill.json"
    listed = (
        json.loads(meta_path.read_text(encoding="utf-8")).get("heldout", [])
        if meta_path.is_file()
        else []
    )
    pairs = [
        (r["input"], r["output"])
        for r in listed
        if isinstance(r, dict) and {"input", "output"} <= set(r)
    ]
    return pairs[:cap], f"{meta_path} (heldout)" if pairs else "none"


def unlabelled_inputs(model_dir: Path) -> list[str]:
    """Training inputs next to the model dir (RUN/data/train.jsonl): extra gate inputs."""
    from distill.io import read_jsonl

    path = model_dir.parent / "data" / "train.jsonl"
    return [r["input"] for r in read_jsonl(path)] if path.is_file() else []


def run(args: argparse.Namespace) -> int:
    """Export, quantise, gate; print the summary. Exit 1 when a gate fails (fp32 is kept)."""
    from distill.commands.common import maybe_task, stage_config
    from exports.export import ExportError, export_model

    cfg = stage_config("export", maybe_task(args.task), args)
    model_dir = Path(args.model)
    if not (model_dir / "distill.json").is_file():
        raise UserError(
            f"--model: {model_dir} has no distill.json (expected a dir from `distill train`)"
        )
    out = Path(args.out) if args.out else model_dir.parent / "onnx"
    pairs, source = heldout_pairs(model_dir, args.heldout, cfg.max_heldout)
    try:
        report = export_model(
            model_dir, out, cfg, heldout=pairs, unlabelled=unlabelled_inputs(model_dir)
        )
    except ExportError as exc:
        _print_summary(exc.report, out, source)
        print(f"distill export: gate failed: {exc}")
        return 1
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"--model: {exc}") from None
    _print_summary(report, out, source)
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
        f"  gate ({gate['n']} inputs, {gate.get('n_labelled', 0)} labelled from {source}): "
        f"{gate['status']}"
        + (f", fp32 token parity {gate['fp32_token_parity']:.3f}" if gate["n"] else "")
        + (f", int8 drop {gate['int8_drop_points']} points" if "int8_drop_points" in gate else "")
        + (
            f", int8 possibly worse on {d['possibly_worse']}/{d['n']} (95% bound "
            f"{d['upper_bound_points']} <= {d['max_drop_points']}?)"
            if (d := gate.get("decision"))
            else ""
        )
    )
    if gate.get("reason"):
        print(f"  {gate['reason']}")

"""The export's quality gate: is the exported model the model that was trained, and may int8 ship?

Two checks on the gate inputs (held-out pairs, topped up with unlabelled inputs): fp32 ONNX
greedy must equal PyTorch greedy token for token (the export is faithful), and int8 must pass
the decision rule of `exports.int8_rule` (on a label set, an exact binomial bound on the share of
inputs where int8 may be worse than fp32; on free text, a paired-bootstrap bound on the corpus
chrF++ drop; either within `max_quality_drop` points), which accounts for how many inputs were
compared. Without inputs the gate fails closed: int8 does not ship. Exact match
and chrF++ (0-1 fractions from `common.metrics`) of both precisions on the labelled inputs are
reported for information.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from common.metrics import chrf, exact_match
from exports.config import ExportConfig

if TYPE_CHECKING:
    from exports.int8_rule import GateDecision

QUALITY_KEYS = ("exact_match", "chrf")


class GateReport(TypedDict):
    """The gate's verdict and numbers (the `gate` block of export_report.json)."""

    status: str  # "passed", "failed" or "skipped"
    n: int  # gate inputs run
    int8_ok: bool  # int8 may ship
    reason: NotRequired[str]  # why it failed or was skipped
    n_labelled: NotRequired[int]  # of which with a reference (held-out, then training pairs)
    fp32_token_parity: NotRequired[float]  # share of inputs with identical greedy ids
    fp32: NotRequired[dict[str, float]]  # quality() of fp32 ONNX on the labelled inputs
    int8: NotRequired[dict[str, float]]  # quality() of int8 ONNX on the labelled inputs
    int8_agrees_with_fp32: NotRequired[float]
    int8_drop_points: NotRequired[float]  # worst labelled drop, percentage points (info)
    decision: NotRequired[dict[str, Any]]  # exports.int8_rule.GateDecision: the rule's numbers
    per_tensor_try: NotRequired[dict[str, Any]]  # int8_scales auto: why per-tensor int8 failed


def quality(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Exact match and corpus chrF++ (both 0-1) of predictions against references."""
    return {
        "exact_match": round(exact_match(predictions, references), 5),
        "chrf": round(chrf(predictions, references), 5),
    }


@dataclass(frozen=True)
class Fp32Check:
    """The fp32 half of the gate, kept so that a per-channel int8 retry is judged against the
    same fp32 outputs without running fp32 ONNX and PyTorch greedy again."""

    gate: GateReport
    refs: list[str | None]
    texts: list[str]  # fp32 ONNX greedy outputs, one per gate input
    inputs: list[str]


def check_fp32(
    model: Any, out: Path, cfg: ExportConfig, rows: list[tuple[str, str | None]]
) -> Fp32Check:
    """fp32 ONNX greedy on the gate inputs against PyTorch greedy, and the quality of what the
    fp32 graphs ship (label-set decoding when distill.json has a label set)."""
    from exports.runtime import OnnxSeq2Seq

    inputs, refs = [x for x, _ in rows], [y for _, y in rows]
    labelled = [i for i, y in enumerate(refs) if y is not None]
    fp32 = OnnxSeq2Seq(out, precision="fp32")
    # Parity compares free greedy on both sides (every step of the graphs is exercised); the
    # texts int8 is judged against are what ships: greedy inside the label set when there is one.
    onnx_ids = fp32.generate_ids(inputs, batch_size=cfg.gate_batch_size, labels=[])
    if fp32.meta.labels:
        fp32_texts = fp32.generate(inputs, batch_size=cfg.gate_batch_size)
    else:
        fp32_texts = fp32.tokenizer.decode_batch(onnx_ids, skip_special_tokens=True)
    gate = _parity(onnx_ids, _torch_greedy(model, fp32, inputs, cfg.gate_batch_size))
    gate["n_labelled"] = len(labelled)
    if labelled:
        gate["fp32"] = quality([fp32_texts[i] for i in labelled], [refs[i] for i in labelled])
    return Fp32Check(gate, refs, fp32_texts, inputs)


def judge_int8(check: Fp32Check, out: Path, cfg: ExportConfig) -> GateReport:
    """The gate's verdict: the fp32 check's own when it failed (or int8 is off), else the int8
    rule on the int8 graphs now in `out` against the fp32 outputs of `check`."""
    from exports.runtime import OnnxSeq2Seq

    gate: GateReport = {**check.gate}  # type: ignore[typeddict-item]
    if gate["status"] == "failed" or cfg.quantize != "int8":
        return gate
    int8 = OnnxSeq2Seq(out, precision="int8").generate(check.inputs, batch_size=cfg.gate_batch_size)
    return _int8_verdict(gate, check.texts, int8, check.refs, cfg.max_quality_drop, cfg.gate_metric)


def no_inputs(cfg: ExportConfig) -> GateReport:
    """Fail closed: nothing to compare int8 with fp32 on means int8 does not ship."""
    from exports.int8_rule import rows_needed

    if cfg.quantize != "int8":
        return {"status": "skipped", "reason": "no gate inputs", "n": 0, "int8_ok": False}
    reason = (
        "no gate inputs (held-out pairs or training inputs) to compare int8 with fp32; "
        "the int8 graphs were removed and fp32 kept (the rule needs at least "
        f"{rows_needed(cfg.max_quality_drop)} inputs)"
    )
    return {"status": "failed", "reason": reason, "n": 0, "int8_ok": False}


def _parity(onnx_ids: list[list[int]], torch_ids: list[list[int]]) -> GateReport:
    """The gate so far: passed (int8 not yet judged) or failed on the first differing input."""
    n = len(onnx_ids)
    same = sum(a == b for a, b in zip(onnx_ids, torch_ids, strict=True))
    if same == n:
        return {"n": n, "fp32_token_parity": 1.0, "status": "passed", "int8_ok": False}
    bad = next(i for i, (a, b) in enumerate(zip(onnx_ids, torch_ids, strict=True)) if a != b)
    reason = f"fp32 ONNX differs from PyTorch on {n - same}/{n} inputs (first: #{bad})"
    return {
        "n": n,
        "fp32_token_parity": same / n,
        "status": "failed",
        "reason": reason,
        "int8_ok": False,
    }


def _int8_verdict(
    gate: GateReport,
    fp32_texts: list[str],
    int8_texts: list[str],
    refs: list[str | None],
    max_drop: float,
    metric: str = "auto",
) -> GateReport:
    """Pass int8 when the rule's 95% bound (exact match or chrF++) is within `max_drop`."""
    from exports.int8_rule import choose_metric, decide, decide_chrf

    labelled = [i for i, y in enumerate(refs) if y is not None]
    if labelled:
        gate["int8"] = quality([int8_texts[i] for i in labelled], [refs[i] or "" for i in labelled])
        drop = 100.0 * max(gate["fp32"][k] - gate["int8"][k] for k in QUALITY_KEYS)
        gate["int8_drop_points"] = round(drop, 3)
    agree = sum(a == b for a, b in zip(int8_texts, fp32_texts, strict=True))
    gate["int8_agrees_with_fp32"] = agree / len(refs)
    rule = decide_chrf if choose_metric(refs, metric) == "chrf" else decide
    decision = rule(fp32_texts, int8_texts, refs, max_drop)
    gate["decision"] = decision.as_dict()
    if not decision.passed:
        reason = _failure_reason(decision, max_drop)
        return {**gate, "status": "failed", "reason": reason, "int8_ok": False}
    return {**gate, "status": "passed", "int8_ok": True}


def _failure_reason(decision: GateDecision, max_drop: float) -> str:
    """Why int8 did not ship: too wide a bound, or (chrF++ rule) too few gate inputs to bound
    the drop at all, which a bound under the limit must not hide."""
    kept = "the int8 graphs were removed and fp32 kept"
    if decision.upper_bound_points <= max_drop:  # the bound is fine: the rows are too few
        return (
            f"only {decision.n} gate inputs: the rule needs at least "
            f"{decision.rows_needed_if_none_worse} to bound a {max_drop}-point drop "
            f"(int8 may be worse on {decision.possibly_worse}); {kept}"
        )
    what = "a corpus chrF++ drop" if decision.metric == "chrf" else "a share of worse inputs"
    return (
        f"int8 may be worse than fp32 on {decision.possibly_worse}/{decision.n} gate "
        f"inputs: 95% upper bound on {what} {decision.upper_bound_points:.2f} points > "
        f"max_quality_drop {max_drop}; {kept}"
    )


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
                max_new_tokens=meta.max_new_tokens,
                num_beams=1,
                do_sample=False,
            )  # (batch, 1 + generated)
            out += [_cut(row[1:].tolist(), meta.eos_token_id) for row in gen]
    return out


def _cut(row: list[int], eos: int) -> list[int]:
    """Ids before the first EOS (what follows is padding of finished rows)."""
    return row[: row.index(eos)] if eos in row else row

"""fp32 ONNX -> int8 ONNX: pre-process, dynamic int8, tied-table sharing, ORT optimisation.

Order matters (docs/exports.md, "int8"): `quant_pre_process` first folds the transpose of the tied
embedding/LM-head table into a constant; without it `quantize_dynamic` leaves a graph that
dequantises the whole table on every step and is no faster. After quantisation the embedding
lookup still reads the fp32 table while the head reads an int8 transposed copy, so we point the
lookup at the int8 copy (Gather on axis 1 + transpose of the small result): the table is then
stored once, in int8.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.shape_inference import quant_pre_process

QUANTIZED_MATMULS = ("MatMulInteger", "DynamicQuantizeMatMul")


def name_nodes_by_module(path: Path) -> None:
    """Prefix every node name with the torch module it came from (kept through quantisation).

    The dynamo exporter records the module path in `pkg.torch.onnx.name_scopes`; names like
    `model.decoder.block.0.layer.2.DenseReluDense.wo/node_linear_9` let users keep layers in
    fp32 by module name (`keep_fp32`), since pre-processing drops the metadata.
    """
    model = onnx.load(str(path))
    for node in model.graph.node:
        scopes = next(
            (p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), ""
        )
        parts = [s.strip(" '") for s in scopes.strip("[]").split(",") if s.strip(" '")]
        if len(parts) >= 2:
            node.name = f"{parts[-2]}/{node.name}"
    onnx.save(model, str(path))


def _tied_pairs(model: onnx.ModelProto) -> dict[str, str]:
    """Gather tables W (vocab, d) that have an initializer equal to W.T: {W name: W.T name}."""
    inits = {i.name: i for i in model.graph.initializer if len(i.dims) == 2}
    gathered = {
        n.input[0] for n in model.graph.node if n.op_type == "Gather" and n.input[0] in inits
    }
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for name, init in inits.items():
        by_shape.setdefault(tuple(init.dims), []).append(name)
    pairs: dict[str, str] = {}
    for w in gathered:
        rows, cols = inits[w].dims
        if rows < 1000:  # only vocabulary-sized tables are worth it
            continue
        table = numpy_helper.to_array(inits[w])
        for cand in by_shape.get((cols, rows), []):
            if np.array_equal(numpy_helper.to_array(inits[cand]), table.T):
                pairs[w] = cand
                break
    return pairs


def _keep_nodes(model: onnx.ModelProto, keep_fp32: list[str], tied: dict[str, str]) -> list[str]:
    """Nodes left out of quantisation: matched by op type or name substring, and tied lookups."""
    out = []
    for node in model.graph.node:
        matched = node.op_type in keep_fp32 or any(p in node.name for p in keep_fp32)
        if matched or (node.op_type == "Gather" and node.input[0] in tied):
            out.append(node.name)
    return out


def _share_tied_tables(model: onnx.ModelProto, tied: dict[str, str]) -> int:
    """Make lookups of W read the int8 W.T the head uses; returns how many tables were shared."""
    inits = {i.name for i in model.graph.initializer}
    shared = 0
    for w, wt in tied.items():
        q, scale, zp = f"{wt}_quantized", f"{wt}_scale", f"{wt}_zero_point"
        if not {q, scale, zp} <= inits:
            continue
        scale_arr = next(
            numpy_helper.to_array(i) for i in model.graph.initializer if i.name == scale
        )
        for node in [n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == w]:
            _rewrite_lookup(model, node, q, scale, zp, per_row=scale_arr.size > 1)
        shared += 1
    used = {x for n in model.graph.node for x in n.input}
    kept = [i for i in model.graph.initializer if i.name in used or i.name not in tied]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return shared


def _rewrite_lookup(
    model: onnx.ModelProto, node: onnx.NodeProto, q: str, scale: str, zp: str, *, per_row: bool
) -> None:
    """Gather(W, ids) -> (Gather(Wt_q, ids, axis=1) - zp) * scale, transposed to (..., d)."""
    ids, out, base = node.input[1], node.output[0], node.name
    rank = _rank(model, ids)
    perm = [*range(1, rank + 1), 0]  # (d, *ids.shape) -> (*ids.shape, d)
    nodes = [
        helper.make_node("Gather", [q, ids], [f"{base}/q"], name=f"{base}/q", axis=1),
        helper.make_node(
            "Cast", [f"{base}/q"], [f"{base}/f"], name=f"{base}/f", to=TensorProto.FLOAT
        ),
        helper.make_node("Transpose", [f"{base}/f"], [f"{base}/t"], name=f"{base}/t", perm=perm),
    ]
    if per_row:  # per-channel head: one scale and zero point per vocabulary entry
        nodes += [
            helper.make_node("Gather", [scale, ids], [f"{base}/s0"], name=f"{base}/s0", axis=0),
            helper.make_node("Gather", [zp, ids], [f"{base}/z0"], name=f"{base}/z0", axis=0),
            helper.make_node(
                "Unsqueeze", [f"{base}/s0", f"{base}/ax"], [f"{base}/s"], name=f"{base}/s"
            ),
            helper.make_node(
                "Unsqueeze", [f"{base}/z0", f"{base}/ax"], [f"{base}/zi"], name=f"{base}/zi"
            ),
        ]
        model.graph.initializer.append(
            numpy_helper.from_array(np.array([-1], dtype=np.int64), f"{base}/ax")
        )
        s, zi = f"{base}/s", f"{base}/zi"
    else:
        s, zi = scale, zp
    nodes += [
        helper.make_node("Cast", [zi], [f"{base}/z"], name=f"{base}/z", to=TensorProto.FLOAT),
        helper.make_node("Sub", [f"{base}/t", f"{base}/z"], [f"{base}/c"], name=f"{base}/c"),
        helper.make_node("Mul", [f"{base}/c", s], [out], name=f"{base}/deq"),
    ]
    pos = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for offset, new in enumerate(nodes):
        model.graph.node.insert(pos + offset, new)


def _rank(model: onnx.ModelProto, name: str) -> int:
    for v in [*model.graph.input, *model.graph.value_info]:
        if v.name == name and v.type.tensor_type.HasField("shape"):
            return len(v.type.tensor_type.shape.dim)
    raise ValueError(f"cannot share the tied table: rank of {name!r} unknown")


def quantize_graph(
    src: Path, dst: Path, *, per_channel: bool, keep_fp32: list[str], optimize: bool
) -> dict:
    """Write the int8 twin of `src` to `dst`; returns what was done (for the export report)."""
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        quant_pre_process(
            str(src), str(pre), skip_symbolic_shape=True
        )  # symbolic inference fails on dynamo graphs
        model = onnx.load(str(pre))
        tied = _tied_pairs(model)
        quantize_dynamic(
            str(pre),
            str(q),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=["MatMul", "Gather"],
            nodes_to_exclude=_keep_nodes(model, keep_fp32, tied),
        )
        qmodel = onnx.load(str(q))
        shared = _share_tied_tables(qmodel, tied)
        onnx.save(qmodel, str(q))
        final = Path(tmp) / "opt.onnx"
        if optimize:
            ort_optimize(q, final)
        else:
            os.replace(q, final)
        os.replace(final, dst)
    return {"tied_tables_shared": shared, **op_counts(dst)}


def ort_optimize(src: Path, dst: Path) -> None:
    """Offline ORT graph optimisation at the portable level (basic: constant folding,
    redundant-node elimination); hardware-specific fusions are left to session load time."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dst)
    opts.log_severity_level = 3
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def op_counts(path: Path) -> dict:
    """Quantised and float MatMul counts of a graph (what tests and the report check)."""
    ops = Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return {
        "quantized_matmuls": sum(ops[o] for o in QUANTIZED_MATMULS),
        "float_matmuls": ops["MatMul"] + ops["Gemm"],
    }

"""Export of tiny T5 and BERT encoder-decoders: parity with PyTorch, int8, beam search."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [*tiny_models.WORDS, "New", "York"]


def random_inputs(n: int, seed: int) -> list[str]:
    return tiny_models.random_inputs(n, seed, WORDS)


# The BERT encoder-decoder export takes ~25 s more: slow step in CI.
@pytest.fixture(scope="module", params=["t5", pytest.param("bert2bert", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    from tiny_models import exported_tiny

    return exported_tiny(request.param, tmp_path_factory.getbasetemp())


def torch_ids(model_dir: Path, runtime, inputs: list[str], **gen) -> list[list[int]]:
    """transformers' generate on exactly the ids the runtime feeds; ids cut before EOS."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    ids, mask = runtime.encode(inputs)
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            do_sample=False,
            **gen,
        )
    rows = [r[1:].tolist() for r in out]
    return [r[: r.index(runtime.eos)] if runtime.eos in r else r for r in rows]


def test_report_and_layout(exported):
    _, onnx_dir, report = exported
    names = {p.name for p in onnx_dir.iterdir()}
    for graph in ("encoder_model", "decoder_model", "decoder_with_past_model"):
        assert {f"{graph}.onnx", f"{graph}_quantized.onnx"} <= names
    assert {"config.json", "tokenizer.json", "distill.json", "export_report.json"} <= names
    assert report["gate"]["status"] == "passed"
    assert report["gate"]["fp32_token_parity"] == 1.0
    assert report["runtime_precision"] == "int8"


def test_fp32_greedy_matches_pytorch_token_for_token(exported):
    from exports.runtime import OnnxSeq2Seq

    model_dir, onnx_dir, _ = exported
    rt = OnnxSeq2Seq(onnx_dir, threads=1, precision="fp32")
    inputs = random_inputs(40, seed=7)
    got = rt.generate_ids(inputs, max_new_tokens=16, batch_size=40)
    assert got == torch_ids(model_dir, rt, inputs, max_new_tokens=16, num_beams=1)


def test_beam_search_matches_transformers(exported):
    from exports.runtime import OnnxSeq2Seq

    model_dir, onnx_dir, _ = exported
    rt = OnnxSeq2Seq(onnx_dir, threads=1, precision="fp32")
    inputs = random_inputs(12, seed=3)
    got = rt.generate_ids(inputs, max_new_tokens=10, num_beams=4, batch_size=12)
    want = torch_ids(
        model_dir,
        rt,
        inputs,
        max_new_tokens=10,
        num_beams=4,
        length_penalty=1.0,
        early_stopping=False,
    )
    assert got == want


def test_int8_smaller_and_quantised_matmul_count(exported):
    model_dir, _onnx_dir, report = exported
    assert report["sizes"]["onnx_fp32_bytes"] >= 3 * report["sizes"]["onnx_int8_bytes"]
    layers = 2
    # Linear layers per layer: T5 enc q,k,v,o,wi_0,wi_1,wo = 7, dec + cross q,k,v,o = 11;
    # BERT enc q,k,v,o,intermediate,output = 6, dec + cross = 10, + head transform dense.
    per_enc, per_dec, per_cross_kv, head = (
        (7, 11, 2, 1) if "t5" in str(model_dir) else (6, 10, 2, 2)
    )
    counts = {g: v["quantized_matmuls"] for g, v in report["graphs"]["int8"].items()}
    assert counts == {
        "encoder_model": per_enc * layers,
        "decoder_model": per_dec * layers + head,
        "decoder_with_past_model": (per_dec - per_cross_kv) * layers + head,
    }
    assert all(
        v["tied_tables_shared"] == 1
        for g, v in report["graphs"]["int8"].items()
        if g != "encoder_model"
    )


def test_int8_runs_and_auto_picks_it(exported):
    from exports.runtime import OnnxSeq2Seq

    _, onnx_dir, _ = exported
    rt = OnnxSeq2Seq(onnx_dir, threads=1)
    assert rt.precision == "int8"
    outs = rt.generate(random_inputs(5, seed=11), max_new_tokens=8)
    assert len(outs) == 5 and all(isinstance(o, str) for o in outs)
    forced = rt.generate_ids(["a"], max_new_tokens=6, min_new_tokens=6)
    assert len(forced[0]) == 6


def test_keep_fp32_leaves_named_layers_unquantised(exported, tmp_path):
    from exports.quantize import quantize_graph

    model_dir, onnx_dir, report = exported
    if "t5" not in str(model_dir):
        pytest.skip("T5 feed-forward names")
    out = tmp_path / "enc_q.onnx"
    res = quantize_graph(
        onnx_dir / "encoder_model.onnx",
        out,
        per_channel=True,
        keep_fp32=["DenseReluDense.wo"],
        optimize=True,
    )
    base = report["graphs"]["int8"]["encoder_model"]
    assert res["quantized_matmuls"] == base["quantized_matmuls"] - 2  # one wo per layer
    assert res["float_matmuls"] == base["float_matmuls"] + 2


def test_per_channel_shared_table_is_exact(exported, tmp_path):
    """The rewritten lookup into the per-channel int8 head equals ORT's own dequantisation."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from exports.quantize import quantize_graph

    _, onnx_dir, _ = exported
    out = tmp_path / "dec_q.onnx"
    res = quantize_graph(
        onnx_dir / "decoder_model.onnx", out, per_channel=True, keep_fp32=[], optimize=False
    )
    assert res["tied_tables_shared"] == 1
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert not any(
        v.ndim == 2 and v.dtype == np.float32 and v.shape[0] == 30522 for v in inits.values()
    )
    # The rewritten lookup ends in a Mul named '<gather>/deq'; its first Gather reads the
    # int8 head table (d, vocab) whose per-row scales and zero points it also gathers.
    deq = next(n for n in model.graph.node if n.name.endswith("/deq"))
    base = deq.name[: -len("/deq")]
    q_name = next(n for n in model.graph.node if n.name == f"{base}/q").input[0]
    s_name = next(n for n in model.graph.node if n.name == f"{base}/s0").input[0]
    z_name = next(n for n in model.graph.node if n.name == f"{base}/z0").input[0]
    table, scale, zp = inits[q_name], inits[s_name], inits[z_name]
    assert table.dtype == np.int8 and scale.shape == zp.shape == (table.shape[1],)
    # Run the rewritten lookup itself (the subgraph from the token ids to its output).
    ids_name = next(n for n in model.graph.node if n.name == f"{base}/q").input[1]
    sub = onnx.utils.Extractor(model).extract_model([ids_name], [deq.output[0]])
    sess = ort.InferenceSession(sub.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = rng.integers(0, table.shape[1], size=(2, 5)).astype(np.int64)
    feeds = {ids_name: ids}
    looked_up = sess.run([deq.output[0]], feeds)[0]  # (batch, seq, d)
    # ORT's own dequantisation of the same table, per vocabulary entry (axis 1).
    dq = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["w"], axis=1)],
        "dq",
        [],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(table, "q"), numpy_helper.from_array(scale, "s"),
         numpy_helper.from_array(zp, "z")],
    )  # fmt: skip
    dq_model = helper.make_model(dq, opset_imports=[helper.make_opsetid("", 18)])
    w = ort.InferenceSession(dq_model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = w.run(["w"], {})[0].T[ids]  # (vocab, d)[ids] -> (batch, seq, d)
    assert looked_up.shape == expected.shape
    np.testing.assert_allclose(looked_up, expected, rtol=0, atol=1e-6)


def test_runtime_imports_no_torch(exported):
    _, onnx_dir, _ = exported
    code = (
        "import sys; from exports.runtime import OnnxSeq2Seq; import exports.serve;"
        f"m = OnnxSeq2Seq({str(onnx_dir)!r}, threads=1); print(m.generate(['a b'], max_new_tokens=3));"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('torch', 'transformers')];"
        "assert not bad, bad; print('clean')"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "clean" in res.stdout

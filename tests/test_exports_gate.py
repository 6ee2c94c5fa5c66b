"""The int8 quality gate: its decision rule as a pure function, and the export paths it decides.

The rule is checked against reference values of the Clopper-Pearson bound (scipy's
`beta.ppf(0.95, k + 1, n - k)`, copied here so the test needs no scipy). The export paths run
(marked slow) on a tiny T5 trained for a few seconds to answer with the first word of its input (so its
greedy outputs are confident and fp32 and int8 have something to agree on): a pass, an int8 deliberately broken after quantisation (fail: int8 removed, fp32 served,
the report says why), and no gate inputs at all (fail closed).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from common.metrics import chrf
from exports.int8_rule import (
    choose_metric,
    decide,
    decide_chrf,
    possibly_worse,
    rows_needed,
    upper_bound,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = ["cat", "dog", "red", "blue", "fast", "slow", "hello", "world"]


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(0, 29, 0.0981446277), (1, 29, 0.1533920245), (1, 300, 0.0157145549), (4, 256, 0.0353972181)],
)
def test_upper_bound_matches_clopper_pearson(k, n, expected):
    assert upper_bound(k, n) == pytest.approx(expected, abs=1e-8)


def test_rule_accounts_for_sample_size():
    """One flip in 29 (a 3.45-point 'drop') proves nothing either way: too few rows to ship
    int8. One flip in 300 passes; so do 59 rows without one, and 58 do not."""
    same = ["a"] * 300
    flip = ["b"] + ["a"] * 299
    assert not decide(same[:29], flip[:29], [None] * 29, 5.0).passed
    assert decide(same, flip, [None] * 300, 5.0).passed
    assert rows_needed(5.0) == 59
    assert decide(same[:59], same[:59], [None] * 59, 5.0).passed
    assert not decide(same[:58], same[:58], [None] * 58, 5.0).passed
    assert not decide([], [], [], 5.0).passed  # fail closed


def test_possibly_worse_uses_references_when_there_are_some():
    assert possibly_worse("x", "y", None)  # unlabelled: any change may be a loss
    assert possibly_worse("x", "y", "x")  # fp32 right, int8 wrong
    assert not possibly_worse("x", "y", "z")  # both wrong: exact match cannot drop
    assert not possibly_worse("x", "y", "y")  # int8 right
    assert not possibly_worse("x ", "x", None)


def test_choose_metric_exact_match_on_a_label_set_chrf_on_free_text():
    labels = ["positive", "negative", "neutral"] * 30 + [None] * 10
    free = [f"2024-01-{d:02d}" for d in range(1, 26)]
    assert choose_metric(labels) == "exact_match"
    assert choose_metric(free) == "chrf"  # 25 distinct references > 20
    assert choose_metric(free[:20] * 2) == "exact_match"  # 20 values, each twice: a label set
    assert choose_metric(free[:17]) == "chrf"  # 17 all different: too few rows to be labels
    assert choose_metric([None] * 100) == "exact_match"  # no references: the stricter rule
    assert choose_metric(free, "exact_match") == "exact_match"  # an explicit choice wins


def _dates(n: int) -> list[str]:
    return [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:00" for i in range(n)]


def test_chrf_rule_measures_the_corpus_drop_it_reports():
    """The observed drop is corpus chrF++ of fp32 minus int8 against the same references, and
    rows without a reference are scored against fp32's own output."""
    refs = _dates(100)
    fp32 = list(refs)
    int8 = [r[:10] if i % 10 == 0 else r for i, r in enumerate(refs)]  # 10 lose their time
    with_none: list[str | None] = [None if i % 2 else r for i, r in enumerate(refs)]
    d = decide_chrf(fp32, int8, with_none, 5.0)
    expected = 100.0 * (chrf(fp32, refs) - chrf(int8, refs))  # fp32 == refs, so None == ref
    assert d.metric == "chrf" and d.possibly_worse == 10 and d.n == 100
    assert d.mean_drop_points == pytest.approx(expected, abs=1e-3)
    assert d.upper_bound_points > d.mean_drop_points > 0


def test_chrf_rule_passes_small_changes_and_fails_large_ones():
    """A few trimmed clock times on 200 dates pass a 5-point gate (the exact-match rule would
    count every change as a loss and fail); garbling a third of the outputs fails."""
    refs = _dates(200)
    small = [r[:10] if i % 25 == 0 else r for i, r in enumerate(refs)]  # 8 of 200 changed
    garbled = ["1999-12-31" if i % 3 == 0 else r for i, r in enumerate(refs)]
    assert decide_chrf(refs, small, list(refs), 5.0).passed
    assert not decide(refs, small, list(refs), 5.0).passed  # 8/200: bound 7.1 points > 5
    failed = decide_chrf(refs, garbled, list(refs), 5.0)
    assert not failed.passed and failed.upper_bound_points > 5.0


def test_chrf_rule_fails_closed_on_too_few_rows():
    refs = _dates(58)
    assert not decide_chrf(refs, refs, list(refs), 5.0).passed  # no change, but 58 < 59 rows
    assert decide_chrf(_dates(59), _dates(59), _dates(59), 5.0).passed
    assert not decide_chrf([], [], [], 5.0).passed


def test_gate_names_too_few_rows_not_a_bound_under_the_limit():
    """A chrF++ gate that fails only on row count says so; it once read 'bound 0.00 > 5.0'."""
    from exports.gate import _failure_reason

    refs = _dates(57)
    short = _failure_reason(decide_chrf(refs, refs, list(refs), 5.0), 5.0)
    assert short.startswith("only 57 gate inputs: the rule needs at least 59")
    assert "> max_quality_drop" not in short
    garbled = [r[::-1] for r in _dates(80)]
    wide = _failure_reason(decide_chrf(_dates(80), garbled, _dates(80), 5.0), 5.0)
    assert wide.startswith("int8 may be worse than fp32 on 80/80 gate inputs: 95% upper bound")


def _sample(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(1, 3)))


def _first_word(text: str) -> str:
    return text.split()[0]


def _train_copy_model(model_dir: Path, steps: int = 200) -> None:
    """A few seconds of AdamW on 'the first word' so greedy outputs are confident and right."""
    import torch
    from tiny_models import INSTRUCTION, SOURCE_TEMPLATE
    from tokenizers import Tokenizer
    from transformers import AutoModelForSeq2SeqLM

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    torch.manual_seed(0)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)  # 1e-2 was unstable here
    rng = random.Random(0)
    for _ in range(steps):
        xs = [_sample(rng) for _ in range(32)]
        src = [tok.encode(SOURCE_TEMPLATE.format(instruction=INSTRUCTION, input=x)).ids for x in xs]
        tgt = [tok.encode(_first_word(x)).ids[1:] for x in xs]  # pieces + [SEP], no [CLS]
        s, t = max(map(len, src)), max(map(len, tgt))
        ids = torch.tensor([r + [0] * (s - len(r)) for r in src])  # (batch, src)
        labels = torch.tensor([r + [-100] * (t - len(r)) for r in tgt])  # (batch, tgt)
        loss = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save_pretrained(model_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[tuple[str, str]], list[str]]:
    """(model dir, 20 labelled held-out pairs, 60 unlabelled inputs)."""
    from tiny_models import make_t5_dir

    model_dir = make_t5_dir(tmp_path_factory.mktemp("gate") / "model", d_model=32)
    _train_copy_model(model_dir)
    rng = random.Random(7)
    heldout = [(x, _first_word(x)) for x in (_sample(rng) for _ in range(20))]
    return model_dir, heldout, [_sample(rng) for _ in range(100)]


@pytest.mark.slow  # trains a tiny model, then a real export (~1 min each here)
def test_gate_passes_a_trained_model(trained, tmp_path):
    from exports.config import ExportConfig
    from exports.pipeline import export_model
    from exports.runtime import OnnxSeq2Seq

    model_dir, heldout, unlabelled = trained
    report = export_model(
        model_dir, tmp_path / "onnx", ExportConfig(), heldout=heldout, unlabelled=unlabelled
    )
    gate = report["gate"]  # the default scales: per channel, nothing tried before
    assert gate["fp32"]["exact_match"] >= 0.8  # it learned something: the gate is not vacuous
    assert gate["status"] == "passed" and report["runtime_precision"] == "int8"
    assert report["int8_scales"] == "per_channel" and "per_tensor_try" not in gate
    d = gate["decision"]
    assert d["n"] == gate["n"] >= 80 and gate["n_labelled"] == 20
    assert d["upper_bound_points"] <= d["max_drop_points"] == 5.0
    assert OnnxSeq2Seq(tmp_path / "onnx").precision == "int8"


def _break_int8(monkeypatch, only_per_tensor: bool = False) -> None:
    """Quantise as usual, then scramble every int8 weight table of the quantised graph
    (of the per-tensor graphs only, when `only_per_tensor`)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    import exports.quantize as q

    real = q.quantize_graph

    def broken(src, dst, **kw):
        res = real(src, dst, **kw)
        if only_per_tensor and kw["per_channel"]:
            return res
        model = onnx.load(str(dst))
        rng = np.random.default_rng(0)
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.int8 and arr.size > 16:
                noise = rng.integers(-127, 128, size=arr.shape, dtype=np.int8)
                init.CopyFrom(numpy_helper.from_array(noise, init.name))
        onnx.save(model, str(dst))
        return res

    monkeypatch.setattr(q, "quantize_graph", broken)


def _assert_fp32_served(onnx_dir: Path, reason: str) -> None:
    from exports.runtime import OnnxSeq2Seq

    assert not list(onnx_dir.glob("*_quantized.onnx"))  # int8 removed
    report = json.loads((onnx_dir / "export_report.json").read_text())
    assert report["runtime_precision"] == "fp32"
    assert report["gate"]["status"] == "failed" and reason in report["gate"]["reason"]
    assert OnnxSeq2Seq(onnx_dir).precision == "fp32"


@pytest.mark.slow  # trains a tiny model, then a real export (~1 min each here)
def test_gate_fails_a_broken_int8_and_fp32_is_served(trained, tmp_path, monkeypatch):
    from exports.config import ExportConfig
    from exports.pipeline import ExportError, export_model

    _break_int8(monkeypatch)
    model_dir, heldout, unlabelled = trained
    with pytest.raises(ExportError, match=r"may be worse than fp32") as err:
        export_model(
            model_dir,
            tmp_path / "onnx",
            ExportConfig(int8_scales="auto"),
            heldout=heldout,
            unlabelled=unlabelled,
        )
    report = err.value.report
    d = report["gate"]["decision"]
    assert not d["passed"] and d["upper_bound_points"] > 5.0
    # int8_scales auto tried per-tensor, then per-channel; both failed, fp32 ships
    assert not report["gate"]["per_tensor_try"]["decision"]["passed"]
    assert report["int8_scales"] is None
    _assert_fp32_served(tmp_path / "onnx", "the int8 graphs were removed and fp32 kept")


@pytest.mark.slow  # trains a tiny model, then two real exports
def test_per_channel_ships_when_per_tensor_fails_the_gate(trained, tmp_path, monkeypatch):
    """int8_scales auto: a per-tensor int8 that fails the gate is re-quantised per channel and
    gated again against the same fp32 outputs (PyTorch greedy runs once, not per try);
    per-channel passing ships int8 (not fp32). An explicit per_tensor does not retry."""
    from exports import gate as gate_module
    from exports.config import ExportConfig
    from exports.pipeline import ExportError, export_model
    from exports.runtime import OnnxSeq2Seq

    _break_int8(monkeypatch, only_per_tensor=True)
    greedy_calls = []
    torch_greedy = gate_module._torch_greedy

    def counted(*args, **kwargs):
        greedy_calls.append(1)
        return torch_greedy(*args, **kwargs)

    monkeypatch.setattr(gate_module, "_torch_greedy", counted)
    model_dir, heldout, unlabelled = trained
    report = export_model(
        model_dir,
        tmp_path / "auto",
        ExportConfig(int8_scales="auto"),
        heldout=heldout,
        unlabelled=unlabelled,
    )
    assert len(greedy_calls) == 1  # the per-channel retry reused the fp32 check
    assert report["gate"]["status"] == "passed" and report["runtime_precision"] == "int8"
    assert report["int8_scales"] == "per_channel"
    first = report["gate"]["per_tensor_try"]
    assert "may be worse than fp32" in first["reason"] and not first["decision"]["passed"]
    assert OnnxSeq2Seq(tmp_path / "auto").precision == "int8"
    with pytest.raises(ExportError, match=r"may be worse than fp32") as err:
        export_model(
            model_dir, tmp_path / "pt", ExportConfig(int8_scales="per_tensor"),
            heldout=heldout, unlabelled=unlabelled,
        )  # fmt: skip
    assert "per_tensor_try" not in err.value.report["gate"]
    _assert_fp32_served(tmp_path / "pt", "the int8 graphs were removed and fp32 kept")


@pytest.mark.slow  # trains a tiny model, then a real export (~1 min each here)
def test_gate_without_inputs_fails_closed(trained, tmp_path):
    from exports.config import ExportConfig
    from exports.pipeline import ExportError, export_model

    with pytest.raises(ExportError, match=r"no gate inputs"):
        export_model(trained[0], tmp_path / "onnx", ExportConfig())
    _assert_fp32_served(tmp_path / "onnx", "no gate inputs")

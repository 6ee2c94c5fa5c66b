"""Copy decoding (common.copy_decoding): which outputs count as spans, the mask, greedy held to
each row's input tokens, the ONNX and torch students agreeing on it, and training deciding it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from common.copy_decoding import MIN_SPAN_SHARE, allowed_mask, is_span, span_share
from common.meta import StudentMeta, read_meta, write_meta
from exports.decoding import greedy

EOS, PAD, START, VOCAB = 2, 0, 1, 12


def test_a_span_is_a_stripped_non_empty_piece_of_the_input_as_written() -> None:
    assert is_span("88 n maple st fort collins co", " fort collins ")
    assert not is_span("88 n maple st fort collins co", "Fort Collins")  # case matters
    assert not is_span("anything", "  ")
    pairs = [("a b c", "b"), ("a b c", "B"), ("a b c", "a b"), ("x", "y")]
    assert span_share(pairs) == 0.5
    assert span_share([]) == 0.0


def test_the_mask_allows_each_rows_own_tokens_and_the_end_token() -> None:
    mask = allowed_mask([[5, 7, 7], [9, 99]], 10, [EOS])
    assert mask.shape == (2, 10)
    assert np.flatnonzero(mask[0]).tolist() == [2, 5, 7]
    assert np.flatnonzero(mask[1]).tolist() == [2, 9]  # 99 is outside the vocabulary


class FixedStep:
    """Logits that rank the tokens the same way at every step: 11 > 10 > ... > 0, except that
    the end token becomes the best after `length` steps."""

    def __init__(self, length: int) -> None:
        self.length, self.t = length, 0

    def __call__(self, tokens: np.ndarray, reorder: np.ndarray | None) -> np.ndarray:
        logits = np.tile(np.arange(VOCAB, dtype=np.float32), (len(tokens), 1))
        if self.t >= self.length:
            logits[:, EOS] = 100.0
        self.t += 1
        return logits


def test_greedy_held_to_the_input_takes_the_best_allowed_token_of_each_row() -> None:
    """Free greedy answers 11 every step; held to each row's tokens it answers that row's
    highest one, and the end token still ends it."""
    free = greedy(FixedStep(3), 2, start=START, eos=EOS, pad=PAD, max_new=8)
    assert free == [[11, 11, 11], [11, 11, 11]]
    held = greedy(
        FixedStep(3), 2, start=START, eos=EOS, pad=PAD, max_new=8, allowed=[[4, 9, 3], [5]]
    )
    assert held == [[9, 9, 9], [5, 5, 5]]
    # a row whose input holds no token but the end token can only end
    assert greedy(FixedStep(3), 1, start=START, eos=EOS, pad=PAD, max_new=8, allowed=[[]]) == [[]]


def test_meta_keeps_copy_input_only_when_set_and_rejects_a_bad_value(tmp_path: Path) -> None:
    meta = StudentMeta("{input}", 0, 0, 1)
    write_meta(tmp_path, meta)
    assert "copy_input" not in json.loads((tmp_path / "distill.json").read_text())
    meta.copy_input = True
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path).copy_input is True
    data = json.loads((tmp_path / "distill.json").read_text())
    (tmp_path / "distill.json").write_text(json.dumps({**data, "copy_input": "yes"}))
    with pytest.raises(ValueError, match="'copy_input' must be true or false"):
        read_meta(tmp_path)


@pytest.mark.parametrize(
    ("setting", "share", "has_labels", "expected"),
    [
        ("auto", MIN_SPAN_SHARE, False, True),
        ("auto", MIN_SPAN_SHARE - 0.01, False, False),
        ("auto", 1.0, True, False),  # a label set decodes by its own rule
        ("on", 0.0, False, True),
        ("off", 1.0, False, False),
    ],
)
def test_training_decides_copy_decoding(setting, share, has_labels, expected) -> None:
    from students.train import copy_input

    assert copy_input(setting, share, has_labels) is expected


@pytest.fixture(scope="module")
def copying(tmp_path_factory):
    """The shared tiny T5 export, copied with copy_input in both distill.json files."""
    return tiny_models.exported_tiny_with(tmp_path_factory.mktemp("copying"), "t5", copy_input=True)


def test_onnx_and_torch_students_copy_the_same_tokens_from_each_input(copying) -> None:
    """fp32 ONNX and PyTorch, both copy_input: the same tokens for each of 30 inputs, every one
    of them a token of that input; this random model's free answers are not."""
    from exports.runtime import OnnxSeq2Seq
    from students.predict import TorchPredictor

    model_dir, onnx_dir = copying
    inputs = tiny_models.random_inputs(30, seed=3)
    rt = OnnxSeq2Seq(onnx_dir, threads=1, precision="fp32")
    onnx = rt.generate_ids(inputs, batch_size=7, max_new_tokens=8)
    predictor = TorchPredictor(model_dir)
    assert rt.generate(inputs, batch_size=7, max_new_tokens=8) == predictor.generate(
        inputs, batch_size=7, max_new_tokens=8
    )
    own = [set(rt.tokenizer.encode(x, add_special_tokens=False).ids) for x in inputs]
    assert any(onnx) and all(set(ids) <= tokens for ids, tokens in zip(onnx, own, strict=True))
    free = rt.generate_ids(inputs, batch_size=7, max_new_tokens=8, labels=[])
    assert not all(set(ids) <= tokens for ids, tokens in zip(free, own, strict=True))


def test_training_on_spans_writes_copy_input_and_other_data_does_not(tmp_path) -> None:
    """train_model on outputs that are spans of their inputs: distill.json says copy_input and
    metrics.json the share; on outputs that are not, or with copy_decoding off, neither."""
    from distill.stages.train import train_model
    from students.config import TrainConfig

    student = tiny_models.tiny_t5_dir(tmp_path / "s")

    def train(rows: list[dict], name: str, **kw) -> Path:
        data = tmp_path / f"data-{name}"
        data.mkdir()
        (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        manifest = {"task": {"name": "t", "instruction": "Extract."}}
        (data / "manifest.json").write_text(json.dumps(manifest))
        cfg = TrainConfig(student=str(student), epochs=1, batch_size=8, threads=1, **kw)
        train_model(None, cfg, data, tmp_path / name)
        return tmp_path / name

    spans = [{"input": f"12 elm st town{i} ia", "output": f"town{i}"} for i in range(12)]
    out = train(spans, "spans")
    assert read_meta(out).copy_input is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["copy_decoding"] == {"span_share": 1.0, "on": True}
    assert "copies from its input" in (out / "README.md").read_text()
    rewrites = [{"input": f"word {i}", "output": f"other {i}"} for i in range(12)]
    assert read_meta(train(rewrites, "rewrites")).copy_input is False
    assert read_meta(train(spans, "off", copy_decoding="off")).copy_input is False

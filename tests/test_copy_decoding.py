"""Copy decoding (common.copy_decoding): which outputs count as spans, the span tracker, greedy
held to spans of each row's input tokens, the ONNX and torch students agreeing on it, and
training deciding it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from common.copy_decoding import (
    MIN_SPAN_SHARE,
    SpanTracker,
    as_written,
    is_span,
    rewrite_as_written,
    span_share,
    word_bounds,
)
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


def test_an_output_that_is_a_span_up_to_case_is_rewritten_as_the_input_writes_it() -> None:
    assert as_written("po box 11407 dallas tx 75312", "Dallas") == "dallas"
    assert as_written("9 main st kansas city mo", " Kansas City ") == "kansas city"
    assert as_written("9 MAIN ST OCEAN ISLE BEACH NC", "Ocean Isle Beach") == "OCEAN ISLE BEACH"
    assert as_written("po box 1 dallas tx", "dallas") is None  # already as written
    assert as_written("po box 1 dallas tx", "Houston") is None  # not in the input at all
    assert as_written("po box 1 dallas tx", " ") is None
    rows = [
        {"input": "1 elm st dallas tx", "output": "Dallas", "id": 7},
        {"input": "2 oak st Reno nv", "output": "Reno"},
        {"input": "3 fir st Sioux Falls sd", "output": "S Sioux Falls"},
    ]
    fixed, changed = rewrite_as_written(rows)
    assert changed == 1 and [r["output"] for r in fixed] == ["dallas", "Reno", "S Sioux Falls"]
    assert fixed[0]["id"] == 7 and rows[0]["output"] == "Dallas"  # other keys kept, input intact


def test_the_tracker_allows_any_input_token_first_then_only_continuations() -> None:
    """Input 5 7 5 8: any of its tokens starts; after 5 the next may be 7 or 8 (both places
    where 5 occurs); after 5 7 only 5; the end token always; an ended row only the end token."""
    tracker = SpanTracker([[5, 7, 5, 8], [9]], EOS)
    allowed = lambda row: np.flatnonzero(tracker.mask(VOCAB)[row]).tolist()  # noqa: E731
    assert allowed(0) == [EOS, 5, 7, 8] and allowed(1) == [EOS, 9]
    tracker.update([5, 9])
    assert allowed(0) == [EOS, 7, 8] and allowed(1) == [EOS]  # 9 ends its input
    tracker.update([7, EOS])
    assert allowed(0) == [EOS, 5] and allowed(1) == [EOS]
    tracker.update([5, PAD])
    assert allowed(0) == [EOS, 8]


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


def test_greedy_held_to_spans_takes_the_best_continuation_of_each_row() -> None:
    """Free greedy answers 11 every step. Held to spans of 4 9 3 10 it starts at its best token,
    10, which nothing follows, so it ends; of 9 4 9 3: 9, then the best continuation 4 (3 only
    follows the second 9), then 9, then 3; a row whose input holds nothing can only end."""
    free = greedy(FixedStep(4), 2, start=START, eos=EOS, pad=PAD, max_new=8)
    assert free == [[11, 11, 11, 11], [11, 11, 11, 11]]
    spans = [[4, 9, 3, 10], [9, 4, 9, 3], []]
    tracker = SpanTracker(spans, EOS)
    held = greedy(FixedStep(4), 3, start=START, eos=EOS, pad=PAD, max_new=8, spans=tracker)
    assert held == [[10], [9, 4, 9, 3], []]


def test_word_bounds_start_at_a_words_first_piece_and_end_after_its_last() -> None:
    """`12 ¤c west ##ville ¤x , ¤u wv`: a span starts at 12, ¤c, ',' or ¤u (not at west, which
    its case marker owns, nor at ##ville or ¤x) and ends after 12, ##ville, ',' or wv (not
    after a marker, nor after west, which ##ville continues)."""
    pieces = ["12", "¤c", "west", "##ville", "¤x", ",", "¤u", "wv"]
    starts, ends = word_bounds(pieces)
    assert [p for p, ok in zip(pieces, starts, strict=True) if ok] == ["12", "¤c", ",", "¤u"]
    assert [p for p, ok in zip(pieces, ends, strict=True) if ok] == ["12", "##ville", ",", "wv"]
    # McDonough is one word ("Mc" and "Donough" joined); "(" and "," are words of their own
    glued = ["(", "¤x", "¤c", "mc", "¤x", "¤c", "don", "##ough", "¤x", ",", "¤u", "ga"]
    starts, ends = word_bounds(glued)
    assert [p for p, ok in zip(glued, starts, strict=True) if ok] == ["(", "¤c", ",", "¤u"]
    assert [i for i, ok in enumerate(ends) if ok] == [0, 7, 9, 11]
    sp_starts, sp_ends = word_bounds(["▁West", "ville", "▁WV"])  # SentencePiece word marks
    assert sp_starts == [True, False, True] and sp_ends == [False, True, True]


def test_the_word_tracker_starts_only_at_word_starts_and_ends_only_at_word_ends() -> None:
    """Ids 5 6 7 8 for the pieces `¤c west ##ville wv`: the first step may be 5 or 8 and not the
    end token (there is a word to copy); after 5 only 6; after 5 6 only 7 (a word's middle);
    after 5 6 7 the next word or the end; a row whose only pieces are markers may only end."""
    tracker = SpanTracker([[5, 6, 7, 8], [9]], EOS, [["¤c", "west", "##ville", "wv"], ["¤x"]])
    allowed = lambda row: np.flatnonzero(tracker.mask(VOCAB)[row]).tolist()  # noqa: E731
    assert allowed(0) == [5, 8] and allowed(1) == [EOS]
    tracker.update([5, EOS])
    assert allowed(0) == [6]
    tracker.update([6, PAD])
    assert allowed(0) == [7]
    tracker.update([7, PAD])
    assert allowed(0) == [EOS, 8]
    with pytest.raises(ValueError, match="one piece per token id"):
        SpanTracker([[5, 6]], EOS, [["a"]])


def test_greedy_held_to_word_spans_does_not_stop_inside_a_word() -> None:
    """The logits prefer the end token after one step. Token spans stop after the best start,
    10, a word's first piece; word spans must finish the word (10 then 11, its `##` piece),
    and may not start at 11."""
    ids, pieces = [[4, 10, 11]], [["elm", "west", "##ville"]]
    token = greedy(
        FixedStep(1), 1, start=START, eos=EOS, pad=PAD, max_new=8, spans=SpanTracker(ids, EOS)
    )
    word = greedy(
        FixedStep(1),
        1,
        start=START,
        eos=EOS,
        pad=PAD,
        max_new=8,
        spans=SpanTracker(ids, EOS, pieces),
    )
    assert token == [[11]] and word == [[10, 11]]


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
    ("copy_input", "own_labels", "labels", "free", "expected"),
    [
        (True, [], None, False, True),
        (False, [], None, False, False),  # not an extraction student
        (True, [], None, True, False),  # beams or a minimum length decode freely
        (True, [], [], False, False),  # labels=[]: free decoding asked for
        (True, ["a"], None, False, False),  # its own label set decodes by its own rule
        (True, [], ["a", "b"], False, False),  # so does a label set given by the caller
    ],
)
def test_one_rule_says_when_greedy_decoding_copies(copy_input, own_labels, labels, free, expected):
    meta = StudentMeta("{input}", 0, 0, 1, labels=own_labels, copy_input=copy_input)
    assert meta.copies(labels, free) is expected


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
    """fp32 ONNX and PyTorch, both copy_input: the same tokens for each of 30 inputs, each
    answer a contiguous run of that input's tokens; this random model's free answers are not."""
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
    own = [rt.tokenizer.encode(x, add_special_tokens=False) for x in inputs]
    assert all(onnx)  # each input has a word to copy: no empty answer
    for ids, enc in zip(onnx, own, strict=True):
        assert _is_word_run(ids, enc.ids, enc.tokens), (ids, enc.tokens)
    own = [enc.ids for enc in own]
    free = rt.generate_ids(inputs, batch_size=7, max_new_tokens=8, labels=[])
    assert not all(_is_run(ids, src) for ids, src in zip(free, own, strict=True))


def test_the_eval_report_says_whether_copy_decoding_applied(copying) -> None:
    """distill eval's ONNX and torch targets record copy decoding: on for a copy_input
    student, off with --free-decoding."""
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.targets import predict_model, predict_onnx

    model_dir, onnx_dir = copying
    inputs = tiny_models.random_inputs(3, seed=4)
    cfg = EvalConfig(latency_samples=1, max_new_tokens=4)
    assert predict_onnx(onnx_dir, inputs, cfg).extra["copy_decoding"] is True
    assert predict_model(model_dir, inputs, cfg).extra["copy_decoding"] is True
    free = EvalConfig(latency_samples=1, max_new_tokens=4, free_decoding=True)
    assert predict_onnx(onnx_dir, inputs, free).extra["copy_decoding"] is False


def _is_word_run(ids: list[int], source: list[int], pieces: list[str]) -> bool:
    """True when `ids` occur in `source` one after another, starting where a word starts and
    ending where one ends (common.copy_decoding.word_bounds)."""
    starts, ends = word_bounds(pieces)
    n = len(ids)
    return any(
        source[i : i + n] == ids and starts[i] and ends[i + n - 1]
        for i in range(len(source) - n + 1)
    )


def _is_run(ids: list[int], source: list[int]) -> bool:
    """True when `ids` occur in `source` one after another (empty: trivially)."""
    n = len(ids)
    return any(source[i : i + n] == ids for i in range(len(source) - n + 1))


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
    assert metrics["copy_decoding"] == {"span_share": 1.0, "on": True, "as_written": 0}
    assert "copies from its input" in (out / "README.md").read_text()
    # two outputs the teacher re-capitalised: 10 of 12 are spans as written (0.83 >= 0.75)
    recased = [{**r, "output": r["output"].title()} if i < 2 else r for i, r in enumerate(spans)]
    metrics = json.loads((train(recased, "recased") / "metrics.json").read_text())
    assert metrics["copy_decoding"] == {"span_share": 0.8333, "on": True, "as_written": 2}
    kept = train(recased, "kept", copy_as_written=False)
    assert json.loads((kept / "metrics.json").read_text())["copy_decoding"]["as_written"] == 0
    rewrites = [{"input": f"word {i}", "output": f"other {i}"} for i in range(12)]
    assert read_meta(train(rewrites, "rewrites")).copy_input is False
    assert read_meta(train(spans, "off", copy_decoding="off")).copy_input is False

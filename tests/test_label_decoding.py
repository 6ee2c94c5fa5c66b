"""Greedy decoding inside a label set (common.label_decoding): the steps it takes, its agreement
with free greedy, the ONNX and torch students agreeing on it, and training keeping the set."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tiny_models

from common.label_decoding import LabelDecoder, completion, label_greedy, label_trie
from common.meta import StudentMeta, read_meta, write_meta
from exports.decoding import greedy

EOS, PAD, START, VOCAB = 2, 0, 1, 40


class ScriptedStep:
    """A fake cached decoder: a row's logits depend only on the tokens it was fed, pseudo-random
    from `seed`, plus `bonus` on each token that continues some label of `trie` from there (so
    free greedy often, not always, spells a label)."""

    def __init__(self, batch: int, seed: int, trie: dict, bonus: float) -> None:
        self.history: list[list[int]] = [[] for _ in range(batch)]
        self.seed, self.trie, self.bonus = seed, trie, bonus

    def __call__(self, tokens: np.ndarray, reorder: np.ndarray | None) -> np.ndarray:
        assert reorder is None
        out = np.zeros((len(tokens), VOCAB), dtype=np.float32)
        for b, tok in enumerate(tokens[:, 0].tolist()):
            self.history[b].append(tok)
            key = hashlib.sha256(f"{self.seed}:{self.history[b]}".encode()).digest()
            out[b] = np.random.default_rng(list(key[:8])).normal(size=VOCAB)
            node = self.trie
            for t in self.history[b][1:]:
                node = node.get(t, {})
            for t in node:
                out[b, t] += self.bonus
        return out


# Intent-like labels: two share a five-token stem ("search _ x _"), one stands alone, and one is
# a prefix of another (so the end token competes with a continuation).
LABELS = [
    [5, 9, 7, 9, 20, 9, 7, 9, 21],
    [5, 9, 7, 9, 30, 9, 7, 9, 31],
    [6, 9, 7, 9, 33],
    [8],
    [8, 11],
]


def _decode(step, batch: int) -> list[list[int]]:
    return label_greedy(step, batch, trie=label_trie(LABELS, EOS), start=START, eos=EOS, pad=PAD)


class Fixed:
    """Logits that prefer `order[i]` at the i-th call, for every row."""

    def __init__(self, order: list[int]) -> None:
        self.order, self.fed = order, []

    def __call__(self, tokens: np.ndarray, reorder: np.ndarray | None) -> np.ndarray:
        self.fed.append(tokens[:, 0].tolist())
        logits = np.zeros((len(tokens), VOCAB), dtype=np.float32)
        logits[:, self.order[len(self.fed) - 1]] = 5.0
        return logits


def test_a_label_left_alone_is_finished_without_more_steps() -> None:
    """Choosing token 6 leaves one label: one decoder step in all, not six."""
    step = Fixed([6])
    assert _decode(step, 1) == [LABELS[2]]
    assert step.fed == [[START]]


def test_shared_tokens_are_fed_without_choosing_and_the_branch_reads_the_logits() -> None:
    """Token 5 leaves two labels that share 9 7 9: those are fed (steps 2-4, their logits
    unread: the fake prefers 40, which no label allows there), step 5 chooses 30, and the rest of
    that label is appended: five steps, against ten for free greedy."""
    step = Fixed([5, 39, 39, 39, 30])
    assert _decode(step, 1) == [LABELS[1]]
    assert step.fed == [[START], [5], [9], [7], [9]]


def test_the_end_token_competes_with_a_longer_label() -> None:
    """After 8, label [8] ends or [8, 11] goes on: the logits decide."""
    assert _decode(Fixed([8, EOS]), 1) == [[8]]
    assert _decode(Fixed([8, 11]), 1) == [[8, 11]]
    # The favourite (39) is not allowed: the end and 11 tie at 0, and the lower id (the end) wins.
    assert _decode(Fixed([8, 39]), 1) == [[8]]


def test_a_tie_goes_to_the_lower_token_id() -> None:
    """Equal logits everywhere: the lowest allowed id at each choice, as argmax would."""

    def flat(tokens: np.ndarray, _r: np.ndarray | None) -> np.ndarray:
        return np.zeros((len(tokens), VOCAB), dtype=np.float32)

    assert _decode(flat, 2) == [LABELS[0], LABELS[0]]


def test_one_label_needs_no_decoder_step() -> None:
    def never(tokens: np.ndarray, _r: np.ndarray | None) -> np.ndarray:
        raise AssertionError("no step expected")

    trie = label_trie([[4, 3]], EOS)
    assert completion(trie, EOS) == [4, 3]
    assert label_greedy(never, 3, trie=trie, start=START, eos=EOS, pad=PAD) == [[4, 3]] * 3
    with pytest.raises(ValueError, match="at least one label"):
        label_greedy(never, 1, trie={}, start=START, eos=EOS, pad=PAD)


def test_rows_in_a_batch_finish_at_different_steps_and_are_fed_pad() -> None:
    """Row 0 finishes at step 1 (token 6), row 1 needs five steps; row 0 is fed pad after."""
    fed: list[list[int]] = []

    def step(tokens: np.ndarray, _r: np.ndarray | None) -> np.ndarray:
        fed.append(tokens[:, 0].tolist())
        logits = np.zeros((2, VOCAB), dtype=np.float32)
        logits[0, 6] = logits[1, 5] = 1.0
        logits[1, 21 if len(fed) < 5 else 20] = 0.5
        return logits

    assert _decode(step, 2) == [LABELS[2], LABELS[0]]
    assert fed == [[START, START], [PAD, 5], [PAD, 9], [PAD, 7], [PAD, 9]]


def test_equals_free_greedy_whenever_free_greedy_answers_a_label() -> None:
    """Over 400 pseudo-random decoders: where free greedy's output is a label, label decoding
    returns exactly it; every label-decoded output is a label; both cases occur."""
    labels, trie = {tuple(x) for x in LABELS}, label_trie(LABELS, EOS)
    agree = rescued = 0
    for seed in range(400):
        free = greedy(
            ScriptedStep(1, seed, trie, 2.5), 1, start=START, eos=EOS, pad=PAD, max_new=12
        )
        got = _decode(ScriptedStep(1, seed, trie, 2.5), 1)
        assert tuple(got[0]) in labels
        if tuple(free[0]) in labels:
            assert got == free
            agree += 1
        else:
            rescued += 1
    assert agree >= 40 and rescued >= 40


def test_label_decoder_build() -> None:
    assert LabelDecoder.build([], start=START, eos=EOS, pad=PAD) is None
    dec = LabelDecoder.build([[8]], start=START, eos=EOS, pad=PAD)
    assert dec is not None and dec(Fixed([]), 2) == [[8], [8]]


def test_meta_keeps_labels_and_rejects_a_bad_value(tmp_path: Path) -> None:
    meta = StudentMeta("{input}", 101, 0, 102, labels=["yes", "no"])
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path).labels == ["yes", "no"]
    write_meta(tmp_path, StudentMeta("{input}", 101, 0, 102))
    assert "labels" not in json.loads((tmp_path / "distill.json").read_text())
    with pytest.raises(ValueError, match="key 'labels' must be a list of strings"):
        StudentMeta.from_dict({**meta.to_dict(), "labels": "yes"})


# ---- the exported tiny T5 and its PyTorch twin -------------------------------------------------

TINY_LABELS = ["yes", "no", "new york", "not at all", "maybe"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The shared tiny T5 export, copied with TINY_LABELS in both distill.json files."""
    return tiny_models.exported_tiny_with(
        tmp_path_factory.mktemp("labelled"), "t5", labels=TINY_LABELS
    )


def test_onnx_and_torch_students_answer_the_same_label(labelled) -> None:
    """fp32 ONNX and PyTorch, both held to the label set of distill.json: the same answer for
    each of 30 inputs, always a label; free decoding (labels=[]) of this random model is not."""
    from exports.runtime import OnnxSeq2Seq
    from students.predict import TorchPredictor

    model_dir, onnx_dir = labelled
    inputs = tiny_models.random_inputs(30, seed=3)
    rt = OnnxSeq2Seq(onnx_dir, threads=1, precision="fp32")
    onnx = rt.generate(inputs, batch_size=7)
    torch_out = TorchPredictor(model_dir).generate(inputs, batch_size=7)
    assert onnx == torch_out
    assert set(onnx) <= set(TINY_LABELS)
    free = rt.generate(inputs, labels=[], max_new_tokens=8)
    assert not set(free) <= set(TINY_LABELS)
    assert rt.generate(inputs[:3], labels=["maybe"]) == ["maybe"] * 3
    assert rt.generate(inputs[:3], num_beams=2, max_new_tokens=8) == rt.generate(
        inputs[:3], num_beams=2, max_new_tokens=8, labels=[]
    )


def test_the_gate_checks_parity_freely_and_judges_int8_on_the_label_set(labelled) -> None:
    """The export gate's fp32 half: parity with PyTorch on free greedy (so it still passes on a
    random model whose free answers are no labels), and the texts int8 is judged against are
    label-set answers, what ships."""
    from transformers import AutoModelForSeq2SeqLM

    from exports.config import ExportConfig
    from exports.gate import check_fp32

    model_dir, onnx_dir = labelled
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    rows = [(x, None) for x in tiny_models.random_inputs(12, seed=4)]
    check = check_fp32(model, onnx_dir, ExportConfig(gate_batch_size=5), rows)
    assert check.gate["status"] == "passed" and check.gate["fp32_token_parity"] == 1.0
    assert set(check.texts) <= set(TINY_LABELS)


def test_eval_reports_the_label_set_and_free_decoding_turns_it_off(labelled, tmp_path) -> None:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.targets import predict_onnx

    _, onnx_dir = labelled
    inputs = tiny_models.random_inputs(6, seed=5)
    held = predict_onnx(onnx_dir, inputs, EvalConfig(latency_samples=1, student_threads=1))
    assert held.extra["decoding_labels"] == len(TINY_LABELS)
    assert set(held.texts) <= set(TINY_LABELS)
    cfg = EvalConfig(latency_samples=1, student_threads=1, free_decoding=True, max_new_tokens=8)
    free = predict_onnx(onnx_dir, inputs, cfg)
    assert free.extra["decoding_labels"] == 0
    assert not set(free.texts) <= set(TINY_LABELS)


# ---- training keeps the label set ----------------------------------------------------------------


def test_decoding_labels_only_when_every_output_is_a_label(capsys) -> None:
    from students.train import decoding_labels

    assert decoding_labels(["a", "b"], ["a", " b ", "a"]) == ["a", "b"]
    assert decoding_labels(["a", "b"], ["a", "c"]) == []
    assert "1 training output(s) outside the label set (e.g. 'c')" in capsys.readouterr().out
    assert decoding_labels([], ["a"]) == []


def test_training_writes_the_manifest_labels_and_a_warm_start_inherits_them(tmp_path) -> None:
    """train_model reads rules.labels from the data's manifest into distill.json; a run that
    starts from that student (a refine round: data without a manifest) keeps them; with
    label_decoding off none are written."""
    from distill.stages.train import train_model
    from students.config import TrainConfig

    labels = ["yes", "no", "maybe"]
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"input": f"word {i}", "output": labels[i % 3]} for i in range(12)]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = {"task": {"name": "t", "instruction": "Answer."}, "rules": {"labels": labels}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    student = tiny_models.tiny_t5_dir(tmp_path / "s")
    cfg = TrainConfig(student=str(student), epochs=1, batch_size=8, threads=1, patience=0)
    train_model(None, cfg, data, tmp_path / "m1")
    assert read_meta(tmp_path / "m1").labels == labels
    assert "answers one of 3 labels" in (tmp_path / "m1" / "README.md").read_text()
    metrics = json.loads((tmp_path / "m1" / "metrics.json").read_text())
    assert metrics["decoding_labels"] == labels
    (data / "manifest.json").write_text(json.dumps({"task": manifest["task"]}))
    warm = TrainConfig(student=str(tmp_path / "m1"), epochs=1, batch_size=8, threads=1)
    train_model(None, warm, data, tmp_path / "m2")
    assert read_meta(tmp_path / "m2").labels == labels
    off = TrainConfig(student=str(tmp_path / "m1"), epochs=1, batch_size=8, label_decoding=False)
    train_model(None, off, data, tmp_path / "m3")
    assert read_meta(tmp_path / "m3").labels == []


# ---- benchmarks/label_decoding.py ------------------------------------------------------------------


def test_benchmark_scores_both_decodings_of_a_run(labelled, tmp_path) -> None:
    """A run dir (the tiny T5 export, a manifest with the label set, a gold test set): the JSON
    holds each mode's exact match computed from its predictions, the outputs outside the set
    (free only), and latencies of both modes; the table has one row per run."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import label_decoding

    from exports.runtime import OnnxSeq2Seq

    run = tmp_path / "runs" / "tiny-run"
    shutil.copytree(labelled[1], run / "onnx")
    meta = read_meta(run / "onnx")
    meta.labels = []  # an export from before distill.json kept labels: the manifest's are used
    write_meta(run / "onnx", meta)
    (run / "data").mkdir()
    (run / "data" / "manifest.json").write_text(json.dumps({"rules": {"labels": TINY_LABELS}}))
    inputs = tiny_models.random_inputs(8, seed=9)
    held = OnnxSeq2Seq(run / "onnx", threads=1).generate(inputs, labels=TINY_LABELS)
    gold = [held[0], *["no-such-label"] * 7]  # one right answer, whatever this model prefers
    rows = [{"input": x, "output": y} for x, y in zip(inputs, gold, strict=True)]
    (run / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "res" / "ld"
    argv = ["--runs", "tiny-run", "--runs-dir", str(tmp_path / "runs"), "--latency-n", "3"]
    assert label_decoding.main([*argv, "--out", str(out)]) == 0
    (r,) = json.loads(out.with_suffix(".json").read_text())["results"]
    assert r["em_label_set"] == 12.5 and r["n"] == 8 and r["latency_n"] == 3
    assert r["free_outside_set"] == 8 - r["free_in_set"] and r["free_outside_set"] > 0
    assert r["speedup"] == pytest.approx(r["p50_ms_free"] / r["p50_ms_label_set"], rel=0.02)
    table = out.with_suffix(".md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith("| tiny-run | ")

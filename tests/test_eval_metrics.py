"""Metric values against reference implementations and hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from distill.evaluation import metrics as M
from distill.evaluation.loading import load_metric, local_metric_names

PREDS = ["the cat sat on the mat", "2019 - 01 - 05", "A dog.", "hello world", "positive"]
REFS = ["the cat sat on a mat", "2019-01-05", "the dog", "goodbye world", "positive"]


def test_exact_match_plain_squad_nospace_by_hand() -> None:
    assert M.exact_match(PREDS, REFS).score == pytest.approx(1 / 5)
    # squad drops articles ("on the mat" == "on a mat") and punctuation ("A dog." == "the dog"),
    # but "2019 - 01 - 05" -> "2019 01 05" still differs from "2019-01-05" -> "20190105".
    assert M.exact_match(PREDS, REFS, M.normalize_squad).per_example.tolist() == [1, 0, 1, 0, 1]
    # nospace forgives only the spaced-out punctuation of the date
    assert M.exact_match(PREDS, REFS, M.normalize_nospace).per_example.tolist() == [0, 1, 0, 0, 1]
    assert M.normalize_squad("The  Cat, an apple!") == "cat apple"


def test_chrf_matches_sacrebleu_corpus_and_sentence_on_a_0_1_scale() -> None:
    from sacrebleu.metrics import CHRF

    ref = CHRF(word_order=2)
    result = M.chrf(PREDS, REFS)
    assert result.score == pytest.approx(ref.corpus_score(PREDS, [REFS]).score / 100, abs=1e-11)
    for i, (p, r) in enumerate(zip(PREDS, REFS, strict=True)):
        expected = ref.sentence_score(p, [r]).score / 100
        assert result.per_example[i] == pytest.approx(expected, abs=1e-11)


def test_accuracy_and_macro_f1_by_hand() -> None:
    preds = ["pos", "neg", "pos", "neu", "POS ", "other"]
    refs = ["pos", "pos", "neg", "neu", "pos", "neg"]
    assert M.accuracy(preds, refs).score == pytest.approx(3 / 6)
    # pos: tp=2 fp=1 fn=1 -> 4/6; neg: tp=0 fp=1 fn=2 -> 0; neu: tp=1 -> 1. Mean = 5/9.
    result = M.macro_f1(preds, refs)
    assert result.score == pytest.approx(5 / 9)
    assert result.score == pytest.approx(M._macro_f1_reference(preds, refs))


def test_bootstrap_ci_brackets_score_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    hits = (rng.random(200) < 0.7).astype(float).tolist()
    result = M._from_per_example("em", hits)
    low, high = M.bootstrap_ci(result, samples=500, seed=3)
    assert low < result.score < high
    assert (low, high) == M.bootstrap_ci(result, samples=500, seed=3)
    # normal approximation of a proportion's 95% interval: half-width ~ 1.96 * sqrt(p(1-p)/n)
    half = 1.96 * np.sqrt(result.score * (1 - result.score) / 200)
    assert (high - low) / 2 == pytest.approx(half, rel=0.25)


def test_bootstrap_of_chrf_recomputes_corpus_score() -> None:
    result = M.chrf(PREDS, REFS)
    low, high = M.bootstrap_ci(result, samples=200)
    assert 0 <= low <= result.score <= high <= 1


def test_unknown_metric_lists_names() -> None:
    with pytest.raises(ValueError, match=r"unknown metric 'bleu4'.*chrf"):
        M.compute_metric("bleu4", ["a"], ["a"])


def test_evaluate_modules_load_offline_and_agree() -> None:
    assert local_metric_names() == [
        "distill_bertscore",
        "distill_chrf",
        "distill_exact_match",
        "distill_labels",
    ]
    chrf = load_metric("distill_chrf").compute(predictions=PREDS, references=REFS)
    assert chrf["chrf"] == pytest.approx(M.chrf(PREDS, REFS).score)
    em = load_metric("distill_exact_match").compute(
        predictions=PREDS, references=REFS, normalize="nospace"
    )
    assert em["exact_match"] == pytest.approx(2 / 5)
    labels = load_metric("distill_labels").compute(predictions=["a", "b"], references=["a", "a"])
    assert labels == {"accuracy": 0.5, "macro_f1": pytest.approx(2 / 3)}


def test_unknown_hub_metric_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="metric 'no_such_metric_xyz' is not built in"):
        load_metric("no_such_metric_xyz")


def test_bertscore_matches_bert_score_package() -> None:
    from bert_score import score

    preds, refs = ["the cat sat on the mat", "a quick test"], ["a cat sat on the mat", "slow"]
    path = M.default_bertscore_model()
    ours = M.bertscore(preds, refs)
    _, _, f1 = score(preds, refs, model_type=path, num_layers=6)
    assert ours.per_example.tolist() == pytest.approx(f1.double().tolist(), abs=1e-6)
    assert ours.per_example[0] > ours.per_example[1]

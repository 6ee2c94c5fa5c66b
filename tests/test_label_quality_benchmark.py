"""benchmarks/label_quality.py: the demonstration rotations, each label strategy's exact
predictions on hand-made distributions, and the table it writes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import label_quality  # noqa: E402

from distill.task import load_task  # noqa: E402

LABELS = ["positive", "negative", "neutral"]


def test_rotations_keep_the_file_order_first_and_shift_the_rest() -> None:
    """One task per order: the file's own first, then each demonstration moved to the front."""
    task = load_task(BENCH / "tasks" / "sentiment.toml")
    outs = [[d.output for d in t.demonstrations] for t in label_quality.rotations(task)]
    assert outs == [
        ["positive", "neutral", "ambivalent"],
        ["neutral", "ambivalent", "positive"],
        ["ambivalent", "positive", "neutral"],
    ]
    assert all(t.instruction == task.instruction for t in label_quality.rotations(task))


def test_calibration_divides_by_the_mean_distribution() -> None:
    """A teacher that leans to `positive`: dividing by the prior (mean 0.6 / 0.3 / 0.1) turns
    the second input's 0.5 positive / 0.2 neutral into neutral (0.83 < 2.0); a = 0 is argmax."""
    probs = np.array([[0.8, 0.2, 0.0], [0.5, 0.3, 0.2], [0.5, 0.4, 0.1]])
    assert np.allclose(probs.mean(axis=0), [0.6, 0.3, 0.1])
    assert label_quality.calibrated(probs, 1.0).tolist() == [0, 2, 1]
    assert label_quality.calibrated(probs, 0.0).tolist() == [0, 0, 0]


def test_order_vote_takes_the_majority_and_a_tie_keeps_the_first_order() -> None:
    greedy = np.array([[0, 1, 2], [1, 1, 0], [1, 2, 1]])  # (orders, inputs)
    assert label_quality.order_vote(greedy).tolist() == [1, 1, 2]


def test_distributions_keep_inputs_every_order_labelled_and_renormalise() -> None:
    """Inputs one order lacks are dropped; each row sums to 1 over the label set (first-token
    probabilities of other tokens are left out)."""
    runs = [
        [
            {"input": "a", "label_probs": {"positive": 0.6, "negative": 0.2}},
            {"input": "b", "label_probs": {"neutral": 0.5}},
        ],
        [{"input": "a", "label_probs": {"positive": 0.2, "negative": 0.2, "neutral": 0.4}}],
    ]
    keys, probs = label_quality.distributions(runs, LABELS)
    assert keys == ["a"]
    assert np.allclose(probs[:, 0], [[0.75, 0.25, 0.0], [0.25, 0.25, 0.5]])


def test_scores_count_hits_and_the_paired_difference_from_greedy() -> None:
    """Greedy is right on 2 of 4; the ensemble on 3 of 4 (one more, none fewer); the
    confidence filter keeps the inputs over its threshold and reports no paired difference."""
    gold = np.array([0, 1, 2, 2])
    greedy = np.array([[0, 1, 0, 0], [0, 1, 2, 0]])
    probs = np.array(
        [
            [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.5, 0.0, 0.5], [0.6, 0.0, 0.4]],
            [[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.3, 0.0, 0.7], [0.6, 0.0, 0.4]],
        ]
    )
    rows = label_quality.score(gold, label_quality.strategies(greedy, probs, None), LABELS)
    assert "content-free" not in rows  # no prior: no such row
    assert rows["greedy"]["accuracy"] == 50.0 and rows["greedy"]["n"] == 4
    assert rows["greedy, rotation 1"]["accuracy"] == 75.0  # the second order's own answers
    ens = rows["order ensemble"]
    assert ens["accuracy"] == 75.0 and ens["labels"] == {"positive": 2, "negative": 1, "neutral": 1}
    assert ens["vs_greedy"]["diff"] == 25.0
    assert (ens["vs_greedy"]["student_only"], ens["vs_greedy"]["teacher_only"]) == (1, 0)
    conf = rows["confident >= 0.7"]
    assert conf["n"] == 2 and conf["accuracy"] == 100.0 and "vs_greedy" not in conf


def test_markdown_has_a_row_per_strategy_and_the_confusion_matrix() -> None:
    gold = np.array([0, 1, 2])
    greedy = np.array([[0, 0, 2]])
    probs = np.array([[[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]])
    prior = np.array([0.6, 0.2, 0.2])  # content-free: second input 1.0 / 1.5 / 0.5 -> negative
    rows = label_quality.score(gold, label_quality.strategies(greedy, probs, prior), LABELS)
    assert rows["content-free"]["accuracy"] == 100.0
    assert rows["content-free"]["vs_greedy"]["diff"] == 33.33
    conf = label_quality.confusion(gold, greedy[0], LABELS)
    assert conf["negative"] == {"positive": 1, "negative": 0, "neutral": 0}
    meta = {"task": "t", "n": 3, "orders": 1, "gold": {"positive": 1},
            "content_free_prior": {"positive": 0.6, "negative": 0.2, "neutral": 0.2}}  # fmt: skip
    md = label_quality.markdown(meta, rows, conf)
    assert (
        "Content-free prior (the file's order): positive 0.60 / negative 0.20 / neutral 0.20." in md
    )
    assert "| content-free | 3 | 100.0 [" in md
    assert "| greedy | 3 | 66.7 [" in md
    assert md.count("\n| calibrated a=") == len(label_quality.ALPHAS)
    assert "| negative | 1 | 0 | 0 |" in md

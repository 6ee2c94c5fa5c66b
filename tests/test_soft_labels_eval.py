"""Calibration in `distill eval`: ECE by hand, for a student (label-sequence scores, torch and
ONNX) and for a teacher (logprobs from the loopback server); the table's ECE column."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from distill.cli import main
from distill.evaluation.calibration import calibration_block, expected_calibration_error
from distill.evaluation.config import EvalConfig
from distill.evaluation.engine import evaluate_target
from distill.evaluation.reports import compare_markdown
from distill.generate.labels import make_label_set
from distill.task import Demonstration, TaskSpec
from teachers.config import TeacherConfig
from teachers.testing import FakeOpenAIServer

LABELS = ["yes", "no", "maybe"]
TASK = TaskSpec(
    name="yn",
    instruction="Answer yes, no or maybe.",
    demonstrations=(Demonstration("is it on", "yes"), Demonstration("is it off", "no")),
    tables={"generate": {"labels": LABELS}},
)


def ece_by_hand(conf: list[float], correct: list[bool]) -> float:
    """Ten bins [0, .1), ..., [.9, 1]; sum of |B|/n * |accuracy - mean confidence|."""
    bins: dict[int, list[int]] = {}
    for i, c in enumerate(conf):
        bins.setdefault(min(int(c * 10), 9), []).append(i)
    total = 0.0
    for members in bins.values():
        acc = sum(correct[i] for i in members) / len(members)
        mean = sum(conf[i] for i in members) / len(members)
        total += len(members) / len(conf) * abs(acc - mean)
    return total


def test_ece_equals_a_hand_computed_value() -> None:
    # bin 9: .95 right, .92 wrong, 1.0 right -> |2/3 - 2.87/3| * 3/6 = 0.145
    # bin 6: .65 right, .62 right -> |1 - .635| * 2/6 = 0.365 / 3
    # bin 3: .30 wrong -> .30 * 1/6 = 0.05
    conf = [0.95, 0.92, 0.65, 0.62, 0.30, 1.0]
    correct = [True, False, True, True, False, True]
    assert expected_calibration_error(conf, correct) == pytest.approx(0.145 + 0.365 / 3 + 0.05)
    assert expected_calibration_error([0.5, 0.5], [True, False]) == 0.0
    # the same through distributions and references (the top label is the prediction)
    five = ["yes", "no", "maybe", "often", "never"]  # a top confidence of 0.30 needs > 3 labels
    labels = make_label_set(five)
    dists = [{"yes": c, **{x: (1 - c) / 4 for x in five[1:]}} for c in conf]
    refs = ["Yes" if ok else "no" for ok in correct]  # spelled as the set's canonical() reads
    block = calibration_block([*dists, None], [*refs, "yes"], labels, "test", samples=0)
    assert block is not None
    assert block["ece"] == pytest.approx(0.145 + 0.365 / 3 + 0.05)
    assert block["n"] == 6 and block["label_accuracy"] == pytest.approx(4 / 6)
    assert block["ci95"] is None


def write_test(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
    return path


# What the fake teacher believes for each test input (its answer is the first label listed).
BELIEF = {
    "q one": {"yes": 0.9, "no": 0.08, "maybe": 0.02},
    "q two": {"no": 0.6, "yes": 0.3, "maybe": 0.1},
    "q three": {"maybe": 0.55, "no": 0.45},
    "q four": {"yes": 0.97, "no": 0.03},
}
REFS = {"q one": "yes", "q two": "yes", "q three": "maybe", "q four": "no"}


def answer(body: dict, index: int) -> str:
    return next(iter(BELIEF[body["messages"][-1]["content"]]))


def logprobs(body: dict, index: int, text: str) -> list[dict]:
    belief = BELIEF[body["messages"][-1]["content"]]
    top = [{"token": k, "logprob": math.log(p)} for k, p in belief.items()]
    return [{"token": text, "logprob": top[0]["logprob"], "top_logprobs": top}]


def test_teacher_ece_from_its_logprobs(tmp_path: Path) -> None:
    data = write_test(tmp_path / "test.jsonl", list(REFS.items()))
    cfg = EvalConfig(teacher_top_logprobs=5, bootstrap_samples=0, latency_samples=0)
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        report = evaluate_target(
            f"teacher:{server.base_url}", data, task=TASK, cfg=cfg,
            teacher_cfg=TeacherConfig(model="fake"),
        )  # fmt: skip
        assert all(b["top_logprobs"] == 5 for b in server.requests)
    # every belief sums to 1 over the labels (a label not listed has 0 mass left to share)
    conf = [max(BELIEF[x].values()) for x in REFS]
    correct = [next(iter(BELIEF[x])) == REFS[x] for x in REFS]
    calib = report["calibration"]
    assert calib["ece"] == pytest.approx(ece_by_hand(conf, correct), rel=1e-9)
    assert calib["source"] == "teacher logprobs" and calib["n"] == 4
    assert calib["label_accuracy"] == pytest.approx(2 / 4)
    assert "ECE % (95% CI)" in compare_markdown([report])


def test_teacher_without_logprobs_has_no_calibration(tmp_path: Path) -> None:
    data = write_test(tmp_path / "test.jsonl", list(REFS.items()))
    cfg = EvalConfig(bootstrap_samples=0, latency_samples=0)
    with FakeOpenAIServer(answer, logprobs_fn=logprobs) as server:
        report = evaluate_target(
            f"teacher:{server.base_url}", data, task=TASK, cfg=cfg,
            teacher_cfg=TeacherConfig(model="fake"),
        )  # fmt: skip
        assert not any("logprobs" in b for b in server.requests)
    assert "calibration" not in report
    assert "ECE" not in compare_markdown([report])


def scores_by_hand(model_dir: Path, text: str) -> list[float]:
    """log p(label, end | source) for each label: one unbatched forward per label."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from common.meta import read_meta

    meta = read_meta(model_dir)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir)).eval()
    src = tok(meta.source_text(text), return_tensors="pt")
    out = []
    for label in LABELS:
        ids = [*tok(label, add_special_tokens=False)["input_ids"], meta.eos_token_id]
        with torch.no_grad():
            logp = torch.log_softmax(
                model(**src, labels=torch.tensor([ids])).logits[0].double(), -1
            )
        out.append(sum(float(logp[t, i]) for t, i in enumerate(ids)))
    return out


def test_student_ece_from_its_label_scores_torch_and_onnx(tmp_path: Path) -> None:
    from tiny_models import exported_tiny

    model_dir, onnx_dir, _ = exported_tiny("t5", tmp_path)
    data = write_test(tmp_path / "test.jsonl", list(REFS.items()))
    # fp32 graphs: the int8 ones score differently (the export's gate chose int8 for this one)
    cfg = EvalConfig(
        bootstrap_samples=0, latency_samples=0, max_new_tokens=4, onnx_precision="fp32"
    )
    conf, correct = [], []
    for text, ref in REFS.items():
        scores = scores_by_hand(model_dir, text)
        z = [math.exp(s - max(scores)) for s in scores]
        probs = [x / sum(z) for x in z]
        best = max(range(3), key=lambda i: probs[i])
        conf.append(probs[best])
        correct.append(LABELS[best] == ref)
    expected = ece_by_hand(conf, correct)
    for target in (model_dir, onnx_dir):
        report = evaluate_target(str(target), data, task=TASK, cfg=cfg)
        calib = report["calibration"]
        assert calib["source"] == "label scores" and calib["labels"] == LABELS
        assert calib["ece"] == pytest.approx(expected, abs=1e-4), target
    off = evaluate_target(str(model_dir), data, task=TASK, cfg=EvalConfig(
        calibration=False, bootstrap_samples=0, latency_samples=0, max_new_tokens=4))  # fmt: skip
    assert "calibration" not in off


def test_bad_teacher_top_logprobs_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    rc = main(["eval", "--model", "m", "--data", "d.jsonl", "--teacher-top-logprobs", "30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--teacher-top-logprobs: must be in [0, 20] (got 30)" in err[0]

"""Soft-label training: the loss equals a hand computation, training uses it, bad flags exit 2.

Tiny students built from configs (tests/tiny_models.py); the expected loss is computed with one
plain forward per (input, label) pair and Python floats, not through students.soft_labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_models import tiny_encoder_decoder_dir, tiny_t5_dir

from distill.cli import main
from students import train as train_mod
from students.config import TrainConfig
from students.data import Encoded, collate, model_inputs
from students.soft_labels import SoftLabels, label_token_ids, soft_label_loss

LABELS = ["yes", "no", "maybe later"]  # "maybe later" is two words: a multi-token label
EOS = 102


def load(student: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoModelForSeq2SeqLM.from_pretrained(student).eval(), AutoTokenizer.from_pretrained(
        student
    )


def score_by_hand(model, tok, text: str, label: str) -> float:
    """log p(label tokens, end token | text): one unbatched forward, summed in Python."""
    src = tok(text, return_tensors="pt")
    ids = [*tok(label, add_special_tokens=False)["input_ids"], EOS]
    with torch.no_grad():
        logits = model(**src, labels=torch.tensor([ids])).logits[0].double()
    total = 0.0
    for t, token in enumerate(ids):
        row = logits[t].tolist()
        top = max(row)
        logz = top + math.log(sum(math.exp(x - top) for x in row))
        total += row[token] - logz
    return total


def kl_by_hand(teacher: list[float], scores: list[float], temp: float) -> float:
    """KL(teacher_T || softmax(scores / T)), teacher_T proportional to p ** (1 / T)."""
    powered = [p ** (1 / temp) for p in teacher]
    p = [x / sum(powered) for x in powered]
    z = [math.exp(s / temp) for s in scores]
    q = [x / sum(z) for x in z]
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


@pytest.mark.parametrize("build", [tiny_t5_dir, tiny_encoder_decoder_dir], ids=["t5", "bert2bert"])
def test_soft_label_loss_equals_a_hand_computed_value(tmp_path: Path, build) -> None:
    model, tok = load(build(tmp_path / "s"))
    texts = ["the cat runs fast", "a dog", "hello world zebra"]
    targets = ["yes", "maybe later", "no"]
    probs = [[0.7, 0.2, 0.1], None, [0.0, 0.5, 0.5]]  # a row without, and a zero probability
    encoded = [
        Encoded(tok(x)["input_ids"], [*tok(y, add_special_tokens=False)["input_ids"], EOS], p)
        for x, y, p in zip(texts, targets, probs, strict=True)
    ]
    batch = collate(encoded, tok.pad_token_id)
    weight, temp = 0.5, 2.0
    soft = SoftLabels(tuple(LABELS), label_token_ids(tok, LABELS, EOS), weight, temp)

    total, ce, kl = soft_label_loss(model, model.get_encoder(), batch, soft)
    total.backward()

    with torch.no_grad():
        ce_ref = float(model(**model_inputs(batch)).loss)
    kls = [
        kl_by_hand(p, [score_by_hand(model, tok, x, label) for label in LABELS], temp)
        for x, p in zip(texts, probs, strict=True)
        if p is not None
    ]
    kl_ref = temp**2 * sum(kls) / len(kls)
    assert ce.item() == pytest.approx(ce_ref, rel=1e-5)
    assert kl.item() == pytest.approx(kl_ref, rel=1e-4)
    assert total.item() == pytest.approx(ce_ref + weight * kl_ref, rel=1e-5)
    assert kl_ref > 0.01  # a random student is far from these teachers: the term is not ~0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_batch_without_soft_rows_is_plain_cross_entropy(tmp_path: Path) -> None:
    model, tok = load(tiny_t5_dir(tmp_path / "s"))
    encoded = [
        Encoded(tok("a dog")["input_ids"], [*tok("no", add_special_tokens=False)["input_ids"], EOS])
    ]
    batch = collate(encoded, tok.pad_token_id)
    assert "label_probs" not in batch  # no example carries a distribution
    batch["soft_mask"] = torch.tensor([False])
    batch["label_probs"] = torch.zeros(1, 3)
    soft = SoftLabels(tuple(LABELS), label_token_ids(tok, LABELS, EOS), 1.0, 1.0)
    total, _, kl = soft_label_loss(model, model.get_encoder(), batch, soft)
    with torch.no_grad():
        ref = float(model(**model_inputs(batch)).loss)
    assert total.item() == pytest.approx(ref, rel=1e-5) and kl.item() == 0.0


def rows_with_probs() -> list[dict]:
    out = []
    for i in range(16):
        label = LABELS[i % 3]
        probs = {x: (0.8 if x == label else 0.1) for x in LABELS}
        out.append({"input": f"input number {i} cat", "output": label, "label_probs": probs})
    return out


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_training_with_soft_labels_records_the_term(tmp_path: Path) -> None:
    student = tiny_t5_dir(tmp_path / "s")
    data = write(tmp_path / "train.jsonl", rows_with_probs())
    cfg = TrainConfig(student=str(student), epochs=2, lr=1e-2, batch_size=8, warmup_ratio=0.0,
                      patience=0, threads=1, min_steps=0, soft_label_weight=1.0,
                      soft_label_temperature=2.0)  # fmt: skip
    metrics = train_mod.train_student(
        cfg, data, data, tmp_path / "m", instruction="", task_name="t"
    )
    assert metrics["soft_labels"] == {
        "labels": LABELS,
        "train_examples_with_probs": 16,
        "weight": 1.0,
        "temperature": 2.0,
    }
    kls = [h["train_soft_kl"] for h in metrics["history"]]
    assert len(kls) == 2 and all(k > 0 for k in kls)


def test_soft_label_weight_without_label_probs_is_a_user_error(tmp_path: Path, capsys) -> None:
    data = write(tmp_path / "train.jsonl", [{"input": "a b", "output": "yes"}] * 4)
    student = tiny_t5_dir(tmp_path / "s")
    capsys.readouterr()  # the tiny model's own save progress is not the command's output
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--student",
               str(student), "--task", str(task_toml(tmp_path)), "--soft-label-weight", "1"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--soft-label-weight: no training example carries `label_probs`" in err[0]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--soft-label-weight", "-0.5", "--soft-label-weight: must be a finite number >= 0"),
        ("--soft-label-weight", "nan", "--soft-label-weight: must be a finite number >= 0"),
        ("--soft-label-temperature", "0", "--soft-label-temperature: must be a finite number > 0"),
    ],
)
def test_bad_soft_label_flags_exit_2_with_one_line(
    tmp_path: Path, capsys, flag, value, message
) -> None:
    for command in (["train", "--data", "d", "--out", "m"],
                    ["run", "--task", str(task_toml(tmp_path)), "--out", str(tmp_path / "r")]):  # fmt: skip
        rc = main([*command, f"{flag}={value}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], err


def test_bad_label_probs_in_the_data_name_the_file_and_line(tmp_path: Path, capsys) -> None:
    rows = rows_with_probs()[:2]
    rows[1]["label_probs"] = {"yes": 0.5, "no": 0.2}
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "train.jsonl", rows)  # a data dir: read as it is, not re-split
    student = tiny_t5_dir(tmp_path / "s")
    capsys.readouterr()  # the tiny model's own save progress is not the command's output
    rc = main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "m"),
               "--student", str(student), "--task", str(task_toml(tmp_path)),
               "--soft-label-weight", "1"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "data/train.jsonl:2: field 'label_probs' must sum to 1 (got 0.700000)" in err[0]


def task_toml(tmp_path: Path) -> Path:
    path = tmp_path / "task.toml"
    path.write_text(
        'name = "t"\ninstruction = "Answer yes or no."\n'
        '[[demonstrations]]\ninput = "a"\noutput = "yes"\n'
        '[[demonstrations]]\ninput = "b"\noutput = "no"\n'
    )
    return path


def test_task_file_keys_reach_the_train_config(tmp_path: Path) -> None:
    from distill.stages import stage_config
    from distill.task import load_task

    path = task_toml(tmp_path)
    path.write_text(
        path.read_text() + "[train]\nsoft_label_weight = 0.5\nsoft_label_temperature = 2\n"
    )
    cfg = stage_config("train", load_task(path), None)
    assert (cfg.soft_label_weight, cfg.soft_label_temperature) == (0.5, 2.0)


def test_generated_label_probs_train_the_student(tmp_path: Path) -> None:
    """What `distill generate --top-logprobs` writes is what `distill train` reads: every
    training row of the run carries a distribution and the soft term is trained on."""
    from test_soft_labels_generate import TASK, greedy, label_cfg, server_logprobs, teacher

    from distill.generate import run_generate
    from distill.stages.train import train_model
    from teachers.testing import FakeOpenAIServer

    with FakeOpenAIServer(greedy, logprobs_fn=server_logprobs) as server:
        run_generate(TASK, label_cfg(tmp_path, top_logprobs=5), teacher(server), tmp_path / "d")
    n_train = len((tmp_path / "d" / "train.jsonl").read_text().splitlines())
    cfg = TrainConfig(student=str(tiny_t5_dir(tmp_path / "s")), epochs=1, batch_size=4,
                      threads=1, min_steps=0, soft_label_weight=0.5)  # fmt: skip
    metrics = train_model(TASK, cfg, tmp_path / "d", tmp_path / "m")
    assert metrics["soft_labels"]["labels"] == ["positive", "negative", "neutral"]
    assert metrics["soft_labels"]["train_examples_with_probs"] == n_train > 0
    assert metrics["history"][0]["train_soft_kl"] > 0

"""The training recipe that keeps a small dataset from collapsing the student: a floor on
optimizer steps, a learning-rate multiplier for freshly initialised parameters, label
smoothing, and cross-attention started as a copy of self-attention."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from tiny_models import tiny_encoder_decoder_dir

from students import train as train_mod
from students.config import TrainConfig
from students.presets import BUILD_FILE, copy_self_to_cross_attention, new_parameters

ROWS = [{"input": f"item {i}", "output": f"answer {i % 3}"} for i in range(20)]


def _data(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _cfg(student: Path, **kw) -> TrainConfig:
    base = {"epochs": 1, "lr": 1e-3, "batch_size": 8, "warmup_ratio": 0.0, "threads": 1}
    return TrainConfig(student=str(student), **{**base, **kw})


@pytest.mark.parametrize(
    ("epochs", "min_steps", "steps_per_epoch", "expected"),
    [(3, 0, 19, 3), (3, 400, 19, 22), (3, 38, 19, 3), (30, 100, 19, 30), (1, 5, 0, 5)],
)
def test_planned_epochs_meets_the_step_floor(epochs, min_steps, steps_per_epoch, expected):
    """Epochs grow until epochs * steps_per_epoch >= min_steps, never shrink below --epochs."""
    assert train_mod.planned_epochs(epochs, min_steps, steps_per_epoch) == expected


def test_step_floor_yields_the_steps_it_promises(tmp_path: Path) -> None:
    """20 rows at batch 8 are 3 steps an epoch: a floor of 10 steps runs 4 epochs, 12 steps,
    and early stopping (patience 1) cannot end the run before the floor."""
    student = tiny_encoder_decoder_dir(tmp_path / "s")
    data = _data(tmp_path / "train.jsonl")
    metrics = train_mod.train_student(
        _cfg(student, min_steps=10, patience=1),
        data,
        data,
        tmp_path / "m",
        instruction="",
        task_name="t",
    )
    assert metrics["epochs_planned"] == math.ceil(10 / 3) == 4
    assert metrics["global_steps"] >= 10
    assert metrics["global_steps"] == 3 * metrics["epochs_run"]


def test_preset_defaults_for_the_recipe(tmp_path: Path) -> None:
    """The embedded preset floors at 300 steps and reads the input alone; a student given by
    path keeps the instruction template and no floor; explicit settings win over both."""
    from students.config import INSTRUCTION_TEMPLATE
    from students.presets import preset_for

    embedded, generic = preset_for("embedded"), preset_for(str(tmp_path))
    assert (embedded.min_steps, embedded.source_template) == (300, "{input}")
    assert (generic.min_steps, generic.source_template) == (0, INSTRUCTION_TEMPLATE)
    student = tiny_encoder_decoder_dir(tmp_path / "s")
    data = _data(tmp_path / "train.jsonl")
    metrics = train_mod.train_student(
        _cfg(student), data, None, tmp_path / "m", instruction="Do it.", task_name="t"
    )
    assert metrics["settings"]["min_steps"] == 0 and metrics["global_steps"] == 3
    assert metrics["settings"]["source_template"] == INSTRUCTION_TEMPLATE


def test_new_parameters_learn_at_the_scaled_rate() -> None:
    """Names matching a new-parameter fragment land in groups at lr * scale; decay rules hold."""
    model = torch.nn.ModuleDict(
        {
            "crossattention": torch.nn.Linear(4, 4),
            "attention": torch.nn.Linear(4, 4),
            "norm": torch.nn.LayerNorm(4),
        }
    )
    groups = train_mod._param_groups(model, 0.01, 1e-4, ("crossattention",), 10.0)
    by_lr: dict[float, int] = {}
    for g in groups:
        lr = round(g["lr"], 12)
        by_lr[lr] = by_lr.get(lr, 0) + sum(p.numel() for p in g["params"])
        for p in g["params"]:
            assert g["weight_decay"] == (0.0 if p.ndim < 2 else 0.01)
    assert by_lr == {1e-3: 16 + 4, 1e-4: 16 + 4 + 4 + 4}


def test_new_parameters_come_from_the_build_record(tmp_path: Path) -> None:
    """A built student names its fresh parameters; a trained model dir or hub id names none."""
    (tmp_path / BUILD_FILE).write_text(json.dumps({"new_parameters": ["crossattention"]}))
    assert new_parameters(tmp_path) == ("crossattention",)
    assert new_parameters(tmp_path / "missing") == ()
    assert new_parameters("org/model") == ()


def test_label_smoothing_loss_equals_the_hand_computed_value(tmp_path: Path) -> None:
    """With smoothing e, the loss is (1-e) * NLL + e * mean(-log p) over the vocabulary."""
    student = tiny_encoder_decoder_dir(tmp_path / "s")
    run = train_mod._Run.__new__(train_mod._Run)
    from transformers import AutoModelForSeq2SeqLM

    run.model = AutoModelForSeq2SeqLM.from_pretrained(str(student))
    run.cfg = _cfg(student, label_smoothing=0.2)
    run.soft = None  # no soft labels: the plain token loss
    batch = {
        "input_ids": torch.tensor([[101, 2000, 102]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
        "labels": torch.tensor([[2001, 102, -100]]),
    }
    loss = run._loss(batch)
    logp = run.model(**batch).logits.log_softmax(-1)[0, :2]  # the two real label positions
    nll = -logp[torch.arange(2), torch.tensor([2001, 102])]
    expected = (0.8 * nll + 0.2 * (-logp.mean(-1))).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    run.cfg = _cfg(student)
    assert float(run._loss(batch)) == pytest.approx(float(nll.mean()), rel=1e-5)


def test_cross_attention_starts_as_a_copy_of_self_attention(tmp_path: Path) -> None:
    """Every decoder layer's cross-attention tensors equal its self-attention's after the copy."""
    from transformers import EncoderDecoderModel

    model = EncoderDecoderModel.from_pretrained(str(tiny_encoder_decoder_dir(tmp_path / "s")))
    layer = model.decoder.bert.encoder.layer[0]
    key = "self.query.weight"
    assert not torch.equal(
        layer.crossattention.state_dict()[key], layer.attention.state_dict()[key]
    )
    copy_self_to_cross_attention(model.decoder)
    for layer in model.decoder.bert.encoder.layer:
        own = layer.attention.state_dict()
        for name, tensor in layer.crossattention.state_dict().items():
            assert torch.equal(tensor, own[name]), name

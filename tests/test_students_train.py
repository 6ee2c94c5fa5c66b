"""Training tiny students built from configs: learning, overfitting, save/reload, resume, LoRA."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from tiny_models import tiny_encoder_decoder_dir, tiny_t5_dir

from students import train as train_mod
from students.config import TrainConfig
from students.predict import TorchPredictor

ROWS = [
    {"input": "20.08.2010", "output": "08/20/2010"},
    {"input": "new york ny", "output": "New York, NY"},
    {"input": "call f on 3", "output": "x = f(3);"},
    {"input": "mail of a b", "output": "e-mail: A.B@c.org"},
]


def _data(path: Path, rows: list[dict], repeat: int = 1) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * repeat))
    return path


def _cfg(student: Path, **kw) -> TrainConfig:
    base = {
        "epochs": 2,
        "lr": 1e-2,
        "batch_size": 8,
        "warmup_ratio": 0.0,
        "patience": 0,
        "threads": 1,
    }
    return TrainConfig(student=str(student), **{**base, **kw})


def _train(tmp: Path, student: Path, out: str, repeat: int = 4, **kw) -> dict:
    data = _data(tmp / "train.jsonl", ROWS, repeat)
    return train_mod.train_student(
        _cfg(student, **kw), data, data, tmp / out, instruction="Do it.", task_name="t"
    )


@pytest.mark.parametrize("build", [tiny_t5_dir, tiny_encoder_decoder_dir], ids=["t5", "bert2bert"])
def test_params_change_and_loss_falls(tmp_path: Path, build) -> None:
    student = build(tmp_path / "s")
    metrics = _train(tmp_path, student, "m", epochs=3)
    losses = [h["val_loss"] for h in metrics["history"]]
    assert losses[0] > losses[1] > losses[2]
    from safetensors.torch import load_file

    before, after = (
        load_file(student / "model.safetensors"),
        load_file(tmp_path / "m" / "model.safetensors"),
    )
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    meta = json.loads((tmp_path / "m" / "distill.json").read_text())
    assert (meta["decoder_start_token_id"], meta["pad_token_id"], meta["eos_token_id"]) == (
        101,
        0,
        102,
    )
    assert (
        meta["case_markers"] is True
        and metrics["num_parameters"] == metrics["checkpoint_parameters"]
    )
    for name in (
        "README.md",
        "metrics.json",
        "tokenizer.json",
        "config.json",
        "generation_config.json",
    ):
        assert (tmp_path / "m" / name).is_file()


@pytest.mark.slow
def test_overfit_four_examples_exactly(tmp_path: Path) -> None:
    """A tiny T5 memorises four formatted targets and decodes them exactly (marker codec).

    Full-batch steps (the 4 rows are one batch) at lr 5e-3 for 120 epochs: measured EM 1.0 on
    every epoch from 82 to 120 with the v4 tokenizer (digit joins: "08/20/2010" is 5 tokens). At
    80 epochs it stood at 3/4 ("A.B@@@@"), as lr 1e-2 did with the capitals marker before; the
    v3 tokenizer reached 1.0 from epoch 63. Length-grouped batches of repeated rows made each
    step fit one row and undo the others (plateau at 3/4), and 8 relative-position buckets blur
    which "." an "org" follows in "A.B@c.org"; flan-t5-small's 32/128 buckets do not.
    """
    student = tiny_t5_dir(tmp_path / "s", d_model=64, buckets=32, max_distance=128)
    data = _data(tmp_path / "train.jsonl", ROWS)
    cfg = _cfg(student, epochs=120, lr=5e-3, batch_size=4, metric_for_best="loss")
    metrics = train_mod.train_student(
        cfg, data, data, tmp_path / "m", instruction="Do it.", task_name="t"
    )
    assert metrics["targets_not_roundtrip"] == 0
    predictor = TorchPredictor(tmp_path / "m")
    assert predictor.generate([r["input"] for r in ROWS]) == [r["output"] for r in ROWS]


def test_save_reload_predict_same(tmp_path: Path) -> None:
    student = tiny_t5_dir(tmp_path / "s")
    _train(tmp_path, student, "m", epochs=1)
    inputs = [r["input"] for r in ROWS]
    first = TorchPredictor(tmp_path / "m")
    greedy, beam = first.generate(inputs), first.generate(inputs, num_beams=3)
    second = TorchPredictor(tmp_path / "m")
    assert second.generate(inputs) == greedy
    assert second.generate(inputs, num_beams=3, batch_size=1) == beam


def test_resume_continues_from_checkpoint_step(tmp_path: Path, monkeypatch) -> None:
    """Crash mid-epoch 2, resume: same steps and bit-identical weights as an uninterrupted run.

    With dropout, the weights are identical only if the RNG state was restored too: the
    check below that a different RNG gives different weights shows the test can tell. The
    checkpoint records the metric its best epoch was picked by, and a resume keeps it.
    """
    student = tiny_t5_dir(tmp_path / "s", dropout=0.3)
    kw = {"epochs": 2, "checkpoint_every": 1, "keep_checkpoints": True}
    full = _train(tmp_path, student, "full", **kw)

    original, calls = train_mod._Run._step, {"n": 0}

    def crashing_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:  # 2 steps/epoch here: the 2nd step of epoch 2
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(train_mod._Run, "_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, student, "crash", **kw)
    state = json.loads(
        (tmp_path / "crash" / "checkpoints" / "last" / "trainer_state.json").read_text()
    )
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 1, 3)
    assert state["metric"] == "exact_match"  # four distinct outputs: a label set
    monkeypatch.setattr(train_mod._Run, "_step", original)
    import shutil

    shutil.copytree(tmp_path / "crash", tmp_path / "no_rng")
    last = tmp_path / "no_rng" / "checkpoints" / "last"
    for pkl in last.glob("random_states*.pkl"):
        pkl.unlink()  # a resume that forgets the RNG state
    # and whose best so far is a loss: the resumed run keeps comparing on the metric it began with
    (last / "trainer_state.json").write_text(json.dumps({**state, "metric": "loss"}))
    resumed = _train(tmp_path, student, "crash", resume=True, **kw)
    assert resumed["global_steps"] == full["global_steps"]
    from safetensors.torch import load_file

    a, b = (
        load_file(tmp_path / "full" / "model.safetensors"),
        load_file(tmp_path / "crash" / "model.safetensors"),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    no_rng = _train(tmp_path, student, "no_rng", resume=True, **kw)
    assert no_rng["settings"]["metric_for_best"] == "loss"
    c = load_file(tmp_path / "no_rng" / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # without the RNG state it differs


def test_lora_merged_equals_unmerged(tmp_path: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir(tmp_path / "s"))
    peft_model = train_mod._wrap_lora(model, 4, 8)
    torch.manual_seed(1)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter do something
            p.data.normal_(0, 0.5)
    ids = torch.tensor([[101, 2047, 2259, 102]])
    labels = torch.tensor([[2047, 1010, 102]])
    peft_model.eval()
    with torch.no_grad():
        unmerged = peft_model(input_ids=ids, labels=labels).logits
        merged_model = peft_model.merge_and_unload()
        merged = merged_model(input_ids=ids, labels=labels).logits
    assert (unmerged - merged).abs().max() < 1e-4, (unmerged - merged).abs().max()
    assert not any("lora" in n for n, _ in merged_model.named_parameters())


def test_lora_training_saves_a_plain_model(tmp_path: Path) -> None:
    student = tiny_t5_dir(tmp_path / "s")
    metrics = _train(tmp_path, student, "m", epochs=1, lora_r=4)
    from safetensors.torch import load_file

    base, saved = (
        load_file(student / "model.safetensors"),
        load_file(tmp_path / "m" / "model.safetensors"),
    )
    assert saved.keys() == base.keys()  # a plain model: the base's tensors, no adapter ones
    assert all(saved[k].shape == base[k].shape for k in base)
    linear = [k for k in base if k.endswith(("q.weight", "v.weight", "wo.weight"))]
    assert linear and all(not torch.equal(saved[k], base[k]) for k in linear)  # LoRA merged in
    assert torch.equal(saved["shared.weight"], base["shared.weight"])  # not adapted, unchanged
    # plain transformers loads it (no peft) and it generates tokens
    out = TorchPredictor(tmp_path / "m").generate(["x"], max_new_tokens=3)
    assert len(out) == 1 and isinstance(out[0], str)
    assert metrics["settings"]["lora_r"] == 4


def test_extra_data_mixing_and_truncation_counts(tmp_path: Path) -> None:
    student = tiny_t5_dir(tmp_path / "s")
    extra = _data(tmp_path / "extra.jsonl", [{"input": "long " * 30, "output": "Y " * 30}] * 4)
    metrics = _train(
        tmp_path,
        student,
        "m",
        repeat=1,
        epochs=1,
        extra_data=[f"{extra}:0.5"],
        max_target_length=16,
    )
    assert metrics["train_examples"] == 6 and metrics["extra_examples"] == 2
    assert (
        metrics["lengths"]["target_truncated"] == 3
    )  # 2 long extras + "e-mail: A.B@c.org" (22 tokens)
    assert metrics["lengths"]["max_target_length"] == 16


@pytest.mark.slow
def test_embedded_student_short_run(tmp_path: Path, monkeypatch) -> None:
    """The real 49M student builds, trains a few steps, saves and predicts (pipeline, not quality:
    32 rows x 2 epochs cannot teach the task; a 90-row run reached only chrF++ 25 in 15 min)."""
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    rows = [
        {"input": f"{d:02d}.0{m}.20{y:02d}", "output": f"0{m}/{d:02d}/20{y:02d}"}
        for d in range(1, 29, 7)
        for m in range(1, 9, 2)
        for y in (10, 19)
    ]
    data = _data(tmp_path / "train.jsonl", rows)
    # min_steps=0: this checks the pipeline; the preset's 300-step floor would take minutes
    cfg = TrainConfig(epochs=2, threads=2, batch_size=16, max_eval_examples=4, min_steps=0)
    metrics = train_mod.train_student(
        cfg,
        data,
        _data(tmp_path / "val.jsonl", rows[:8]),
        tmp_path / "m",
        instruction="Rewrite the date as MM/DD/YYYY.",
        task_name="dates",
    )
    assert len(rows) == 32 and metrics["global_steps"] == 4
    assert 48_000_000 < metrics["num_parameters"] < 50_000_000
    assert metrics["history"][-1]["val_loss"] < metrics["history"][0]["val_loss"]
    assert metrics["targets_not_roundtrip"] == 0
    meta = json.loads((tmp_path / "m" / "distill.json").read_text())
    assert meta["case_markers"] is True and meta["model_type"] == "encoder-decoder"
    preds = TorchPredictor(tmp_path / "m").generate(["01.03.2010"], max_new_tokens=8)
    assert len(preds) == 1 and isinstance(preds[0], str)


@pytest.mark.parametrize(
    ("requested", "references", "expected"),
    [
        ("auto", ["get_weather", "play_music", "get_weather", "play_music"], "exact_match"),
        ("auto", [f"sentence number {i}" for i in range(21)], "chrf"),
        ("auto", [f"label{i % 20}" for i in range(60)], "exact_match"),
        ("auto", [], "chrf"),
        ("auto", [f"2018-03-{i:02d}" for i in range(1, 18)], "chrf"),  # 17 rows, all distinct
        ("auto", ["a", "b", "a", "b", "c"], "chrf"),  # 3 values in 5 rows: under 2 each
        ("auto", ["a", "b", "a", "b", "c", "c"], "exact_match"),
        ("chrf", ["a", "b", "a"], "chrf"),
        ("loss", ["a", "b"], "loss"),
    ],
)
def test_best_metric_is_exact_match_on_a_label_set_only(requested, references, expected) -> None:
    """auto: exact match when the validation outputs take at most 20 values, each twice on
    average, else chrF++; an explicit choice is kept."""
    assert train_mod.best_metric(requested, references) == expected


@pytest.mark.parametrize(
    ("score", "loss", "best", "best_loss", "expected"),
    [
        (0.9, 0.5, 0.8, 0.1, True),  # a higher score wins whatever the loss
        (0.7, 0.01, 0.8, 0.1, False),
        (0.8, 0.05, 0.8, 0.1, True),  # an equal score goes to the lower loss
        (0.8, 0.2, 0.8, 0.1, False),
        (0.8, 0.1, 0.8, 0.1, False),  # nothing better: the earlier epoch stays
        (0.8, None, 0.8, 0.1, False),
        (None, None, 0.8, 0.1, True),  # no validation: the latest epoch
        (0.1, 9.0, None, None, True),  # the first epoch
    ],
)
def test_is_better_breaks_a_tie_by_validation_loss(score, loss, best, best_loss, expected):
    assert train_mod.is_better(score, loss, best, best_loss) is expected


@pytest.mark.parametrize("requested", ["auto", "chrf"])
def test_the_best_epoch_follows_the_resolved_metric(tmp_path: Path, requested: str) -> None:
    """Four distinct outputs are a label set: "auto" picks the epoch of the highest validation
    exact match, the lowest validation loss among equals, and records exact_match as the metric
    that picked it (refine compares rounds on it); "chrf" picks by chrF++ alone."""
    student = tiny_t5_dir(tmp_path / "s")
    metrics = _train(tmp_path, student, "m", epochs=4, metric_for_best=requested)
    history = metrics["history"]
    if requested == "auto":
        assert metrics["settings"]["metric_for_best"] == "exact_match"
        key = max(
            range(len(history)),
            key=lambda i: (history[i]["val_exact_match"], -history[i]["val_loss"], -i),
        )
    else:
        assert metrics["settings"]["metric_for_best"] == "chrf"
        key = max(range(len(history)), key=lambda i: (history[i]["val_chrf"], -i))
    assert metrics["best_epoch"] == history[key]["epoch"]
    assert metrics["best"] == history[key]


@pytest.mark.parametrize(
    ("decay", "updates", "expected"),
    [(0.99, 0, 0.1), (0.99, 8, 0.5), (0.99, 90, 0.91), (0.9, 1000, 0.9), (0.5, 1, 2 / 11)],
)
def test_ema_decay_warms_up_then_holds(decay: float, updates: int, expected: float) -> None:
    from students.ema import ema_decay_at

    assert ema_decay_at(decay, updates) == pytest.approx(expected)


def test_ema_student_is_the_hand_computed_average_of_its_steps(tmp_path: Path, monkeypatch) -> None:
    """With `ema_decay`, the saved student is the moving average of the weights after each
    optimizer step (the first step's weights, then e += (1 - d_n) * (w - e)), not the last
    step's weights."""
    from students.ema import ema_decay_at

    student = tiny_t5_dir(tmp_path / "s")
    original, seen = train_mod._Run._step, []

    def recording_step(self, batch):
        loss = original(self, batch)
        model = self.acc.unwrap_model(self.model)
        seen.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return loss

    monkeypatch.setattr(train_mod._Run, "_step", recording_step)
    metrics = _train(tmp_path, student, "m", epochs=1, ema_decay=0.9)
    assert len(seen) == metrics["global_steps"] == 2
    expected = dict(seen[0])
    for n, weights in enumerate(seen[1:], start=1):
        d = ema_decay_at(0.9, n)
        expected = {k: e + (1 - d) * (weights[k] - e) for k, e in expected.items()}
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "m" / "model.safetensors")
    shared = [k for k in expected if k in saved]
    assert len(shared) > len(expected) // 2
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in shared)
    assert not all(torch.allclose(saved[k], seen[-1][k], atol=1e-6) for k in shared)


def test_ema_resume_restores_the_average(tmp_path: Path, monkeypatch) -> None:
    """Crash mid-epoch 2 with `ema_decay` on, resume: the saved average is bit-identical to an
    uninterrupted run's; a checkpoint without the average (a run started with ema_decay 0)
    is refused with a message instead of resuming from a fresh average."""
    import shutil

    from safetensors.torch import load_file

    student = tiny_t5_dir(tmp_path / "s")
    kw = {"epochs": 2, "checkpoint_every": 1, "keep_checkpoints": True, "ema_decay": 0.9}
    _train(tmp_path, student, "full", **kw)
    original, calls = train_mod._Run._step, {"n": 0}

    def crashing_step(self, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(train_mod._Run, "_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, student, "crash", **kw)
    monkeypatch.setattr(train_mod._Run, "_step", original)
    shutil.copytree(tmp_path / "crash", tmp_path / "no_ema")
    custom = list((tmp_path / "no_ema" / "checkpoints" / "last").glob("custom_checkpoint_*"))
    assert len(custom) == 1
    custom[0].unlink()
    _train(tmp_path, student, "crash", resume=True, **kw)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("full", "crash"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="holds no weight average"):
        _train(tmp_path, student, "no_ema", resume=True, **kw)

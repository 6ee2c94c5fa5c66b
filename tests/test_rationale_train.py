"""Rationale distillation: the multi-task loss equals a hand computation, W = 0 changes
nothing, and every runtime (torch predict, eval, the export gate, ONNX, serve) reads the answer
task's "[label] " prefix from the model dir and never writes a rationale.

Tiny students built from configs (tests/tiny_models.py); the expected loss is computed from the
logits of one unbatched forward per row, in Python floats, not through students.rationale.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_models import tiny_t5_dir

from distill.cli import main
from students import train as train_mod
from students.config import TrainConfig
from students.data import Encoded, collate, model_inputs, read_examples
from students.rationale import multitask_loss

EOS = 102
INSTRUCTION = "Answer yes or no."
TEMPLATE = "{instruction}\nInput: {input}"
PAIRS = [
    ("the cat is red", "yes"),
    ("a dog runs fast", "no"),
    ("hello world", "yes"),
    ("blue zebra", "no"),
    ("the dog is slow", "no"),
    ("red cat runs", "yes"),
    ("quantum world", "no"),
    ("hello cat", "yes"),
]


def rows_with_rationales() -> list[dict[str, str]]:
    """PAIRS as rows; every other one carries a rationale (the rest have none)."""
    rows = []
    for i, (x, y) in enumerate(PAIRS):
        row = {"input": x, "output": y}
        if i % 2 == 0:
            row["rationale"] = f"the input mentions {x.split()[-1]} so the answer is {y}"
        rows.append(row)
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def load(student: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(student).eval()
    return model, AutoTokenizer.from_pretrained(student)


def encode(tok, source: str, target: str) -> Encoded:
    return Encoded(
        tok(source)["input_ids"], [*tok(target, add_special_tokens=False)["input_ids"], EOS]
    )


def ce_by_hand(model, rows: list[Encoded]) -> float:
    """Mean over every target token of every row of -log softmax(logits)[token]: one
    unbatched forward per row, summed in Python."""
    total, count = 0.0, 0
    for row in rows:
        with torch.no_grad():
            logits = (
                model(input_ids=torch.tensor([row.source]), labels=torch.tensor([row.target]))
                .logits[0]
                .double()
            )
        for t, token in enumerate(row.target):
            values = logits[t].tolist()
            top = max(values)
            logz = top + math.log(sum(math.exp(v - top) for v in values))
            total += logz - values[token]
            count += 1
    return total / count


def test_multitask_loss_equals_a_hand_computed_value(tmp_path: Path) -> None:
    model, tok = load(tiny_t5_dir(tmp_path / "s"))
    answers = [encode(tok, "[label] the cat runs", "yes"), encode(tok, "[label] a dog", "no")]
    rationales = [
        encode(tok, "[rationale] the cat runs", "a cat that runs is a yes"),
        encode(tok, "[rationale] a dog", "dogs are no"),  # shorter: padding is skipped
    ]
    for answer, rationale in zip(answers, rationales, strict=True):
        answer.rationale = rationale
    batch = collate(answers, tok.pad_token_id)
    weight = 0.5

    answer_loss = model(**model_inputs(batch)).loss
    total, rationale_ce = multitask_loss(answer_loss, model, batch, weight)
    total.backward()

    ce_answer, ce_rationale = ce_by_hand(model, answers), ce_by_hand(model, rationales)
    assert rationale_ce.item() == pytest.approx(ce_rationale, rel=1e-5)
    assert total.item() == pytest.approx((1 - weight) * ce_answer + weight * ce_rationale, rel=1e-5)
    assert abs(ce_answer - ce_rationale) > 0.01  # the two terms are told apart
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_rows_without_a_rationale_contribute_only_their_answer_row(tmp_path: Path) -> None:
    model, tok = load(tiny_t5_dir(tmp_path / "s"))
    with_one = encode(tok, "[label] the cat runs", "yes")
    with_one.rationale = encode(tok, "[rationale] the cat runs", "a cat that runs is a yes")
    without = encode(tok, "[label] a dog", "no")
    weight = 0.3

    batch = collate([without, with_one], tok.pad_token_id)
    assert batch["rationale_input_ids"].shape[0] == 1  # one rationale row, the second's
    assert batch["rationale_input_ids"][0].tolist() == with_one.rationale.source
    total, _ = multitask_loss(model(**model_inputs(batch)).loss, model, batch, weight)
    expected = (1 - weight) * ce_by_hand(model, [without, with_one])
    expected += weight * ce_by_hand(model, [with_one.rationale])
    assert total.item() == pytest.approx(expected, rel=1e-5)

    # a batch of rows none of which has one: the answer term alone, weighted (1 - W)
    alone = collate([without], tok.pad_token_id)
    assert not any(k.startswith("rationale_") for k in alone)
    total, rationale_ce = multitask_loss(model(**model_inputs(alone)).loss, model, alone, weight)
    assert rationale_ce is None
    assert total.item() == pytest.approx((1 - weight) * ce_by_hand(model, [without]), rel=1e-5)


def test_reading_rows_keeps_a_rationale_only_where_there_is_one(tmp_path: Path) -> None:
    rows = [
        {"input": "a", "output": "yes", "rationale": "because a"},
        {"input": "b", "output": "no"},
        {"input": "c", "output": "no", "rationale": None},  # an Arrow copy's empty cell
        {"input": "d", "output": "no", "rationale": "  "},
    ]
    got = read_examples(write(tmp_path / "t.jsonl", rows))
    assert [r.get("rationale") for r in got] == ["because a", None, None, None]
    write(tmp_path / "bad.jsonl", [{"input": "a", "output": "yes", "rationale": ["x"]}])
    with pytest.raises(Exception, match=r"bad.jsonl:1: field 'rationale' must be a string"):
        read_examples(tmp_path / "bad.jsonl")


def test_an_arrow_copy_keeps_its_rationale_column(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    cols = {"input": ["a", "b"], "output": ["yes", "no"], "rationale": ["because a", None]}
    DatasetDict({"train": Dataset.from_dict(cols)}).save_to_disk(str(tmp_path / "hf"))
    got = read_examples(tmp_path / "hf")
    assert [r.get("rationale") for r in got] == ["because a", None]


def prepared_run(tmp_path: Path, student: Path, data: Path, weight: float) -> Any:
    """A training run's data phase alone: what its examples hold before any step."""
    from accelerate import Accelerator

    cfg = TrainConfig(
        student=str(student), rationale_weight=weight, source_template=TEMPLATE, threads=1
    )
    run = train_mod._Run(cfg, Accelerator(cpu=True), tmp_path / "m", INSTRUCTION)
    run.prepare_data(data, None)
    return run


def test_training_rows_carry_prefixes_and_rationale_rows_only_when_weighted(
    tmp_path: Path,
) -> None:
    student = tiny_t5_dir(tmp_path / "s")
    data = write(tmp_path / "train.jsonl", rows_with_rationales())
    tok = load(student)[1]

    def ids(text: str, prefix: str = "") -> list[int]:
        return tok(f"{prefix}{INSTRUCTION}\nInput: {text}")["input_ids"]

    plain = prepared_run(tmp_path, student, data, 0.0)
    assert [e.source for e in plain.train] == [ids(x) for x, _ in PAIRS]
    assert all(e.rationale is None for e in plain.train)

    run = prepared_run(tmp_path, student, data, 0.5)
    assert [e.source for e in run.train] == [ids(x, "[label] ") for x, _ in PAIRS]
    with_rationale = [i for i, e in enumerate(run.train) if e.rationale is not None]
    assert with_rationale == [0, 2, 4, 6] and run.n_rationale == 4
    first = run.train[0].rationale
    assert first.source == ids("the cat is red", "[rationale] ")
    assert (
        tok.decode(first.target, skip_special_tokens=True)
        == "the input mentions red so the answer is yes"
    )


def train_config(student: Path, **overrides: Any) -> TrainConfig:
    settings = dict(student=str(student), epochs=2, lr=1e-2, batch_size=4, warmup_ratio=0.0,
                    patience=0, threads=1, min_steps=0, source_template=TEMPLATE)  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


def test_weight_zero_trains_exactly_the_weights_of_data_without_rationales(
    tmp_path: Path,
) -> None:
    """W = 0 (the default) builds no rationale rows and no prefix: data with rationales
    trains bit for bit the weights, and writes the distill.json, of the same data without."""
    from safetensors.torch import load_file

    student = tiny_t5_dir(tmp_path / "s")
    bare = [{"input": x, "output": y} for x, y in PAIRS]
    outs = []
    for name, rows, cfg in [
        ("bare", bare, train_config(student)),
        ("rat", rows_with_rationales(), train_config(student, rationale_weight=0.0)),
    ]:
        data = write(tmp_path / f"{name}.jsonl", rows)
        out = tmp_path / name
        metrics = train_mod.train_student(
            cfg, data, data, out, instruction=INSTRUCTION, task_name="t"
        )
        assert metrics["rationale"] is None
        outs.append(out)
    a, b = (load_file(o / "model.safetensors") for o in outs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = [json.loads((o / "distill.json").read_text()) for o in outs]
    assert meta[0] == meta[1] and "task_prefix" not in meta[0]


# ---- a trained multi-task student, then every runtime --------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny student trained with W = 0.5 until it has learnt both tasks (30 epochs, ~10 s)."""
    root = tmp_path_factory.mktemp("rationale")
    data = write(root / "train.jsonl", rows_with_rationales())
    cfg = train_config(tiny_t5_dir(root / "s"), epochs=30, rationale_weight=0.5)
    metrics = train_mod.train_student(
        cfg, data, data, root / "m", instruction=INSTRUCTION, task_name="t"
    )
    return root / "m", metrics


class Spy:
    """A tokenizer that records the texts it is asked to encode, and otherwise is the one it
    wraps (a transformers tokenizer, called; or a `tokenizers.Tokenizer`, via encode_batch)."""

    def __init__(self, inner: Any, seen: list[str]) -> None:
        self.inner, self.seen = inner, seen

    def __call__(self, texts: list[str], **kwargs: Any) -> Any:
        self.seen.extend(texts)
        return self.inner(texts, **kwargs)

    def encode_batch(self, texts: list[str]) -> Any:
        self.seen.extend(texts)
        return self.inner.encode_batch(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


INPUTS = [x for x, _ in PAIRS]
ANSWERS = [y for _, y in PAIRS]
SOURCES = [f"[label] {INSTRUCTION}\nInput: {x}" for x in INPUTS]
LONG = 24  # decoding room for a rationale (the saved default, 2 tokens, would hide one)


def decode(model, tok, sources: list[str]) -> list[str]:
    """Greedy outputs for already-built sources, straight from model.generate."""
    enc = tok(sources, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**enc, max_new_tokens=LONG, do_sample=False)
    return tok.batch_decode(ids, skip_special_tokens=True)


def test_the_model_dir_records_the_prefix_and_the_rationale_counts(trained) -> None:
    model_dir, metrics = trained
    assert json.loads((model_dir / "distill.json").read_text())["task_prefix"] == "[label] "
    rationale = metrics["rationale"]
    assert (rationale["weight"], rationale["train_examples_with_rationale"]) == (0.5, 4)
    assert json.loads((model_dir / "metrics.json").read_text())["rationale"] == rationale
    card = (model_dir / "README.md").read_text()
    assert (
        "rationale distillation: weight 0.5, 4 of 8 training examples carried a rationale" in card
    )
    assert all("train_rationale_ce" in h for h in metrics["history"])


def test_torch_predict_and_eval_read_the_answer_prefix(trained) -> None:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.targets import predict_model
    from students.predict import TorchPredictor

    model_dir, _ = trained
    predictor = TorchPredictor(model_dir)
    model, tok = predictor.model, predictor.tokenizer
    answers = decode(model, tok, SOURCES)
    assert answers == ANSWERS  # learnt: the answer task answers
    rationales = decode(model, tok, [s.replace("[label] ", "[rationale] ") for s in SOURCES])
    assert all(r.startswith("the input mentions") for r in rationales)  # and knows the other

    seen: list[str] = []
    predictor.tokenizer = Spy(tok, seen)
    assert predictor.generate(INPUTS, max_new_tokens=LONG) == answers
    assert seen == SOURCES
    cfg = EvalConfig(max_new_tokens=LONG, latency_samples=1, student_threads=1)
    assert predict_model(model_dir, INPUTS, cfg).texts == answers


def test_export_gate_onnx_and_serve_read_the_answer_prefix(trained, tmp_path, monkeypatch) -> None:
    from distill.evaluation.config import EvalConfig
    from distill.evaluation.targets import predict_onnx
    from exports.config import ExportConfig
    from exports.pipeline import export_model
    from exports.runtime import OnnxSeq2Seq

    seen: list[str] = []
    init = OnnxSeq2Seq.__init__

    def spied_init(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.tokenizer = Spy(self.tokenizer, seen)

    monkeypatch.setattr(OnnxSeq2Seq, "__init__", spied_init)
    model_dir, _ = trained
    onnx = tmp_path / "onnx"
    report = export_model(
        model_dir, onnx, ExportConfig(max_quality_drop=100.0), heldout=list(PAIRS)
    )
    assert seen and set(seen) <= set(SOURCES)  # the gate encoded prefixed sources only
    assert report["gate"]["fp32"]["exact_match"] == 1.0, report["gate"]

    seen.clear()
    runtime = OnnxSeq2Seq(onnx, precision="fp32", threads=1)
    assert runtime.generate(INPUTS, max_new_tokens=LONG) == ANSWERS
    assert seen == SOURCES
    cfg = EvalConfig(
        max_new_tokens=LONG, latency_samples=1, student_threads=1, onnx_precision="fp32"
    )
    assert predict_onnx(onnx, INPUTS, cfg).texts == ANSWERS
    seen.clear()
    assert _served(runtime, INPUTS) == ANSWERS
    assert sorted(seen) == sorted(SOURCES)  # micro-batches may split the inputs


def _served(model: Any, inputs: list[str]) -> list[str]:
    """Outputs of `distill serve`'s app for `inputs`, over a real loopback port."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from exports.config import ServeConfig
    from exports.serve import build_app

    async def body() -> list[str]:
        runner = web.AppRunner(build_app(model, ServeConfig()))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                payload = {"inputs": inputs, "max_new_tokens": LONG}
                async with session.post("/v1/generate", json=payload) as r:
                    return (await r.json())["outputs"]
        finally:
            await runner.cleanup()

    return asyncio.run(body())


# ---- the CLI -------------------------------------------------------------------------------


def task_toml(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "task.toml"
    path.write_text(
        f'name = "t"\ninstruction = "{INSTRUCTION}"\n'
        '[[demonstrations]]\ninput = "a"\noutput = "yes"\n'
        '[[demonstrations]]\ninput = "b"\noutput = "no"\n' + extra
    )
    return path


@pytest.mark.parametrize("value", ["1", "-0.1", "nan"])
def test_bad_rationale_weight_exits_2_with_one_line(tmp_path: Path, capsys, value) -> None:
    rc = main(["train", "--data", "d", "--out", "m", f"--rationale-weight={value}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--rationale-weight: must be in [0, 1)" in err[0]


def test_bad_rationale_weight_in_the_task_file_names_the_key(tmp_path: Path, capsys) -> None:
    task = task_toml(tmp_path, "[train]\nrationale_weight = 1.0\n")
    rc = main(["train", "--data", "d", "--out", "m", "--task", str(task)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "task.toml [train]: key 'rationale_weight': must be in [0, 1)" in err[0]


def test_rationale_weight_without_rationales_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    data = write(tmp_path / "train.jsonl", [{"input": x, "output": y} for x, y in PAIRS])
    student = tiny_t5_dir(tmp_path / "s")
    capsys.readouterr()  # the tiny model's own save progress is not the command's output
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--student",
               str(student), "--task", str(task_toml(tmp_path)), "--rationale-weight", "0.5"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--rationale-weight: no training example carries a `rationale`" in err[0]
    assert "--chain-of-thought" in err[0]


def test_task_file_keys_reach_the_train_config(tmp_path: Path) -> None:
    from distill.stages import stage_config
    from distill.task import load_task

    path = task_toml(
        tmp_path, "[train]\nrationale_weight = 0.5\nrationale_max_target_length = 64\n"
    )
    cfg = stage_config("train", load_task(path), None)
    assert (cfg.rationale_weight, cfg.rationale_max_target_length) == (0.5, 64)

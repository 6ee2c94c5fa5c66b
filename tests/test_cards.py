"""Cards that travel with the artefacts: RUN/data/README.md (dataset card), RUN/onnx/README.md
and RUN/model/README.md (model cards), parsed by huggingface_hub as the hub would, with the exact
numbers of the run's manifest and export report."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard
from test_generate_classes import NEWS, news_responder
from test_generate_run import TASK, phrase, responder, teacher

from common.cards import front_matter, replace_section, size_category
from distill.errors import UserError
from distill.generate import run_generate
from distill.generate.config import GenerateConfig
from distill.task import parse_task
from teachers.testing import FakeOpenAIServer


def leftovers(directory: Path) -> list[str]:
    """Temporary names an atomic write would leave behind on failure."""
    return [p.name for p in directory.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


def python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


def test_dataset_card_carries_the_manifest(tmp_path, monkeypatch):
    leak = phrase(2 * 3)
    out = tmp_path / "data"
    with FakeOpenAIServer(responder) as server:
        cfg = GenerateConfig(num_examples=30, pairs_per_request=2, seed=0)
        m = run_generate(TASK, cfg, teacher(server), out, exclude_inputs=[leak])
    path = out / "README.md"
    card = DatasetCard.load(path)
    assert card.data.license == "unknown"
    assert card.data.task_categories == ["text2text-generation"]
    assert card.data.size_categories == ["n<1K"]
    assert "synthetic" in card.data.tags
    assert card.data.pretty_name.startswith("reverse (synthetic")
    files = card.data.configs[0]["data_files"]
    assert [f["split"] for f in files] == [k for k, n in m["splits"].items() if n]
    text = path.read_text(encoding="utf-8")
    c = m["counts"]
    assert c["accepted"] == 30 and c["rejected_by_reason"] == {"leak": 1}
    for line in (
        "| accepted | 30 |",
        "| target | 30 |",
        f"| requests | {c['requests']} |",
        f"| teacher pairs | {c['teacher_pairs']} |",
        "| rejected | 1 |",
        "| rejected: leak | 1 |",
        f"| accepted per teacher pair | {c['accepted_per_teacher_pair']} |",
        f"| leak rate | {c['leak_rate']} |",
        "| mode | synthesize |",
        "| few-shot | 2 demonstrations + 0 accepted |",
        "| synthesis temperature | 0.4 -> 1.0 (linear schedule) |",
        f"| prompt tokens | {m['tokens']['prompt']} |",
        f"| completion tokens | {m['tokens']['completion']} |",
        f"| cost (USD) | {m['cost_usd']} |",
        *(f"| {k} | {n} | {k}.jsonl |" for k, n in m["splits"].items()),
        f"`{m['fingerprint']}`",
        "Free text: 30 distinct outputs among 30 examples.",
    ):
        assert line in text, line
    assert leftovers(out) == []
    # the card's own loading code runs as written
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    scope: dict = {}
    exec(python_block(text), scope)
    assert scope["ds"]["train"].num_rows == m["splits"]["train"]


def test_dataset_card_of_a_label_set_with_a_license_and_after_resume(tmp_path):
    task = dataclasses.replace(NEWS, license="mit")
    cfg = GenerateConfig(num_examples=40, pairs_per_request=3, label_requests=True)
    with FakeOpenAIServer(news_responder) as server:
        m = run_generate(task, cfg, teacher(server), tmp_path)
        (tmp_path / "README.md").unlink()
        sent = len(server.requests)
        run_generate(task, cfg, teacher(server), tmp_path)  # complete: resumes, sends nothing
        assert len(server.requests) == sent
    assert m["task"]["license"] == "mit"
    card = DatasetCard.load(tmp_path / "README.md")  # rewritten by the resumed session
    assert card.data.license == "mit"
    assert card.data.task_categories == ["text2text-generation", "text-classification"]
    text = card.text
    for label in ("world", "sports", "business", "sci/tech"):
        assert f"| {label} | 10 | 25.0% |" in text
    assert "| out of label set | 20 |" in text
    assert "| rejected: out_of_label_set | 20 |" in text
    assert "| label set | world, sports, business, sci/tech |" in text
    assert "`mit`, as the task file says." in text
    assert leftovers(tmp_path) == []


def test_onnx_card_describes_the_export(tmp_path_factory):
    from tiny_models import exported_tiny

    _, onnx_dir, report = exported_tiny("t5", tmp_path_factory.getbasetemp())
    card = ModelCard.load(onnx_dir / "README.md")
    assert card.data.library_name == "onnx"
    assert card.data.pipeline_tag == "text2text-generation"
    assert card.data.license == "unknown"
    assert {"onnx", "int8"} <= set(card.data.tags)
    text = card.text
    gate, sizes = report["gate"], report["sizes"]
    assert report["runtime_precision"] == "int8" and "The runtime loads **int8**" in text
    for line in (
        f"| status | {gate['status']} |",
        f"| gate inputs | {gate['n']} |",
        f"| rule: upper_bound_points | {gate['decision']['upper_bound_points']} |",
        f"| rule: metric | {gate['decision']['metric']} |",
        f"| ONNX int8 (3 graphs) | {sizes['onnx_int8_bytes']:,} |",
        f"| ONNX fp32 (3 graphs) | {sizes['onnx_fp32_bytes']:,} |",
        f'OnnxSeq2Seq("{onnx_dir}", threads=1)',
        f"distill serve --model {onnx_dir}",
    ):
        assert line in text, line
    for name in ("encoder_model", "decoder_model", "decoder_with_past_model"):
        for f in (f"{name}.onnx", f"{name}_quantized.onnx"):
            assert f"| `{f}` |" in text and f"{(onnx_dir / f).stat().st_size:,} |" in text
    assert leftovers(onnx_dir) == [] and leftovers(onnx_dir.parent) == []
    # the card's runtime snippet runs as written
    scope: dict = {}
    code = python_block(text).replace('["your input"]', '["red green"]')
    exec(code.replace("print(", "outputs = ("), scope)
    assert isinstance(scope["outputs"], list) and len(scope["outputs"]) == 1


def test_card_facts_from_the_run_dir(tmp_path_factory, tmp_path):
    """The ONNX card's license, base model and teacher come from RUN/data and the student."""
    from tiny_models import exported_tiny

    from common.meta import read_meta
    from distill.stages.export import card_facts
    from exports.card import onnx_card

    _, onnx_dir, report = exported_tiny("t5", tmp_path_factory.getbasetemp())
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "data").mkdir()
    meta = json.loads((onnx_dir / "distill.json").read_text())
    (run / "model" / "distill.json").write_text(json.dumps({**meta, "student": "flan-t5-small"}))
    manifest = {"task": {"name": "t", "instruction": "i", "license": "cc-by-4.0"}}
    manifest["teacher"] = {"teacher": "openai", "model": "gpt-test"}
    (run / "data" / "manifest.json").write_text(json.dumps(manifest))
    facts = card_facts(run / "model")
    assert facts == {
        "teacher": "gpt-test (openai)",
        "license": "cc-by-4.0",
        "base_model": "google/flan-t5-small",
    }
    path = tmp_path / "README.md"
    path.write_text(onnx_card(onnx_dir, report, read_meta(onnx_dir), facts))
    card = ModelCard.load(path)
    assert card.data.license == "cc-by-4.0" and card.data.base_model == "google/flan-t5-small"
    assert "- teacher: gpt-test (openai)" in card.text


def test_student_card_front_matter_and_eval_table(tmp_path):
    from common.meta import StudentMeta
    from distill.stages.run import add_eval_to_cards
    from students.modelcard import model_card

    meta = StudentMeta("{input}", 101, 0, 102, student="embedded", model_type="encoder-decoder")
    metrics = {
        "student": "embedded",
        "num_parameters": 49_000_000,
        "train_examples": 18,
        "extra_examples": 0,
        "validation_examples": 2,
        "epochs_run": 3,
        "best_epoch": 2,
        "targets_not_roundtrip": 0,
        "lengths": {"source_truncated": 0, "target_truncated": 0},
        "best": {"exact_match": 0.5},
        "settings": {"lr": 1e-4},
    }
    facts = {"teacher": "gpt-test (openai)", "license": "mit"}
    (tmp_path / "model").mkdir()
    card_path = tmp_path / "model" / "README.md"
    card_path.write_text(model_card("dates", "Rewrite.", meta, metrics, facts))
    card = ModelCard.load(card_path)
    assert card.data.library_name == "transformers" and card.data.license == "mit"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    # no RUN/onnx card here: only the model card is updated, once per evaluation
    first = "| target | n |\n|---|---|\n| student | 50 |\n"
    second = "| target | n |\n|---|---|\n| student | 60 |\n"
    assert add_eval_to_cards(tmp_path, Path("test.jsonl"), first) == [card_path]
    add_eval_to_cards(tmp_path, Path("test.jsonl"), second)
    text = card_path.read_text()
    assert text.count("## Student vs teacher") == 1
    assert "| student | 60 |" in text and "| student | 50 |" not in text
    assert ModelCard.load(card_path).data.license == "mit"  # front matter untouched
    assert leftovers(tmp_path / "model") == []


def test_card_helpers():
    assert [size_category(n) for n in (0, 999, 1000, 10**5, 10**7)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "100K<n<1M",
        "n>10M",
    ]
    yaml = front_matter({"pretty_name": 'a: "b"', "tags": ["x"], "skip": None, "empty": []})
    assert yaml == '---\npretty_name: "a: \\"b\\""\ntags:\n- "x"\n---\n'
    text = replace_section("# card\n", "eval", "one")
    assert replace_section(text, "eval", "two") == text.replace("one", "two")


def test_task_license_key(tmp_path):
    base = {"name": "t", "instruction": "i", "demonstrations": [{"input": "a", "output": "b"}]}
    assert parse_task({**base, "license": " mit "}).license == "mit"
    assert parse_task(base).license == ""
    with pytest.raises(UserError, match="'license' must be a string"):
        parse_task({**base, "license": 3})

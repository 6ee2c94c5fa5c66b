"""Model retrieval: shipped catalog rankings, size limit, popularity prior, local folders, HyDE."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.retrieval import models as m
from distill.retrieval.ranking import MiniLMEmbedder
from teachers.testing import FakeOpenAIServer


@pytest.fixture(scope="module")
def catalog():
    return m.load_model_catalog(m.shipped_catalog_path())


@pytest.mark.parametrize(
    "query, top",
    [
        ("Summarise a news article in a few sentences", "facebook/bart-large-cnn"),
        ("Translate English sentences to French", "Helsinki-NLP/opus-mt-en-fr"),
        ("Translate German to English", "Helsinki-NLP/opus-mt-de-en"),
        ("Write Python code for the description", "Salesforce/codet5-small"),
        ("Fix spelling mistakes in the sentence", "vennify/t5-base-grammar-correction"),
    ],
)
def test_shipped_catalog_rankings(catalog, query, top):
    rows, excluded = m.rank_models(query, catalog, embedder=MiniLMEmbedder(), top_k=3)
    assert rows[0]["name"] == top
    assert excluded == [{"name": "google/flan-t5-large", "reason": "3.13 GB > --max-size-gb 3"}]


def test_size_limit_drops_big_models(catalog):
    rows, excluded = m.rank_models(
        "summarise news", catalog, embedder=None, max_size_gb=0.5, top_k=50
    )
    assert all(r["size_gb"] <= 0.5 for r in rows)
    assert {"facebook/bart-large-cnn", "google/pegasus-xsum"} <= {e["name"] for e in excluded}
    assert len(rows) + len(excluded) == len(catalog)


def test_popularity_prior_breaks_a_tie_and_its_weight_is_a_setting(tmp_path):
    cat = tmp_path / "models.json"
    same = "T5 model for summarization of text."
    cat.write_text(json.dumps([
        {"name": "rare", "description": same, "params": 1000, "downloads": 10},
        {"name": "popular", "description": same, "params": 1000, "downloads": 1_000_000},
        {"name": "unknown", "description": same, "params": 1000},
    ]))  # fmt: skip
    entries = m.load_model_catalog(cat)
    rows, _ = m.rank_models("summarization", entries, embedder=None, popularity_weight=0.1)
    assert [r["name"] for r in rows] == ["popular", "rare", "unknown"]
    assert rows[0]["popularity"] == 1.0
    assert rows[1]["popularity"] == pytest.approx(round(1.0413927 / 6.0000004, 4), abs=1e-4)
    assert rows[0]["score"] == pytest.approx(rows[0]["fit"] + 0.1)
    flat, _ = m.rank_models("summarization", entries, embedder=None, popularity_weight=0.0)
    assert [r["name"] for r in flat] == ["rare", "popular", "unknown"]  # catalog order on a tie


def _local_model(tmp_path, name="my-student", model_type="encoder-decoder", enc_dec=True):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": model_type, "is_encoder_decoder": enc_dec,
                                               "architectures": ["EncoderDecoderModel"]}))  # fmt: skip
    (d / "model.safetensors").write_bytes(b"\0" * 4000)
    (d / "distill.json").write_text(
        json.dumps({"task_name": "dates", "instruction": "Rewrite dates as ISO dates."})
    )
    (d / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# dates student\nConverts calendar dates.\n"
    )
    return d


def test_local_model_folder_is_read_and_ranked(tmp_path, capsys):
    d = _local_model(tmp_path)
    e = m.local_model_entry(d)
    assert (e.architecture, e.size_gb, e.params, e.available) == (
        "encoder-decoder",
        4e-6,
        1000,
        "local",
    )
    assert "Rewrite dates as ISO dates." in e.description and "license:" not in e.description
    argv = ["retrieve-model", "--instruction", "Rewrite calendar dates as ISO dates", "--local", str(d),
            "--json", "--bm25-weight", "1"]  # fmt: skip
    assert main(argv) == 0
    top = json.loads(capsys.readouterr().out)["ranking"][0]
    assert (top["name"], top["student"], top["available"]) == (
        "my-student",
        str(d.resolve()),
        "local",
    )


def test_local_non_seq2seq_folder_is_refused(tmp_path, capsys):
    d = _local_model(tmp_path, "gpt", "gpt2", False)
    assert main(["retrieve-model", "--instruction", "x", "--local", str(d)]) == 2
    assert "model_type 'gpt2' is not an encoder-decoder (seq2seq) model" in capsys.readouterr().err


HYDE = (
    "A MarianMT model trained on OPUS parallel data for machine translation from German to English."
)


def test_hyde_description_from_the_teacher_drives_the_ranking(tmp_path, capsys):
    task = tmp_path / "task.toml"
    task.write_text(
        'name = "t"\ninstruction = "Do what the examples show."\n'
        '[[demonstrations]]\ninput = "Guten Morgen"\noutput = "Good morning"\n',
        encoding="utf-8",
    )
    assert main(["retrieve-model", "--task", str(task), "--json"]) == 0  # no teacher set: no HyDE
    plain = json.loads(capsys.readouterr().out)
    assert plain["hyde"] is None
    with FakeOpenAIServer(responder=lambda body, i: HYDE) as server:
        argv = [
            "retrieve-model",
            "--task",
            str(task),
            "--json",
            "--teacher",
            server.base_url,
            "--model",
            "fake-model",
        ]
        assert main(argv) == 0
        body = server.requests[0]
    res = json.loads(capsys.readouterr().out)
    assert "Task: Do what the examples show." in body["messages"][-1]["content"]
    assert "Input: Guten Morgen\nOutput: Good morning" in body["messages"][-1]["content"]
    assert res["hyde"] == HYDE
    assert res["queries"] == ["Do what the examples show.\nGuten Morgen -> Good morning", HYDE]
    assert res["ranking"][0]["name"] == "Helsinki-NLP/opus-mt-de-en"
    assert plain["ranking"][0]["name"] != "Helsinki-NLP/opus-mt-de-en"


def test_no_hyde_flag_skips_the_teacher(tmp_path, capsys):
    with FakeOpenAIServer(responder=lambda body, i: HYDE) as server:
        argv = ["retrieve-model", "--instruction", "x", "--no-hyde", "--json", "--bm25-weight", "1",
                "--teacher", server.base_url, "--model", "fake-model"]  # fmt: skip
        assert main(argv) == 0
        assert server.requests == []
    assert json.loads(capsys.readouterr().out)["hyde"] is None


def test_hub_model_entry_from_model_info():
    from huggingface_hub.hf_api import ModelInfo

    info = ModelInfo(
        id="org/t5-sum", downloads=42, tags=["transformers", "t5", "summarization", "license:mit"],
        safetensors={"parameters": {"F32": 60_000_000}, "total": 60_000_000},
        cardData={"license": "mit", "language": "en", "datasets": ["xsum"]}, config={"model_type": "t5"},
    )  # fmt: skip
    e = m.hub_model_entry(info)
    assert (e.name, e.student, e.architecture, e.params, e.size_gb, e.downloads) == (
        "org/t5-sum", "org/t5-sum", "t5", 60_000_000, 0.24, 42)  # fmt: skip
    assert e.languages == ("en",) and e.license == "mit"
    assert (
        e.description
        == "org/t5-sum: t5 text-to-text model. Tags: transformers, t5, summarization. Trained on: xsum."
    )

"""Dataset retrieval on the shipped catalog, and converting a chosen dataset into extra data."""

from __future__ import annotations

import csv
import json

import pytest

from distill.cli import main
from distill.retrieval import datasets as ds
from distill.retrieval.ranking import MiniLMEmbedder, hybrid_rank, tokenize


@pytest.fixture(scope="module")
def catalog():
    return ds.load_catalog(ds.shipped_catalog_path())


@pytest.mark.parametrize(
    "query, top",
    [
        ("Classify the sentiment of a movie review as positive or negative", "imdb"),
        ("Translate English sentences to French", "opus_books_en_fr"),
        ("Write an SQL query that answers the question about the database", "spider"),
        ("Solve the math word problem step by step", "gsm8k"),
        ("Correct the grammar of the sentence", "jfleg"),
        ("Classify the emotion expressed in the tweet", "emotion"),
        ("Extract person and organisation names from the sentence", "conll2003"),
        ("Turn a restaurant meaning representation into a description", "e2e_nlg"),
    ],
)
def test_hybrid_ranking_puts_the_obvious_dataset_first(catalog, query, top):
    rows = ds.rank_datasets(query, catalog, embedder=MiniLMEmbedder(), top_k=3)
    assert rows[0]["name"] == top
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["score"] >= rows[1]["score"] >= rows[2]["score"]


def test_summarisation_query_ranks_both_news_summary_sets_on_top(catalog):
    rows = ds.rank_datasets(
        "Summarise a news article in one sentence", catalog, embedder=MiniLMEmbedder(), top_k=2
    )
    assert {r["name"] for r in rows} == {"xsum", "cnn_dailymail"}


def test_fusion_is_the_documented_weighted_sum():
    docs = ["movie review sentiment", "sql queries over tables", "news summaries"]
    scored = hybrid_rank("movie sentiment", docs, embedder=MiniLMEmbedder(), bm25_weight=0.3)
    for s in scored:
        assert s.score == pytest.approx(0.3 * s.bm25 + 0.7 * max(s.cosine, 0.0), abs=1e-6)
    assert scored[0].index == 0 and scored[0].bm25 == 1.0
    bm25_only = hybrid_rank("sql tables", docs, embedder=None)
    assert next(s.index for s in bm25_only) == 1 and bm25_only[0].cosine == 0.0
    assert bm25_only[-1].score == 0.0


def test_several_queries_are_averaged():
    docs = ["movie review sentiment", "sql queries over tables", "news summaries"]
    emb = MiniLMEmbedder()
    one = {s.index: s for s in hybrid_rank("movie sentiment", docs, embedder=emb)}
    two = {s.index: s for s in hybrid_rank("sql tables", docs, embedder=emb)}
    both = hybrid_rank(["movie sentiment", "sql tables"], docs, embedder=emb)
    for s in both:
        assert s.score == pytest.approx((one[s.index].score + two[s.index].score) / 2, abs=1e-6)
        assert s.cosine == pytest.approx((one[s.index].cosine + two[s.index].cosine) / 2, abs=1e-6)
    assert {s.index for s in both[:2]} == {0, 1}


def test_tokenize_stems_by_prefix():
    assert tokenize("Translation of the translated summaries") == ["transl", "transl", "summar"]


def _write_catalog(tmp_path, rows):
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_choose_converts_a_local_jsonl_with_nested_columns(tmp_path, capsys):
    data = tmp_path / "qa.jsonl"
    rows = [
        {"question": "Capital of France?", "answers": {"text": ["Paris", "paris"]}},
        {"question": "Empty answer?", "answers": {"text": []}},
        {"question": "2+2?", "answers": {"text": ["4"]}},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cat = _write_catalog(
        tmp_path, [{"name": "my_qa", "description": "trivia questions", "path": "qa.jsonl"}]
    )
    run_dir = tmp_path / "run"
    argv = ["retrieve-data", "--instruction", "answer", "--catalog", str(cat), "--choose", "my_qa",
            "--input-column", "question", "--output-column", "answers.text", "--weight", "0.5",
            "--run-dir", str(run_dir)]  # fmt: skip
    assert main(argv) == 0
    out = run_dir / "data" / "extra" / "my_qa.jsonl"
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"input": "Capital of France?", "output": "Paris"},
        {"input": "2+2?", "output": "4"},
    ]
    index = json.loads((run_dir / "data" / "extra_data.json").read_text())
    assert index["extra_data"] == [f"{out.resolve()}:0.5"]
    assert index["sources"][0]["rows"] == 2 and index["sources"][0]["skipped"] == 1
    assert "1 rows skipped" in capsys.readouterr().out
    # Choosing it again replaces the entry instead of listing it twice.
    assert main([*argv[:-4], "--weight", "2", "--run-dir", str(run_dir)]) == 0
    index = json.loads((run_dir / "data" / "extra_data.json").read_text())
    assert index["extra_data"] == [f"{out.resolve()}:2"]


def test_choose_converts_csv_and_a_datasets_dir(tmp_path):
    import datasets

    with open(tmp_path / "rev.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["text", "label"])
        w.writeheader()
        w.writerows(
            [{"text": "great, really", "label": "positive"}, {"text": "bad", "label": "negative"}]
        )
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"de": ["Hallo"], "en": ["Hello"]})}
    )
    dd.save_to_disk(str(tmp_path / "hf"))
    cat = _write_catalog(tmp_path, [
        {"name": "rev", "description": "reviews", "path": "rev.csv"},
        {"name": "deen", "description": "pairs", "path": "hf"},
    ])  # fmt: skip
    run_dir = tmp_path / "run"
    for name, x, y in (("rev", "text", "label"), ("deen", "de", "en")):
        argv = ["retrieve-data", "--instruction", "x", "--catalog", str(cat), "--choose", name,
                "--input-column", x, "--output-column", y, "--run-dir", str(run_dir)]  # fmt: skip
        assert main(argv) == 0
    extra = run_dir / "data" / "extra"
    assert (extra / "rev.jsonl").read_text().splitlines() == [
        '{"input": "great, really", "output": "positive"}',
        '{"input": "bad", "output": "negative"}',
    ]
    assert (extra / "deen.jsonl").read_text() == '{"input": "Hallo", "output": "Hello"}\n'
    index = json.loads((run_dir / "data" / "extra_data.json").read_text())
    assert [s["name"] for s in index["sources"]] == ["rev", "deen"]


def test_choose_errors_name_the_flag(tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "b"}\n', encoding="utf-8")
    cat = _write_catalog(tmp_path, [{"name": "d", "description": "x", "path": "d.jsonl"}])
    base = [
        "retrieve-data",
        "--instruction",
        "x",
        "--catalog",
        str(cat),
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main([*base, "--choose", "d", "--input-column", "txt", "--output-column", "label"]) == 2
    assert "--input-column: no column 'txt' (available: label, text)" in capsys.readouterr().err
    assert (
        main([*base, "--choose", "dd", "--input-column", "text", "--output-column", "label"]) == 2
    )
    assert "no dataset named 'dd' in the catalog; did you mean d?" in capsys.readouterr().err
    assert main([*base, "--choose", "d", "--input-column", "text"]) == 2
    assert "--output-column: needed with --choose" in capsys.readouterr().err


def test_hub_dataset_needs_online(catalog, tmp_path, capsys, monkeypatch):
    argv = ["retrieve-data", "--instruction", "x", "--choose", "imdb", "--input-column", "text",
            "--output-column", "label", "--run-dir", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert "is on the hub (stanfordnlp/imdb)" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main([*argv, "--online"]) == 2
    assert "--online: HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_bad_catalog_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"name": "a", "description": "b"}\n{"name": "x"}\n', encoding="utf-8")
    assert main(["retrieve-data", "--instruction", "x", "--catalog", str(bad)]) == 2
    assert f"{bad}:2: 'description' must be a non-empty string" in capsys.readouterr().err


def test_cli_ranking_table_bm25_only(tmp_path, capsys):
    task = tmp_path / "task.toml"
    task.write_text(
        'name = "s"\ninstruction = "Classify the movie review sentiment"\n'
        '[[demonstrations]]\ninput = "I loved this film"\noutput = "positive"\n',
        encoding="utf-8",
    )
    assert (
        main(["retrieve-data", "--task", str(task), "--top-k", "2", "--bm25-weight", "1", "--json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["imdb", "sst2"] and rows[0]["cosine"] == 0.0


def test_hub_entry_row_from_dataset_info():
    from huggingface_hub.hf_api import DatasetInfo

    info = DatasetInfo(
        id="org/reviews", downloads=1234, description="  Product   reviews\nwith stars. ",
        tags=["task_categories:text-classification", "language:en"],
        cardData={"license": "mit", "size_categories": ["10K<n<100K"],
                  "dataset_info": {"features": [{"name": "text", "dtype": "string"}, {"name": "stars", "dtype": "int32"}]}},
    )  # fmt: skip
    row = ds.hub_entry_row(info)
    assert row == {
        "name": "org/reviews", "hub_id": "org/reviews", "description": "Product reviews with stars.",
        "columns": ["text", "stars"], "size": "10K<n<100K", "license": "mit",
        "tasks": ["text-classification"], "downloads": 1234,
    }  # fmt: skip

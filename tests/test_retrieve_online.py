"""`--online` against a loopback stand-in for the hub's listing API (no real hub is reached)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from distill.cli import main

DATASETS = [
    {
        "id": "org/star-reviews",
        "downloads": 50,
        "description": "Product reviews with 1 to 5 star ratings for sentiment classification.",
        "tags": ["task_categories:text-classification"],
        "cardData": {
            "license": "mit",
            "dataset_info": {"features": [{"name": "text"}, {"name": "stars"}]},
        },
    },
    {
        "id": "org/sql-pairs",
        "downloads": 900,
        "description": "Questions paired with SQL queries over databases.",
        "tags": ["task_categories:text2text-generation"],
        "cardData": {"license": "apache-2.0"},
    },
]
MODELS = [
    {
        "id": "org/t5-star-sentiment",
        "downloads": 100,
        "tags": ["transformers", "t5", "sentiment", "reviews"],
        "safetensors": {"parameters": {"F32": 60_000_000}, "total": 60_000_000},
        "cardData": {"license": "mit", "language": "en", "datasets": ["org/star-reviews"]},
        "config": {"model_type": "t5"},
    },
    {
        "id": "org/huge-t5",
        "downloads": 10,
        "tags": ["t5"],
        "safetensors": {"parameters": {"F32": 2_000_000_000}, "total": 2_000_000_000},
        "config": {"model_type": "t5"},
    },
]


class FakeHub:
    """A real HTTP server on 127.0.0.1 answering /api/datasets and /api/models with JSON lists."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                hub.requests.append((url.path, parse_qs(url.query)))
                body = {"/api/datasets": DATASETS, "/api/models": MODELS}.get(url.path)
                data = json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # The hub client reads HF_HUB_OFFLINE once at import; the CI may have set it before that.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    server = FakeHub()
    yield server
    server.close()


def test_online_dataset_catalog_is_listed_ranked_and_cached(hub, tmp_path, capsys):
    argv = ["retrieve-data", "--instruction", "Rate the product review sentiment in stars", "--online",
            "--hub-endpoint", hub.url, "--bm25-weight", "1", "--json", "--hub-limit", "20"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["org/star-reviews", "org/sql-pairs"]
    assert rows[0]["columns"] == ["text", "stars"] and rows[0]["license"] == "mit"
    path, query = hub.requests[0]
    assert path == "/api/datasets" and query["sort"] == ["downloads"] and query["limit"] == ["20"]
    assert (tmp_path / "cache" / "hub_datasets.jsonl").is_file()
    hub.close()  # the cached catalog serves the next run without the hub
    assert main(argv) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == [
        "org/star-reviews",
        "org/sql-pairs",
    ]


def test_online_models_join_the_shipped_catalog_and_obey_the_size_limit(hub, capsys):
    argv = ["retrieve-model", "--instruction", "star sentiment of product reviews", "--online",
            "--hub-endpoint", hub.url, "--bm25-weight", "1", "--json", "--no-hyde"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    top = res["ranking"][0]
    assert (top["name"], top["size_gb"], top["architecture"], top["available"]) == (
        "org/t5-star-sentiment", 0.24, "t5", "hub")  # fmt: skip
    assert {"name": "org/huge-t5", "reason": "8.00 GB > --max-size-gb 3"} in res["excluded"]
    assert hub.requests[0][1]["pipeline_tag"] == ["text2text-generation"]


def test_hub_error_is_one_clear_line(hub, capsys):
    # A wrong endpoint: the server answers 404 (a refused connection reads the same, but the
    # hub client retries those with backoff for ~25 s).
    argv = ["retrieve-data", "--instruction", "x", "--online", "--hub-endpoint", hub.url + "/wrong"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("distill retrieve-data: error: --online: could not list hub datasets (")
    assert err.endswith("drop --online to use the shipped catalog")
    assert hub.requests[0][0] == "/wrong/api/datasets"

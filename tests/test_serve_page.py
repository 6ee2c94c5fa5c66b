"""The page at `/` of `distill serve`, driven in headless Chromium, and GET /v1/info.

The browser tests skip when no Chromium is installed, except under CI (env CI set), where a
missing browser is a failure: CI installs Debian's `chromium` first (.ci/run).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from browser import Chromium, find_chromium

MARKUP = '<img src=x onerror="document.title=1"> & <b>bold</b>'
DEMOS = [["the cat runs fast", "the cat runs fast"], [MARKUP, "markup"], ["a red dog", "dog"]]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A `distill run` folder around the tiny export: RUN/onnx, RUN/data/state.json (the
    demonstrations) and RUN/report.json (student-vs-teacher scores), as `distill run` writes."""
    from tiny_models import exported_tiny

    onnx = exported_tiny("t5", tmp_path_factory.getbasetemp())[1]
    run = tmp_path_factory.mktemp("run")
    shutil.copytree(onnx, run / "onnx")
    (run / "data").mkdir()
    state = {"fingerprint": "x", "settings": {"task": {"name": "tiny"}, "demonstrations": DEMOS}}
    (run / "data" / "state.json").write_text(json.dumps(state))
    report = {
        "test": "/somewhere/private/data/test.jsonl",
        "reports": [
            _report("student ONNX int8 (onnx)", "onnx", 0.81, 12.5, 74.4),
            _report("teacher embedded", "teacher", 0.86, 410.0, None),
        ],
    }
    (run / "report.json").write_text(json.dumps(report))
    return run


def _report(name: str, kind: str, em: float, p50: float, size: float | None) -> dict:
    return {
        "target": name,
        "kind": kind,
        "name": name,
        "n": 300,
        "metrics": {"em": {"score": em, "ci95": [em - 0.05, em + 0.04]}},
        "latency_ms": {"p50": p50, "p95": p50 * 2, "mean": p50, "samples": 50, "mode": "x"},
        "size_mb": size,
    }


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary:
        return binary
    if os.environ.get("CI"):
        pytest.fail(
            "CI is set but no chromium binary was found: .ci/run installs Debian's chromium"
        )
    pytest.skip("no chromium binary on PATH (apt-get install chromium, or set CHROMIUM=PATH)")


async def _serve(onnx_dir: Path, settings, body):
    """Run the app on a loopback port; `body(base_url, session)` drives it."""
    from exports.runtime import OnnxSeq2Seq
    from exports.serve import build_app

    # fp32: int8 answers may depend on which inputs share a micro-batch; the page's batch
    # requests and the test's own requests must give the same answers.
    model = OnnxSeq2Seq(onnx_dir, threads=1, precision="fp32")
    runner = web.AppRunner(build_app(model, settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    try:
        async with aiohttp.ClientSession(base) as session:
            return await body(base, session)
    finally:
        await runner.cleanup()


async def _generate(session: aiohttp.ClientSession, payload: dict) -> dict:
    async with session.post("/v1/generate", json=payload) as r:
        assert r.status == 200
        return await r.json()


def test_page_answers_like_the_api(chromium, run_dir) -> None:
    from exports.config import ServeConfig

    lines = ["the cat runs fast", "hello world !", "a blue zebra , 2019"]

    async def body(base, session):
        async with Chromium.launch(chromium) as page:
            await page.goto(base + "/")
            await page.wait_for("document.querySelectorAll('#demos .demo').length === 3")
            seen = {
                "title": await page.text("#task-name"),
                "instruction": await page.text("#instruction"),
                "facts": await page.text("#facts-list"),
                "score_rows": await page.eval(
                    "document.querySelectorAll('#scores tbody tr').length"
                ),
                "scores_test": await page.text("#scores-test"),
                "demo_markup": await page.text("#demos .demo:nth-child(2)"),
                "injected": await page.eval(
                    "document.querySelectorAll('#demos img, #demos b').length"
                ),
            }

            await page.type("#input", "the dog runs slow")
            await page.click("#run")
            seen["answer"] = await page.wait_for("document.querySelector('#answer').textContent")
            seen["latency"] = await page.text("#latency")
            seen["api"] = (await _generate(session, {"input": "the dog runs slow"}))["output"]

            await page.click("#demos .demo:nth-child(3)")
            seen["filled"] = await page.eval("document.querySelector('#input').value")

            await page.type("#batch-input", "\n".join(lines) + "\n\n")
            await page.click("#batch-run")
            seen["status"] = await page.wait_for(
                "(s => s.includes('answers') && s)(document.querySelector('#batch-status').textContent)"
            )
            seen["rows"] = await page.eval(
                "[...document.querySelectorAll('#batch-rows tr')]"
                ".map(r => [...r.cells].map(c => c.textContent))"
            )
            seen["batch_api"] = (await _generate(session, {"inputs": lines[:2]}))["outputs"] + (
                await _generate(session, {"inputs": lines[2:]})
            )["outputs"]
            seen["errors"], seen["doc_title"] = page.errors, await page.eval("document.title")
        return seen

    settings = ServeConfig(max_inputs=2)
    seen = asyncio.run(_serve(run_dir / "onnx", settings, body))
    assert seen["title"] == "tiny" and seen["instruction"] == "Echo the input."
    assert "fp32" in seen["facts"] and "passed" in seen["facts"]
    assert seen["score_rows"] == 2 and "test.jsonl" in seen["scores_test"]
    assert "private" not in seen["scores_test"]  # no server paths in the page
    # model and user text is text, never markup
    assert MARKUP in seen["demo_markup"] and seen["injected"] == 0
    assert seen["doc_title"] == "tiny · distill serve"
    assert seen["answer"] == seen["api"]
    assert seen["latency"].endswith(" ms") and seen["latency"][:-3].isdigit()
    assert seen["filled"] == "a red dog"
    # 3 lines (blank ones skipped), split into 2 requests by the service's max_inputs of 2
    assert seen["status"].startswith("3 answers in 2 requests")
    assert seen["rows"] == [
        [str(i + 1), x, y] for i, (x, y) in enumerate(zip(lines, seen["batch_api"], strict=True))
    ]
    assert seen["errors"] == []


def test_page_shows_the_services_4xx_and_refuses_what_cannot_fit(chromium, run_dir) -> None:
    from exports.config import ServeConfig

    async def body(base, session):
        async with Chromium.launch(chromium) as page:
            await page.goto(base + "/")
            await page.wait_for("document.querySelectorAll('#demos .demo').length === 3")
            seen = {}
            # too many characters: only the service counts them, the page shows its 422
            await page.type("#input", "x" * 60)
            await page.click("#run")
            seen["error"] = await page.wait_for(
                "(e => !e.hidden && e.textContent)(document.querySelector('#error'))"
            )
            seen["answer"] = await page.text("#answer")
            # a batch whose second request the service refuses: the first one's rows stay
            await page.type("#batch-input", "a cat\na dog\n" + "y" * 50)
            await page.click("#batch-run")
            seen["batch_error"] = await page.wait_for(
                "(e => !e.hidden && e.textContent)(document.querySelector('#batch-error'))"
            )
            seen["rows"] = await page.eval("document.querySelectorAll('#batch-rows tr').length")
            # a line that cannot fit any request body: refused before anything is sent
            await page.type("#batch-input", "ok\n" + "z" * 400)
            await page.click("#batch-run")
            seen["refused"] = await page.wait_for(
                "(e => e.textContent.startsWith('Not sent') && e.textContent)"
                "(document.querySelector('#batch-error'))"
            )
            async with session.get("/metrics") as r:
                seen["metrics"] = await r.text()
        return seen

    settings = ServeConfig(max_inputs=2, max_input_chars=40, max_body_bytes=300)
    seen = asyncio.run(_serve(run_dir / "onnx", settings, body))
    assert seen["error"] == (
        "The service answered 422: an input has 60 characters; the limit is 40"
    )
    assert seen["answer"] == ""
    assert seen["batch_error"] == (
        "Lines 3-3: The service answered 422: an input has 50 characters; the limit is 40"
    )
    assert seen["rows"] == 2
    assert "line 2 alone makes a request of 415 bytes" in seen["refused"]
    assert "at most 300 (--max-body-bytes)" in seen["refused"]
    # the refused batch sent nothing: one 200 (lines 1-2) and two 422s in all
    assert 'path="/v1/generate",status="200"} 1\n' in seen["metrics"]
    assert 'path="/v1/generate",status="422"} 2\n' in seen["metrics"]
    assert 'status="413"' not in seen["metrics"]


def test_info_reads_the_run_around_the_model(run_dir) -> None:
    from common.meta import read_meta
    from exports.config import ServeConfig
    from exports.info import service_info

    onnx = run_dir / "onnx"
    info = service_info(onnx, read_meta(onnx), "fp32", ServeConfig(max_inputs=7))
    assert info["task"] == {"name": "tiny", "instruction": "Echo the input."}
    assert [[d["input"], d["output"]] for d in info["demonstrations"]] == DEMOS
    graphs = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
    assert info["model"]["size_bytes"] == sum((onnx / g).stat().st_size for g in graphs)
    assert info["model"]["precision"] == "fp32"
    assert info["gate"]["status"] == "passed" and info["gate"]["n"] == 24
    assert info["scores"]["test"] == "test.jsonl"
    assert [(r["name"], r["metrics"]["em"], r["size_mb"]) for r in info["scores"]["reports"]] == [
        ("student ONNX int8 (onnx)", 0.81, 74.4),
        ("teacher embedded", 0.86, None),
    ]
    assert info["limits"]["max_inputs"] == 7
    assert info["notes"] == []


def test_info_of_a_bare_export_says_what_is_missing(run_dir, tmp_path) -> None:
    from common.meta import read_meta
    from exports.config import ServeConfig
    from exports.info import service_info

    onnx = tmp_path / "onnx"
    shutil.copytree(run_dir / "onnx", onnx)
    (onnx / "export_report.json").unlink()
    (tmp_path / "data").mkdir()
    state = {"settings": {"task": {"name": "other task"}, "demonstrations": DEMOS}}
    (tmp_path / "data" / "state.json").write_text(json.dumps(state))
    info = service_info(onnx, read_meta(onnx), "fp32", ServeConfig())
    assert info["demonstrations"] == [] and info["gate"] is None and info["scores"] is None
    assert info["notes"] == [
        "../data/state.json: task 'other task' is not the model's 'tiny'; not shown",
        "export_report.json: not found (the export's quality gate is unknown)",
        "../report.json: not found (no student-vs-teacher scores: `distill run` writes them)",
    ]
    assert str(tmp_path) not in json.dumps(info)


def test_page_and_info_routes(run_dir) -> None:
    """GET / is the packaged page with a CSP that admits its own script by hash; GET /v1/info
    is JSON. No browser needed."""
    from exports.config import ServeConfig

    async def body(base, session):
        async with session.get("/") as r:
            page = (r.status, r.content_type, r.headers["Content-Security-Policy"], await r.text())
        async with session.get("/v1/info") as r:
            info = (r.status, await r.json())
        async with session.get("/metrics") as r:
            metrics = await r.text()
        return page, info, metrics

    page, info, metrics = asyncio.run(_serve(run_dir / "onnx", ServeConfig(), body))
    status, content_type, csp, html = page
    assert status == 200 and content_type == "text/html" and "<script>" in html
    assert "script-src 'sha256-" in csp and "default-src 'none'" in csp
    assert info[0] == 200 and info[1]["task"]["name"] == "tiny"
    assert 'path="/",status="200"} 1' in metrics
    assert 'path="/v1/info",status="200"} 1' in metrics

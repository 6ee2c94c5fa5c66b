"""The HTTP service on a real loopback port: 50 concurrent clients, limits, JSON errors."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from aiohttp import web

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    from tiny_models import exported_tiny

    return exported_tiny("t5", tmp_path_factory.getbasetemp())[1]


async def _with_server(onnx_dir, settings, body, precision="auto"):
    from exports.runtime import OnnxSeq2Seq
    from exports.serve import build_app

    model = OnnxSeq2Seq(onnx_dir, threads=1, precision=precision)
    runner = web.AppRunner(build_app(model, settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            return await body(session, model)
    finally:
        await runner.cleanup()


def test_fifty_concurrent_clients_get_their_own_answers(onnx_dir):
    from exports.config import ServeConfig

    inputs = [f"client {i} says hello {i % 7}" for i in range(50)]

    async def body(session, model):
        expected = model.generate(inputs, max_new_tokens=6, batch_size=1)

        async def one(i):
            async with session.post(
                "/v1/generate", json={"input": inputs[i], "max_new_tokens": 6}
            ) as r:
                return r.status, await r.json()

        results = await asyncio.gather(*(one(i) for i in range(50)))
        async with session.get("/metrics") as r:
            metrics = await r.text()
        async with session.get("/healthz") as r:
            health = await r.json()
        return expected, results, metrics, health

    # fp32: int8 activations are quantised with one scale per batch, so int8 outputs may
    # depend on which requests share a micro-batch; fp32 answers must not.
    expected, results, metrics, health = asyncio.run(
        _with_server(onnx_dir, ServeConfig(max_batch=8, max_wait_ms=20), body, precision="fp32")
    )
    assert [s for s, _ in results] == [200] * 50
    assert [j["output"] for _, j in results] == expected
    assert [j["outputs"] for _, j in results] == [[e] for e in expected]
    assert 'distill_requests_total{path="/v1/generate",status="200"} 50' in metrics
    assert "distill_request_latency_seconds_count 50" in metrics
    batches = int(
        next(
            line.split()[1]
            for line in metrics.splitlines()
            if line.startswith("distill_batches_total")
        )
    )
    assert batches < 50  # concurrent requests were micro-batched
    assert health["status"] == "ok" and health["precision"] == "fp32"


def test_bad_requests_get_4xx_json(onnx_dir):
    from exports.config import ServeConfig

    cases = [
        (b"{not json", 400),
        (b'["a"]', 422),
        (b'{"inputs": "a string"}', 422),
        (b'{"inputs": [1, 2]}', 422),
        (b'{"input": 5}', 422),
        (b'{"inputs": []}', 422),
        (b'{"inputs": ["a"], "input": "b"}', 422),
        (b'{"inputs": ["a"], "temperature": 1}', 422),
        (b'{"inputs": ["a"], "max_new_tokens": "9"}', 422),
        (b'{"inputs": ["a"], "num_beams": 0}', 422),
        (b'{"inputs": ["a", "b", "c", "d", "e"]}', 422),
        (b'{"input": "' + b"x" * 300 + b'"}', 422),
        (b'{"input": "' + b"x" * 5000 + b'"}', 413),
        (b"\xff\xfe", 400),
    ]

    async def body(session, model):
        out = []
        for raw, _ in cases:
            async with session.post(
                "/v1/generate", data=raw, headers={"Content-Type": "application/json"}
            ) as r:
                out.append((r.status, r.content_type, await r.json()))
        async with session.get("/nope") as r:
            out.append((r.status, r.content_type, await r.json()))
        async with session.post("/v1/generate", json={"inputs": ["ok"], "num_beams": 2}) as r:
            ok = (r.status, await r.json())
        return out, ok

    settings = ServeConfig(max_body_bytes=4096, max_inputs=4, max_input_chars=200)
    out, ok = asyncio.run(_with_server(onnx_dir, settings, body))
    assert [s for s, _, _ in out[:-1]] == [want for _, want in cases]
    assert out[-1][0] == 404
    assert all(ct == "application/json" and isinstance(j["error"], str) for _, ct, j in out)
    assert ok[0] == 200 and len(ok[1]["outputs"]) == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-batch", "0"], "--max-batch: must be positive (got 0)"),
        (["--threads", "0"], "--threads: must be >= 1 (got 0)"),
        (["--port", "70000"], "--port: must be 0-65535 (got 70000)"),
    ],
)
def test_serve_flags_are_checked_by_its_config(tmp_path, capsys, flags, message) -> None:
    """`distill serve` settings come from ServeConfig: one line, exit 2, naming the flag."""
    from distill.cli import main

    (tmp_path / "distill.json").write_text("{}")
    assert main(["serve", "--model", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err

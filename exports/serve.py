"""HTTP service for an exported student (aiohttp; no torch, no transformers).

POST /v1/generate  {"inputs": ["...", ...]} or {"input": "..."}, optional "max_new_tokens",
                   "num_beams"  ->  {"outputs": [...]} (and "output" for a single "input")
GET  /healthz      -> {"status": "ok", ...}
GET  /metrics      -> Prometheus text: requests by path and status, latency histogram, batch sizes
GET  /             -> a page to try the model (exports/static/index.html: static HTML and JS)
GET  /v1/info      -> what the page shows: task, demonstrations, model facts, gate, scores, limits

Concurrent requests with the same options are micro-batched (up to `max_batch` inputs, waiting
at most `max_wait_ms` for company) and run in a one-thread pool so the event loop stays free.
Every rejection of user input is a 4xx JSON `{"error": ...}`; never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from exports.config import ServeConfig
from exports.info import service_info
from exports.runtime import OnnxSeq2Seq

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OPTIONS = {"max_new_tokens", "num_beams"}
PATHS = ("/", "/v1/info", "/v1/generate", "/healthz", "/metrics")  # metric labels; else "other"


class RequestError(Exception):
    """A request the client must fix: answered with `status` and a JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Job:
    inputs: list[str]
    key: tuple[int | None, int]  # (max_new_tokens, num_beams): only equal keys share a batch
    future: asyncio.Future


class Metrics:
    """Counters and a latency histogram, rendered as Prometheus text."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.lat_sum, self.lat_count = 0.0, 0
        self.batches, self.batched_inputs = 0, 0

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] += 1
        if path == "/v1/generate":
            self.lat_sum += seconds
            self.lat_count += 1
            for i, le in enumerate(LATENCY_BUCKETS):
                self.buckets[i] += seconds <= le

    def render(self) -> str:
        lines = [
            "# HELP distill_requests_total HTTP requests by path and status.",
            "# TYPE distill_requests_total counter",
        ]
        for (path, status), n in sorted(self.requests.items()):
            lines.append(f'distill_requests_total{{path="{path}",status="{status}"}} {n}')
        lines += [
            "# HELP distill_request_latency_seconds Latency of POST /v1/generate.",
            "# TYPE distill_request_latency_seconds histogram",
        ]
        for le, n in zip(LATENCY_BUCKETS, self.buckets, strict=True):
            lines.append(f'distill_request_latency_seconds_bucket{{le="{le}"}} {n}')
        lines.append(f'distill_request_latency_seconds_bucket{{le="+Inf"}} {self.lat_count}')
        lines.append(f"distill_request_latency_seconds_sum {self.lat_sum:.6f}")
        lines.append(f"distill_request_latency_seconds_count {self.lat_count}")
        lines += [
            "# TYPE distill_batches_total counter",
            f"distill_batches_total {self.batches}",
            "# TYPE distill_batched_inputs_total counter",
            f"distill_batched_inputs_total {self.batched_inputs}",
        ]
        return "\n".join(lines) + "\n"


class Batcher:
    """Collects concurrent jobs into micro-batches and runs the model off the event loop."""

    def __init__(self, model: OnnxSeq2Seq, settings: ServeConfig, metrics: Metrics) -> None:
        self.model, self.settings, self.metrics = model, settings, metrics
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.held: deque[_Job] = deque()  # jobs pulled while batching others with different options
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="distill-onnx")
        self.task: asyncio.Task | None = None

    async def submit(self, inputs: list[str], key: tuple[int | None, int]) -> list[str]:
        job = _Job(inputs, key, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def _next(self, timeout: float | None) -> _Job | None:
        if self.held:
            return self.held.popleft()
        if timeout is None:
            return await self.queue.get()
        try:
            return await asyncio.wait_for(self.queue.get(), max(0.0, timeout))
        except TimeoutError:
            return None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            jobs, n, skipped = [first], len(first.inputs), []
            deadline = loop.time() + self.settings.max_wait_ms / 1000
            while n < self.settings.max_batch:
                job = await self._next(deadline - loop.time())
                if job is None:
                    break
                if job.key != first.key or n + len(job.inputs) > self.settings.max_batch:
                    skipped.append(job)
                    if job.key == first.key:
                        break
                    continue
                jobs.append(job)
                n += len(job.inputs)
            self.held.extend(skipped)
            await self._run_batch(jobs)

    async def _run_batch(self, jobs: list[_Job]) -> None:
        inputs = [x for job in jobs for x in job.inputs]
        max_new, beams = jobs[0].key
        call = lambda: self.model.generate(  # noqa: E731
            inputs,
            max_new_tokens=max_new,
            num_beams=beams,
            batch_size=max(1, self.settings.max_batch),
        )
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except Exception as exc:  # a model failure belongs to every request of the batch
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.metrics.batches += 1
        self.metrics.batched_inputs += len(inputs)
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(outputs[start : start + len(job.inputs)])
            start += len(job.inputs)


def parse_request(body: bytes, s: ServeConfig) -> tuple[list[str], tuple[int | None, int], bool]:
    """Validate a /v1/generate body: (inputs, (max_new_tokens, num_beams), single)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(
            422, "body must be a JSON object with 'inputs' (list of strings) or 'input'"
        )
    unknown = set(data) - OPTIONS - {"inputs", "input"}
    if unknown:
        raise RequestError(422, f"unknown field(s): {', '.join(sorted(unknown))}")
    if ("inputs" in data) == ("input" in data):
        raise RequestError(
            422, "give exactly one of 'inputs' (list of strings) or 'input' (string)"
        )
    single = "input" in data
    inputs = [data["input"]] if single else data["inputs"]
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise RequestError(422, "'inputs' must be a list of strings and 'input' a string")
    if not inputs or len(inputs) > s.max_inputs:
        raise RequestError(
            422, f"'inputs' must hold 1 to {s.max_inputs} strings (got {len(inputs)})"
        )
    longest = max(len(x) for x in inputs)
    if longest > s.max_input_chars:
        raise RequestError(
            422, f"an input has {longest} characters; the limit is {s.max_input_chars}"
        )
    max_new = _int_option(data, "max_new_tokens", 1, s.max_new_tokens)
    beams = _int_option(data, "num_beams", 1, s.max_beams) or 1
    return inputs, (max_new, beams), single


def _int_option(data: dict, key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(422, f"'{key}' must be an integer from {low} to {high} (got {value!r})")
    return value


def build_app(model: OnnxSeq2Seq, settings: ServeConfig | None = None) -> web.Application:
    """The aiohttp application (tests run it on a loopback port; `serve` runs it for real)."""
    s = settings or ServeConfig()
    metrics = Metrics()
    app = web.Application(
        client_max_size=s.max_body_bytes, middlewares=[_errors_middleware(metrics)]
    )
    batcher = Batcher(model, s, metrics)

    async def generate(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > s.max_body_bytes:
            raise RequestError(
                413, f"body of {request.content_length} bytes exceeds {s.max_body_bytes}"
            )
        inputs, key, single = parse_request(await request.read(), s)
        outputs = await batcher.submit(inputs, key)
        return web.json_response({"outputs": outputs, **({"output": outputs[0]} if single else {})})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "precision": model.precision, "task": model.meta.task_name}
        )

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    info = service_info(model.onnx_dir, model.meta, model.precision, s)
    page, page_headers = _page()

    async def info_view(request: web.Request) -> web.Response:
        return web.json_response(info)

    async def page_view(request: web.Request) -> web.Response:
        return web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=page_headers
        )

    async def start(app: web.Application) -> None:
        batcher.task = asyncio.create_task(batcher.run())

    async def stop(app: web.Application) -> None:
        if batcher.task:
            batcher.task.cancel()
        batcher.pool.shutdown(wait=True)

    app.router.add_post("/v1/generate", generate)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/", page_view)
    app.router.add_get("/v1/info", info_view)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def _errors_middleware(metrics: Metrics) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except RequestError as exc:
            response = web.json_response({"error": str(exc)}, status=exc.status)
        except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself: JSON too
            response = web.json_response({"error": exc.reason}, status=exc.status)
        path = request.path if request.path in PATHS else "other"
        metrics.observe(path, response.status, time.perf_counter() - t0)
        return response

    return middleware


def _page() -> tuple[str, dict[str, str]]:
    """The page's HTML (package data) and its headers: a Content-Security-Policy that admits
    only the page's own inline script and style (by hash) and requests to this service, so
    text that slipped into the DOM as markup could still not run code."""
    html = resources.files("exports").joinpath("static", "index.html").read_text("utf-8")

    def hashes(tag: str) -> str:
        # the page's own blocks start a line (a `<script>` in a comment or a string must not)
        blocks = re.findall(rf"^<{tag}>(.*?)</{tag}>", html, re.DOTALL | re.MULTILINE)
        digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
        return " ".join(f"'sha256-{d}'" for d in digests)

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"}
    return html, headers


def serve(onnx_dir: str | Path, cfg: ServeConfig, shutdown_timeout: float = 10.0) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish before the process exits."""
    model = OnnxSeq2Seq(onnx_dir, threads=cfg.threads, precision=cfg.precision)
    app = build_app(model, cfg)
    print(
        f"distill serve: {onnx_dir} ({model.precision}) on http://{cfg.host}:{cfg.port}",
        flush=True,
    )
    web.run_app(
        app,
        host=cfg.host,
        port=cfg.port,
        shutdown_timeout=shutdown_timeout,
        print=None,
        handle_signals=True,
        access_log=None,
    )

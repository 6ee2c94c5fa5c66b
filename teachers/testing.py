"""A real OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks.

`FakeOpenAIServer` runs aiohttp on its own event loop in a background thread, so sync test code
can use it as a context manager while the client under test runs its own loop. Every answer is a
real HTTP response over a real socket: faults (429 with Retry-After, 5xx, dropped connections,
truncated or non-JSON bodies, slow answers, per-window RPM limits) are produced on the wire, not
mocked, which is what makes the client's retry and rate-limit tests worth something.

Run it standalone (for benchmarks, so its CPU is not charged to the client process):
    python -m teachers.testing --port 0 --latency-s 0.1
prints the base URL on the first line of stdout and serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Self

import xxhash
from aiohttp import web

Responder = Callable[[dict, int], str]
# (request body, completion index, answer text) -> the choice's `logprobs.content` list, or None
# to send no `logprobs` at all (a server that ignores the request field).
LogprobsFn = Callable[[dict, int, str], list[dict] | None]

# Inputs a responder can write: distinct, deterministic, and cheap to derive from a request.
PHRASE_WORDS = [
    "amber",
    "basil",
    "cedar",
    "dune",
    "ember",
    "fjord",
    "grove",
    "heath",
    "inlet",
    "juniper",
    "kelp",
    "larch",
    "marsh",
    "nettle",
    "orchid",
    "pine",
    "quartz",
    "reed",
    "sorrel",
    "thistle",
    "umber",
    "vale",
    "willow",
    "yarrow",
]


def word_phrase(key: int | str, length: int = 5) -> str:
    """A distinct word sequence for `key`: `length` words picked by xxh3, then the key itself.

    Test and benchmark responders build their teacher's inputs with it, so an answer is a pure
    function of the request (its seed) and a resumed or replayed run can be checked exactly.
    """
    words = [
        PHRASE_WORDS[xxhash.xxh3_64_intdigest(f"{key}:{k}".encode()) % len(PHRASE_WORDS)]
        for k in range(length)
    ]
    return " ".join(words) + f" {key}"


# Fault names a script may contain. "4xx"/"5xx" codes are answered with a JSON error body.
ERROR_CODES = {"400", "401", "403", "404", "408", "409", "500", "502", "503"}
FAULTS = ERROR_CODES | {
    "429",  # Retry-After: seconds (server.retry_after_s)
    "429ms",  # retry-after-ms only
    "drop",  # close the connection without answering
    "truncated",  # 200 with the first half of a valid JSON body
    "nonjson",  # 200 with an HTML page
    "no_choices",  # 200 with "choices": []
    "slow",  # answer normally after server.slow_s seconds
}


def default_responder(body: dict, index: int) -> str:
    """Echo the last user message with the completion's ordinal: deterministic and distinct."""
    last = next(
        (m.get("content", "") for m in reversed(body["messages"]) if m.get("role") == "user"), ""
    )
    return f"answer {index} to: {last}"


def word_logprobs(body: dict, index: int, text: str) -> list[dict]:
    """The default `logprobs.content`: one token per word (a space in front of all but the
    first), each certain (logprob 0) and its own only alternative."""
    words = text.split(" ")
    tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return [
        {"token": t, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": 0.0}]} for t in tokens
    ]


def count_tokens(text: str) -> int:
    """The fake tokenizer: whitespace words (good enough to check the client's accounting)."""
    return len(text.split())


class LoopbackServer:
    """An aiohttp app on 127.0.0.1, served by its own event loop in a daemon thread.

    Sync test code uses it as a context manager while the client under test runs its own loop.
    Subclasses build their app in `_app`; the socket is bound in `start` (port 0: any free one).
    """

    _name = "loopback"

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    @property
    def port(self) -> int:
        assert self._sock is not None, "server not started"
        return self._sock.getsockname()[1]

    def start(self) -> Self:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self._port))
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), daemon=True, name=self._name
        )
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, started: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        # access_log=None: per-request logging would cost more CPU than the whole handler.
        # shutdown_timeout: a scripted slow answer must not hold up stop().
        self._runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, backlog=4096).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeOpenAIServer(LoopbackServer):
    """OpenAI chat-completions on 127.0.0.1:PORT/v1, scriptable, logging every request.

    responder(body, index) gives the assistant text; `index` counts completions (each of the n
    choices of a request gets its own) in the order the server produces them.
    faults: names from FAULTS consumed one per incoming request, in arrival order; more can be
    queued later with `add_faults`. `fault_fn(body, request_index) -> name | None` decides per
    request instead (checked after the queue).
    rpm_limit: answer 429 once more than rpm_limit * rpm_window_s / 60 requests arrived within
    the last rpm_window_s seconds (a short window makes RPM tests fast).
    refuse_n: answer 400 to any request with n > 1 (like llama.cpp with too few slots).
    refuse_logprobs: answer 400 to any request with `logprobs` (like OpenAI's reasoning models).
    ratelimit_headers: extra headers (e.g. x-ratelimit-limit-requests) on every 200 answer.
    logprobs_fn: what a request with `logprobs: true` gets as each choice's `logprobs.content`
    (default `word_logprobs`); a request without it never gets `logprobs`, as with OpenAI.
    """

    _name = "fake-openai"

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        latency_spread: float = 0.0,
        faults: Iterable[str] = (),
        fault_fn: Callable[[dict, int], str | None] | None = None,
        retry_after_s: float = 0.2,
        slow_s: float = 5.0,
        rpm_limit: int | None = None,
        rpm_window_s: float = 60.0,
        refuse_n: bool = False,
        refuse_logprobs: bool = False,
        ratelimit_headers: dict[str, str] | None = None,
        error_message: str = "scripted failure",
        model: str = "fake-model",
        port: int = 0,
        logprobs_fn: LogprobsFn | None = None,
    ) -> None:
        self.responder = responder or default_responder
        self.logprobs_fn = logprobs_fn or word_logprobs
        self.latency_s = latency_s
        self.latency_spread = latency_spread  # latency varies +-spread x latency_s per request
        self.fault_fn = fault_fn
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.rpm_limit = rpm_limit
        self.rpm_window_s = rpm_window_s
        self.refuse_n = refuse_n
        self.refuse_logprobs = refuse_logprobs
        self.ratelimit_headers = dict(ratelimit_headers or {})
        self.error_message = error_message
        self.model = model
        super().__init__(port)
        self.requests: list[dict] = []  # every parsed request body, in arrival order
        self.events: list[
            dict
        ] = []  # {"t": monotonic arrival, "status": int|None, "fault": str|None}
        self.api_keys_seen: set[str] = set()
        self.in_flight = 0  # chat requests being handled now
        self.max_in_flight = 0  # the most handled at once: what the client's concurrency reached
        # Batch API (/v1/files, /v1/batches): see `batch_outcomes` and `_batch_*` below.
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_submissions: list[list[str]] = []  # custom_ids of every batch created
        self.batch_outcomes: collections.deque[str] = collections.deque()
        self.batch_polls = 1  # retrieves a batch spends in_progress before it finishes
        self.hold_batches = False  # keep every batch in_progress (a batch that takes hours)
        self._accepted_times: collections.deque[float] = collections.deque()
        self._completion_index = 0
        self._lock = threading.Lock()
        self._faults: collections.deque[str] = collections.deque()
        self.add_faults(*faults)

    def _latency(self, index: int) -> float:
        """Seconds to wait before answering request `index`."""
        return self.latency_s * _spread_factor(index, self.latency_spread)

    # ----------------------------------------------------------------- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def add_faults(self, *names: str) -> None:
        """Queue faults for the next requests (one per request, in order)."""
        for name in names:
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; known: {sorted(FAULTS)}")
        with self._lock:
            self._faults.extend(names)

    def count(self, status: int | None = None, fault: str | None = None) -> int:
        """How many requests were answered with this status (None = dropped) or fault."""
        with self._lock:
            events = list(self.events)
        return sum(
            1
            for e in events
            if (fault is None or e["fault"] == fault) and (status is None or e["status"] == status)
        )

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/files", self._file_create)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._batch_create)
        app.router.add_get("/v1/batches/{batch_id}", self._batch_retrieve)
        app.router.add_post("/v1/batches/{batch_id}/cancel", self._batch_cancel)
        return app

    # ----------------------------------------------------------------- handlers

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model"}]}
        )

    def _next_fault(self, body: dict, index: int) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.popleft()
        return self.fault_fn(body, index) if self.fault_fn else None

    def _over_rpm(self, now: float) -> float | None:
        """Seconds until a slot frees if this request exceeds the RPM window, else None (and count it)."""
        if self.rpm_limit is None:
            return None
        allowed = max(1, int(self.rpm_limit * self.rpm_window_s / 60.0))
        times = self._accepted_times
        while times and times[0] <= now - self.rpm_window_s:
            times.popleft()
        if len(times) >= allowed:
            return times[0] + self.rpm_window_s - now
        times.append(now)
        return None

    def _log(self, event: dict, status: int | None, fault: str | None) -> None:
        event["status"], event["fault"] = status, fault

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle_chat(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        auth = request.headers.get("Authorization", "")
        raw = await request.read()
        body = json.loads(raw)
        event: dict[str, Any] = {"t": now, "status": None, "fault": None}
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
            self.events.append(event)
            if auth.startswith("Bearer "):
                self.api_keys_seen.add(auth[len("Bearer ") :])
        if self.latency_s > 0:
            await asyncio.sleep(self._latency(index))
        if self.refuse_n and int(body.get("n") or 1) > 1:
            self._log(event, 400, "refuse_n")
            return _error(400, "only n = 1 is supported")
        if self.refuse_logprobs and body.get("logprobs"):
            self._log(event, 400, "refuse_logprobs")
            return _error(400, "logprobs is not supported with this model")
        fault = self._next_fault(body, index)
        if fault is None:
            with self._lock:
                wait = self._over_rpm(now)
            if wait is not None:
                self._log(event, 429, "rpm")
                return _error(
                    429,
                    "rate limit reached for requests",
                    {"Retry-After": f"{max(wait, 0.001):.3f}"},
                )
        return await self._answer(request, body, event, fault)

    async def _answer(
        self, request: web.Request, body: dict, event: dict, fault: str | None
    ) -> web.StreamResponse:
        if fault == "drop":
            self._log(event, None, fault)
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp abandons the handler; the client sees a reset
        if fault in ("429", "429ms"):
            self._log(event, 429, fault)
            if fault == "429":
                headers = {"Retry-After": f"{self.retry_after_s:g}"}
            else:
                headers = {"retry-after-ms": str(int(self.retry_after_s * 1000))}
            return _error(429, "rate limit reached, slow down", headers)
        if fault in ERROR_CODES:
            self._log(event, int(fault), fault)
            return _error(int(fault), self.error_message)
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        return self._success(body, event, fault)

    def _success(self, body: dict, event: dict, fault: str | None) -> web.Response:
        self._log(event, 200, fault)
        if fault == "nonjson":
            return web.Response(
                status=200,
                text="<html><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        payload = self._completion(body)
        if fault == "no_choices":
            payload["choices"] = []
        text = json.dumps(payload)
        if fault == "truncated":
            text = text[: len(text) // 2]
        return web.Response(
            status=200, text=text, content_type="application/json", headers=self.ratelimit_headers
        )

    def _completion(self, body: dict) -> dict:
        n = int(body.get("n") or 1)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        choices, completion_tokens = [], 0
        for i in range(n):
            with self._lock:
                index = self._completion_index
                self._completion_index += 1
            words = self.responder(body, index).split(" ")
            finish = "stop"
            if max_tokens is not None and len(words) > int(max_tokens):
                words, finish = words[: int(max_tokens)], "length"
            text = " ".join(words)
            completion_tokens += count_tokens(text)
            message = {"role": "assistant", "content": text}
            choice = {"index": i, "message": message, "finish_reason": finish}
            if body.get("logprobs"):
                content = self.logprobs_fn(body, index, text)
                if content is not None:
                    choice["logprobs"] = {"content": content}
            choices.append(choice)
        prompt_tokens = sum(count_tokens(str(m.get("content", ""))) + 3 for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": choices,
            "usage": usage,
        }

    # ----------------------------------------------------------------- Batch API

    def add_batch_outcomes(self, *outcomes: str) -> None:
        """How the next batches end, one per batch created, in order (then "completed"):
        "completed"; "failed" (validation fails, no output); "expired:K" (only the first K
        requests ran, the rest are reported as batch_expired); "errors:K" (the first K
        requests answer 500 in the error file, the rest succeed)."""
        for outcome in outcomes:
            kind, _, k = outcome.partition(":")
            if kind not in ("completed", "failed", "expired", "errors") or (k and not k.isdigit()):
                raise ValueError(f"unknown batch outcome {outcome!r}")
        self.batch_outcomes.extend(outcomes)

    @property
    def submissions(self) -> int:
        """Batches created so far."""
        return len(self.batch_submissions)

    async def _file_create(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self._lock:
                self.api_keys_seen.add(auth[len("Bearer ") :])
        form = await request.post()
        upload = form["file"]
        data = upload.file.read() if hasattr(upload, "file") else str(upload).encode()
        return web.json_response(self._new_file(data, str(form.get("purpose", "batch"))))

    def _new_file(self, data: bytes, purpose: str) -> dict[str, Any]:
        with self._lock:
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = data
        return {
            "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl", "purpose": purpose, "status": "processed",
        }  # fmt: skip

    async def _file_content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["file_id"])
        if data is None:
            return _error(404, "no such file")
        return web.Response(body=data, content_type="application/octet-stream")

    async def _batch_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        data = self.files.get(body.get("input_file_id", ""))
        if data is None:
            return _error(404, "no such input file")
        lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        with self._lock:
            batch_id = f"batch-{len(self.batches)}"
            outcome = self.batch_outcomes.popleft() if self.batch_outcomes else "completed"
            self.batch_submissions.append([line["custom_id"] for line in lines])
            self.batches[batch_id] = {
                "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
                "input_file_id": body["input_file_id"], "completion_window": "24h",
                "status": "validating", "created_at": int(time.time()),
                "metadata": body.get("metadata"), "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "_lines": lines, "_outcome": outcome, "_polls": 0,
            }  # fmt: skip
        return web.json_response(_public(self.batches[batch_id]))

    async def _batch_retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "no such batch")
        batch["_polls_seen"] = batch.get("_polls_seen", 0) + 1
        self._advance(batch)
        return web.json_response(_public(batch))

    async def _batch_cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, "no such batch")
        if batch["status"] in ("validating", "in_progress"):
            batch["status"], batch["_outcome"] = "cancelling", "cancelled"
        return web.json_response(_public(batch))

    def _advance(self, batch: dict[str, Any]) -> None:
        """validating -> in_progress -> (after `batch_polls` polls) its outcome."""
        status = batch["status"]
        if status == "validating":
            batch["status"] = "failed" if batch["_outcome"] == "failed" else "in_progress"
            if batch["status"] == "failed":
                batch["errors"] = {"object": "list", "data": [
                    {"code": "invalid_request", "message": "scripted validation failure"}]}  # fmt: skip
        elif status == "cancelling":
            self._finish(batch, "cancelled", 0, 0)
        elif status == "in_progress" and not self.hold_batches:
            batch["_polls"] += 1
            if batch["_polls"] >= self.batch_polls:
                kind, _, k = batch["_outcome"].partition(":")
                n = len(batch["_lines"])
                if kind == "expired":
                    self._finish(batch, "expired", int(k), 0)
                elif kind == "errors":
                    self._finish(batch, "completed", n, int(k))
                else:
                    self._finish(batch, "completed", n, 0)

    def _finish(self, batch: dict[str, Any], status: str, ran: int, errors: int) -> None:
        """Answer the first `ran` lines (the first `errors` of them with a 500); the rest were
        never run (batch_expired / batch_cancelled)."""
        out, err = [], []
        for i, line in enumerate(batch["_lines"]):
            row: dict[str, Any] = {"id": f"req-{i}", "custom_id": line["custom_id"], "error": None}
            if i >= ran:
                code = "batch_cancelled" if status == "cancelled" else "batch_expired"
                row["response"], row["error"] = None, {"code": code, "message": "not run"}
                err.append(row)
            elif i < errors:
                body = {"error": {"message": self.error_message, "type": "server_error"}}
                row["response"] = {"status_code": 500, "request_id": f"r{i}", "body": body}
                err.append(row)
            else:
                body = self._completion(line["body"])
                row["response"] = {"status_code": 200, "request_id": f"r{i}", "body": body}
                out.append(row)
        batch["status"] = status
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": len(out),
                                   "failed": errors}  # fmt: skip
        for kind, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                text = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[kind] = self._new_file(text, "batch_output")["id"]


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def run_batch_file(lines: Iterable[str], responder: Responder | None = None) -> list[str]:
    """What `vllm run-batch` does with a request file, offline: one result line per request,
    answered by `responder` exactly as the loopback server would answer it streamed."""
    server = FakeOpenAIServer(responder)
    out = []
    for i, line in enumerate(x for x in lines if x.strip()):
        req = json.loads(line)
        body = server._completion(req["body"])
        response = {"status_code": 200, "request_id": f"r{i}", "body": body}
        out.append(json.dumps({"id": f"req-{i}", "custom_id": req["custom_id"],
                               "response": response, "error": None}))  # fmt: skip
    return out


def _spread_factor(index: int, spread: float) -> float:
    """1 +- spread, uniform and deterministic per request index (like varied answer lengths)."""
    return 1.0 + spread * (2.0 * random.Random(index).random() - 1.0)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    payload = {"error": {"message": message, "type": "fake_error", "code": status}}
    return web.json_response(payload, status=status, headers=headers)


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes: lets a benchmark run the server in a separate process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument(
        "--latency-spread", type=float, default=0.0, help="latency varies by +- this fraction"
    )
    args = parser.parse_args(argv)
    with FakeOpenAIServer(
        latency_s=args.latency_s, latency_spread=args.latency_spread, port=args.port
    ) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # blocks until the parent closes our stdin
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

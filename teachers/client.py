"""The one teacher client: OpenAI chat completions over aiohttp, used for every backend.

Why aiohttp directly and not the openai SDK: the SDK builds pydantic models for every request
and response and runs its own retry loop that we would have to switch off to own the retry,
rate-limit and 429-pause policy; going direct keeps client CPU per request well under 1 ms at
hundreds in flight (see benchmarks/teacher_throughput.py) with one policy in one place.

Flow of one completion request (`Teacher._send`):
  concurrency slot (AIMD) -> global 429 pause -> RPM/TPM windows -> budget reservation -> POST
  -> 200: parse (invalid JSON / no choices: RequestFailed, counted)
  -> 429/408/409/5xx/connection error/timeout: back off (retry-after-ms / retry-after honoured,
     else exponential with full jitter) and retry; a 429 pauses every worker together
  -> other 4xx: TeacherFatalError with the server's message (key redacted); a 400 to a request
     with `logprobs` is asked once more without them (`Teacher.chat`), and where that one is
     answered, the server is taken not to support log-probabilities.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from teachers.accounting import FREE, Accounting, find_price, load_prices
from teachers.cache import RequestCache, TokenTop, canonical_key
from teachers.config import TeacherConfig, parse_teacher_spec
from teachers.errors import RequestFailed, TeacherError, TeacherFatalError
from teachers.limits import AdaptiveLimiter, RateLimits

log = logging.getLogger("teachers")

OPENAI_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429})
BACKOFF_CAP_S = 30.0


@dataclass
class ChatResult:
    """Answer to one `chat` call: `texts` has one entry per requested sample (len n)."""

    texts: list[str]
    cached: bool  # every text came from the request cache (nothing was sent)
    prompt_tokens: int = 0  # usage of requests sent for this call (0 when cached)
    completion_tokens: int = 0
    finish_reasons: list[str | None] = field(default_factory=list)
    # One entry per text when `top_logprobs` was asked: the answer's tokens with their top
    # alternatives (`TokenTop`s), or None where the server returned none.
    logprobs: list[list[TokenTop] | None] = field(default_factory=list)


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way."""

    def __init__(self, reason: str, delay_s: float | None = None, overload: bool = False) -> None:
        super().__init__(reason)
        self.delay_s, self.overload = delay_s, overload


class _NRefused(Exception):
    """Internal: the server answered 400 to a request with n > 1."""


@dataclass
class _Completion:
    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[list[TokenTop] | None] = field(default_factory=list)


def chat_request(
    model: str,
    messages: list[dict],
    *,
    temperature: float,
    max_tokens: int,
    top_p: float = 1.0,
    stop: list[str] | None = None,
    seed: int | None = None,
    response_format: dict | None = None,
    top_logprobs: int = 0,
) -> dict:
    """The canonical request of one chat call: what the cache key (and a batch custom_id) hashes.

    `top_logprobs` > 0 adds `logprobs: true, top_logprobs: k`; the keys are absent otherwise,
    so the key of a request without them is what it always was (existing caches stay valid)
    and a request with them never finds an answer cached without its log-probabilities.
    """
    request = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "top_p": top_p,
        "stop": stop,
        "seed": seed,
        "response_format": response_format,
    }
    if top_logprobs:
        request.update(logprobs=True, top_logprobs=top_logprobs)
    return request


def wire_body(request: dict, sample_index: int) -> dict:
    """The JSON body sent for sample `sample_index` of `request` (n = 1): unset fields dropped,
    seed + sample_index so that split samples differ. Streamed and batch requests share it."""
    payload = {k: v for k, v in request.items() if v is not None}
    if request["seed"] is not None:
        payload["seed"] = request["seed"] + sample_index
    return payload


def prompt_upper_bound(messages: list[dict]) -> int:
    """An upper bound on prompt tokens: a byte-level BPE never makes more tokens than bytes;
    plus a generous chat-template overhead per message."""
    return sum(len(str(m.get("content", "")).encode("utf-8")) + 8 for m in messages) + 8


def prompt_estimate(messages: list[dict]) -> int:
    """A typical prompt token count (about 4 bytes a token), for the TPM window before usage is known."""
    return sum(len(str(m.get("content", "")).encode("utf-8")) // 4 + 4 for m in messages) + 3


class Teacher:
    """An OpenAI-compatible chat endpoint with limits, retries, cache and accounting.

    Create with `open_teacher(cfg)`; use from one event loop.
    """

    def __init__(
        self,
        cfg: TeacherConfig,
        *,
        base_url: str,
        model_name: str,
        api_key: str | None,
        cache_path: Path | None,
        supports_n: bool = True,
        context_length: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.context_length = context_length
        self.supports_n = supports_n
        # False once the server answered 400 to a request with `logprobs` and 200 to the same
        # request without (OpenAI's reasoning models do): later requests no longer ask.
        self.supports_logprobs = True
        self._api_key = api_key
        prices = load_prices(cfg.prices_file)
        price = (
            FREE
            if parse_teacher_spec(cfg.teacher)[0] == "embedded"
            else find_price(prices, model_name)
        )
        if price is None and cfg.budget_usd is not None:
            raise ValueError(
                f"prices_file: no price known for model {model_name!r}, so budget_usd cannot be enforced; "
                "add it to a prices file (--prices-file)"
            )
        self.accounting = Accounting(price, cfg.budget_usd)
        self.limiter = AdaptiveLimiter(cfg.max_in_flight, adaptive=cfg.adaptive)
        self.limits = RateLimits(cfg.rpm, cfg.tpm)
        self.cache = RequestCache(cache_path) if (cache_path is not None and cfg.cache) else None
        self._pause_until = 0.0
        self._recent_429 = 0
        self._session: aiohttp.ClientSession | None = None
        self._url = self.base_url + "/chat/completions"

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        connector = aiohttp.TCPConnector(
            limit=self.cfg.max_in_flight, limit_per_host=0, ttl_dns_cache=300
        )
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)

    async def probe_context_length(self) -> int | None:
        """Ask the server for its context length (None when it does not say)."""
        if self._session is None:
            raise RuntimeError("use `async with open_teacher(...)`")
        return await _probe_context_length(self._session, self.base_url, self.cfg.model or "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.cache is not None:
            self.cache.close()

    def redact(self, text: str) -> str:
        """Remove the API key (and its tail, which providers echo) from a message."""
        if self._api_key:
            text = text.replace(self._api_key, "***")
            if len(self._api_key) > 8:
                text = text.replace(self._api_key[-6:], "***")
        return text

    # ----------------------------------------------------------------- public API

    async def chat(
        self,
        messages: list[dict],
        *,
        temperature: float = 0.7,
        max_tokens: int = 256,
        n: int = 1,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
        response_format: dict | None = None,
        sample_index: int = 0,
        top_logprobs: int = 0,
    ) -> ChatResult:
        """`n` completions of `messages`; sample k of this call is cached as sample_index + k.

        `top_logprobs` > 0 asks for each answer token's k most likely alternatives
        (`ChatResult.logprobs`); they are cached with the text. A server that answers 400 to
        them and 200 without is asked without from then on (`supports_logprobs`), and its
        answers carry none: callers already read a missing distribution as "not given".
        Raises RequestFailed (count it, move on), BudgetExceeded or TeacherFatalError (stop).
        """
        if n < 1:
            raise ValueError(f"n: must be >= 1 (got {n})")
        if top_logprobs < 0:
            raise ValueError(f"top_logprobs: must be >= 0 (got {top_logprobs})")
        if top_logprobs and not self.supports_logprobs:
            top_logprobs = 0
        request = chat_request(
            self.model_name,
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            response_format=response_format,
            top_logprobs=top_logprobs,
        )
        try:
            return await self._chat(request, n, sample_index)
        except TeacherFatalError as refused:
            if not (top_logprobs and refused.status == 400):
                raise
            plain = {k: v for k, v in request.items() if k not in ("logprobs", "top_logprobs")}
            try:
                result = await self._chat(plain, n, sample_index)
            except TeacherFatalError:
                raise refused from None
            if self.supports_logprobs:
                log.warning(
                    "teacher %s refused log-probabilities (%s); asking without them from now on",
                    self.base_url,
                    refused,
                )
            self.supports_logprobs = False
            return result

    async def _chat(self, request: dict, n: int, sample_index: int) -> ChatResult:
        """`chat` as the server is asked: the cache first, then the missing samples."""
        top_logprobs = int(request.get("top_logprobs") or 0)
        texts: list[str | None] = [None] * n
        logprobs: list[list[TokenTop] | None] = [None] * n
        if self.cache is not None:
            for i in range(n):
                hit = self.cache.get_entry(canonical_key(request, sample_index + i))
                # an entry without log-probabilities cannot answer a request that wants them
                if hit is not None and (not top_logprobs or hit.logprobs is not None):
                    texts[i], logprobs[i] = hit.text, hit.logprobs
        missing = [i for i, t in enumerate(texts) if t is None]
        self.accounting.cache_hits += n - len(missing)
        if not missing:
            return ChatResult(
                [t for t in texts if t is not None],
                cached=True,
                finish_reasons=[None] * n,
                logprobs=logprobs,
            )
        done = await self._complete(request, [sample_index + i for i in missing])
        finish: list[str | None] = [None] * n
        got = done.logprobs or [None] * len(done.texts)
        for i, text, reason, lp in zip(missing, done.texts, done.finish_reasons, got, strict=True):
            texts[i], finish[i], logprobs[i] = text, reason, lp
        return ChatResult(
            [t for t in texts if t is not None],
            False,
            done.prompt_tokens,
            done.completion_tokens,
            finish,
            logprobs,
        )

    # ----------------------------------------------------------------- sampling plan

    async def _complete(self, request: dict, samples: list[int]) -> _Completion:
        """Get one completion per sample index: one n>1 request where the server allows it
        (samples must be consecutive), else one request per sample (each with its own seed)."""
        consecutive = samples == list(range(samples[0], samples[0] + len(samples)))
        if len(samples) > 1 and self.supports_n and consecutive:
            try:
                got = await self._send(request, len(samples), samples[0])
            except _NRefused:
                log.info(
                    "server refused n=%d; sending %d separate requests instead",
                    len(samples),
                    len(samples),
                )
                self.supports_n = False
            else:
                if len(got.texts) >= len(samples):
                    got = _trim(got, len(samples))
                    self._store(request, samples, got)
                    return got
                self._store(request, samples[: len(got.texts)], got)
                # Some servers (Ollama) silently ignore n: fetch the rest one by one.
                self.supports_n = False
                rest = await self._complete(request, samples[len(got.texts) :])
                return _merge([got, rest])
        parts = await asyncio.gather(
            *(self._send(request, 1, s) for s in samples), return_exceptions=True
        )
        for s, part in zip(samples, parts, strict=True):
            if isinstance(part, _Completion):
                self._store(request, [s], part)  # keep what succeeded even if a sibling failed
        for part in parts:
            if isinstance(part, BaseException):
                raise part
        return _merge([p for p in parts if isinstance(p, _Completion)])

    def _store(self, request: dict, samples: list[int], done: _Completion) -> None:
        if self.cache is None:
            return
        logprobs = done.logprobs or [None] * len(done.texts)
        # asked, but the server sent none: [] (not NULL, "never asked"), so a rerun replays
        # the answer instead of paying for it again to get nothing new
        asked: list[TokenTop] | None = [] if request.get("logprobs") else None
        for s, text, reason, lp in zip(
            samples, done.texts, done.finish_reasons, logprobs, strict=False
        ):
            lp = lp if lp is not None else asked
            self.cache.put(canonical_key(request, s), self.model_name, text, reason, None, lp)

    # ----------------------------------------------------------------- one HTTP request with retries

    async def _send(self, request: dict, n: int, sample_index: int) -> _Completion:
        payload = wire_body(request, sample_index)
        if n > 1:
            payload["n"] = n
        body = json.dumps(payload).encode("utf-8")
        messages = request["messages"]
        max_cost = self.accounting.max_cost(prompt_upper_bound(messages), n * request["max_tokens"])
        tokens = prompt_estimate(messages) + n * request["max_tokens"]
        last = "no attempt"
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self.accounting.retries += 1
            try:
                return await self._attempt(body, n, max_cost, tokens)
            except _Retry as exc:
                last = str(exc)
                if attempt == self.cfg.max_retries:
                    break
                delay = (
                    exc.delay_s
                    if exc.delay_s is not None
                    else _backoff(self.cfg.backoff_s, attempt)
                )
                log.debug("retrying in %.2fs after: %s", delay, last)
                await asyncio.sleep(delay)
        self.accounting.failures += 1
        raise RequestFailed(f"gave up after {self.cfg.max_retries} retries; last error: {last}")

    async def _attempt(self, body: bytes, n: int, max_cost: float, tokens: int) -> _Completion:
        await self.limiter.acquire()
        try:
            await self._wait_pause()
            charges = await self.limits.acquire(tokens)
            self.accounting.reserve(max_cost)
            try:
                sent_at = time.monotonic()
                try:
                    status, headers, raw = await self._post(body)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    overload = isinstance(exc, asyncio.TimeoutError)
                    if overload:
                        self.limiter.on_overload(sent_at)
                    raise _Retry(
                        self.redact(f"{type(exc).__name__}: {exc}"), overload=overload
                    ) from None
                self._seed_limits(headers)
                done = self._handle(status, headers, raw, n, sent_at)
                self.limits.correct_tokens(charges, done.prompt_tokens + done.completion_tokens)
                return done
            finally:
                self.accounting.release(max_cost)
        finally:
            self.limiter.release()

    async def _post(self, body: bytes) -> tuple[int, dict, bytes]:
        assert self._session is not None, "use `async with open_teacher(...)`"
        self.accounting.requests += 1
        async with self._session.post(self._url, data=body) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()

    def _handle(
        self, status: int, headers: dict, raw: bytes, n: int, sent_at: float
    ) -> _Completion:
        if status == 200:
            done = self._parse(raw)
            self.limiter.on_success()
            self._recent_429 = 0
            return done
        message = self.redact(_error_message(raw))
        if status == 429:
            self.accounting.rate_limited += 1
            self.limiter.on_overload(sent_at)
            # Without retry-after, the pause grows with consecutive 429s (any worker's).
            delay = _retry_after(headers) or _backoff(self.cfg.backoff_s, min(self._recent_429, 6))
            self._recent_429 += 1
            self._pause_until = max(self._pause_until, time.monotonic() + delay)
            raise _Retry(
                f"429: {message}", delay_s=0.0, overload=True
            )  # the pause does the waiting
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(f"{status}: {message}", delay_s=_retry_after(headers))
        if status == 400 and n > 1:
            raise _NRefused(message)
        raise TeacherFatalError(
            f"teacher {self.base_url} answered {status}: {message}", status=status
        )

    def _parse(self, raw: bytes) -> _Completion:
        try:
            data = json.loads(raw)
            choices = data["choices"]
        except (ValueError, KeyError, TypeError):
            self.accounting.failures += 1
            raise RequestFailed(f"invalid JSON from teacher: {raw[:120]!r}") from None
        if not choices:
            self.accounting.failures += 1
            raise RequestFailed("teacher answered with no choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        usage = data.get("usage") or {}
        prompt, completion = (
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        self.accounting.record_usage(prompt, completion, cached)
        logprobs = [parse_logprobs(c.get("logprobs")) for c in choices]
        finish = [c.get("finish_reason") for c in choices]
        return _Completion(texts, finish, prompt, completion, logprobs)

    async def _wait_pause(self) -> None:
        """After a 429 every worker waits out the same pause before sending again."""
        while (delay := self._pause_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    def _seed_limits(self, headers: dict) -> None:
        """Adopt announced limits (x-ratelimit-limit-*), and when the server says a quota is used
        up (x-ratelimit-remaining-* = 0) pause everyone until its x-ratelimit-reset-* time."""
        rpm, tpm = (
            headers.get("x-ratelimit-limit-requests"),
            headers.get("x-ratelimit-limit-tokens"),
        )
        if rpm is not None or tpm is not None:
            self.limits.seed(_int_or_none(rpm), _int_or_none(tpm))
        for kind in ("requests", "tokens"):
            if headers.get(f"x-ratelimit-remaining-{kind}") == "0":
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
                if reset:
                    self._pause_until = max(self._pause_until, time.monotonic() + reset)


def parse_duration(text: str) -> float | None:
    """OpenAI's reset format ("1s", "6m0s", "20ms", "1h2m3.5s") or plain seconds, in seconds."""
    text = text.strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return float(text)
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    return total if not number else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_logprobs(block: Any) -> list[TokenTop] | None:
    """A choice's `logprobs` object (OpenAI, vLLM and llama.cpp share its shape:
    `{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}, ...]}`)
    in the compact form the cache and the journal keep; None when absent or malformed (a
    server that ignores the request field: callers fall back, they do not fail)."""
    content = block.get("content") if isinstance(block, dict) else None
    if not isinstance(content, list):
        return None
    out: list[TokenTop] = []
    for entry in content:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        top = [
            [_utf8(alt["token"]), float(alt["logprob"])]
            for alt in entry.get("top_logprobs") or []
            if isinstance(alt, dict)
            and isinstance(alt.get("token"), str)
            and isinstance(alt.get("logprob"), int | float)
        ]
        out.append({"token": _utf8(entry["token"]), "top": top})
    return out


def _utf8(token: str) -> str:
    """A token as text the journal and the cache can store: a piece of a multi-byte character
    may arrive as a lone surrogate ("\\ud83d"), which UTF-8 cannot encode; it becomes "?"
    (such an answer then no longer spells its text, and gives no distribution)."""
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        return token.encode("utf-8", "replace").decode("utf-8")
    return token


def _trim(done: _Completion, k: int) -> _Completion:
    return _Completion(
        done.texts[:k],
        done.finish_reasons[:k],
        done.prompt_tokens,
        done.completion_tokens,
        done.logprobs[:k],
    )


def _merge(parts: list[_Completion]) -> _Completion:
    return _Completion(
        [t for p in parts for t in p.texts],
        [r for p in parts for r in p.finish_reasons],
        sum(p.prompt_tokens for p in parts),
        sum(p.completion_tokens for p in parts),
        [lp for p in parts for lp in (p.logprobs or [None] * len(p.texts))],
    )


def _backoff(base_s: float, attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return random.uniform(0.0, min(BACKOFF_CAP_S, base_s * (2**attempt)))


def _retry_after(headers: dict) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, else retry-after (seconds or date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if (ms := lower.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)  # HTTP-date form
    except (TypeError, ValueError):
        return None  # unparseable: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


def _error_message(raw: bytes) -> str:
    """The server's own words: `error.message` of an OpenAI error body, else the body's start."""
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        message = err.get("message") if isinstance(err, dict) else err
        return str(message or data)[:500]
    except ValueError:
        return raw[:500].decode("utf-8", "replace")


def _api_key(cfg: TeacherConfig, required: bool) -> str | None:
    key = os.environ.get(cfg.api_key_env) or None
    if required and key is None:
        raise ValueError(
            f"api_key_env: environment variable {cfg.api_key_env} is not set (it must hold the API key)"
        )
    return key


async def _probe_context_length(
    session: aiohttp.ClientSession, base_url: str, model: str
) -> int | None:
    """Context length the server reports: vLLM's max_model_len in /models, llama.cpp's /props."""
    root = base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url
    probes = ((f"{base_url}/models", _ctx_from_models), (f"{root}/props", _ctx_from_props))
    for url, extract in probes:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                if resp.status == 200 and (
                    ctx := extract(await resp.json(content_type=None), model)
                ):
                    return ctx
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.debug("context-length probe %s failed: %s", url, exc)
    return None


def _ctx_from_models(data: dict, model: str) -> int | None:
    for entry in data.get("data") or []:
        if isinstance(entry, dict) and entry.get("id") == model and entry.get("max_model_len"):
            return int(entry["max_model_len"])
    return None


def _ctx_from_props(data: dict, model: str) -> int | None:
    ctx = (data.get("default_generation_settings") or {}).get("n_ctx")
    return int(ctx) if ctx else None


# Seconds: one request to the embedded CPU server may take minutes on a loaded machine.
EMBEDDED_MIN_TIMEOUT_S = 600.0


@contextlib.asynccontextmanager
async def open_teacher(
    cfg: TeacherConfig, cache_path: Path | None = None
) -> AsyncIterator[Teacher]:
    """`async with open_teacher(cfg, cache_path=...) as t: await t.chat(...)`.

    Starts the embedded server when `cfg.teacher` asks for it and stops it on exit.
    """
    kind, value = parse_teacher_spec(cfg.teacher)
    async with contextlib.AsyncExitStack() as stack:
        teacher = await _BACKENDS[kind](stack, cfg, value, cache_path)
        await teacher.open()
        stack.push_async_callback(teacher.close)
        if kind == "url":
            teacher.context_length = await teacher.probe_context_length()
        yield teacher


async def _embedded_teacher(
    stack: contextlib.AsyncExitStack, cfg: TeacherConfig, value: str | None, cache_path: Path | None
) -> Teacher:
    """A llama.cpp server on loopback for `embedded[:name]`, stopped when `stack` closes."""
    from teachers.embedded import start_embedded

    # A local server decodes `parallel` requests at a time: more in flight only queue inside
    # it and run into the HTTP timeout on a slow CPU, so cap both here.
    cfg = dataclasses.replace(
        cfg,
        max_in_flight=min(cfg.max_in_flight, cfg.parallel),
        timeout_s=max(cfg.timeout_s, EMBEDDED_MIN_TIMEOUT_S),
    )
    server = await asyncio.to_thread(start_embedded, cfg, value or "qwen")
    stack.callback(server.stop)
    return Teacher(
        cfg, base_url=server.base_url, model_name=server.model_name, api_key=None,
        cache_path=cache_path, supports_n=False, context_length=server.context_length,
    )  # fmt: skip


async def _openai_teacher(
    stack: contextlib.AsyncExitStack, cfg: TeacherConfig, value: str | None, cache_path: Path | None
) -> Teacher:
    """The OpenAI API for `openai:MODEL` (key from the environment)."""
    if value is None:
        raise ValueError("teacher: 'openai:' needs a model name, e.g. openai:gpt-4o-mini")
    return Teacher(
        cfg,
        base_url=OPENAI_BASE_URL,
        model_name=value,
        api_key=_api_key(cfg, True),
        cache_path=cache_path,
    )


async def _url_teacher(
    stack: contextlib.AsyncExitStack, cfg: TeacherConfig, value: str | None, cache_path: Path | None
) -> Teacher:
    """Any OpenAI-compatible server by base URL (vLLM, Ollama, TGI, llama.cpp); --model names it."""
    if value is None or cfg.model is None:
        raise ValueError("model: a teacher URL needs --model (the name the server serves)")
    return Teacher(
        cfg,
        base_url=value,
        model_name=cfg.model,
        api_key=_api_key(cfg, False),
        cache_path=cache_path,
    )


# One factory per backend of `parse_teacher_spec`: a registry because there are three real ones.
_BACKENDS = {"embedded": _embedded_teacher, "openai": _openai_teacher, "url": _url_teacher}


__all__ = ["ChatResult", "Teacher", "TeacherError", "open_teacher"]

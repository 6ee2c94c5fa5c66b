"""The teacher client against a real loopback OpenAI server: faults, limits, cache, budget, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from teachers import open_teacher, run_sync
from teachers.client import ChatResult, Teacher
from teachers.config import TeacherConfig
from teachers.errors import BudgetExceeded, RequestFailed, TeacherFatalError
from teachers.testing import FakeOpenAIServer

MSG = [{"role": "user", "content": "hello there"}]


def cfg_for(server: FakeOpenAIServer, **kw: object) -> TeacherConfig:
    base = {"teacher": server.base_url, "model": "fake-model", "backoff_s": 0.01, "timeout_s": 5.0}
    base.update(kw)
    return TeacherConfig(**base)  # type: ignore[arg-type]


async def _chats(
    cfg: TeacherConfig, prompts: list[str], cache: Path | None = None, **kw: object
) -> list:
    """Send every prompt concurrently; exceptions come back in place of results."""
    async with open_teacher(cfg, cache_path=cache) as t:
        coros = [t.chat([{"role": "user", "content": p}], **kw) for p in prompts]  # type: ignore[arg-type]
        results = await asyncio.gather(*coros, return_exceptions=True)
        results.append(t.accounting.snapshot())
        return results


def test_every_retryable_fault_is_retried_until_success() -> None:
    faults = ["500", "502", "503", "408", "409", "drop", "429", "429ms"]
    with FakeOpenAIServer(faults=faults, retry_after_s=0.02) as server:
        res, snap = run_sync(_chats(cfg_for(server, max_retries=8), ["q"]))
        assert isinstance(res, ChatResult) and res.texts == ["answer 0 to: q"]
        assert [e["fault"] for e in server.events] == [*faults, None]
    assert snap["requests"] == 9 and snap["retries"] == 8
    assert snap["rate_limited"] == 2 and snap["failures"] == 0
    assert snap["prompt_tokens"] == 4 and snap["completion_tokens"] == 4  # only the answered one


def test_retries_exhausted_raise_request_failed() -> None:
    with FakeOpenAIServer(faults=["500"] * 3) as server:
        res, snap = run_sync(_chats(cfg_for(server, max_retries=2), ["q"]))
        assert isinstance(res, RequestFailed) and "500: scripted failure" in str(res)
        assert len(server.requests) == 3
    assert snap["failures"] == 1 and snap["retries"] == 2


@pytest.mark.parametrize("fault", ["truncated", "nonjson", "no_choices"])
def test_invalid_bodies_are_counted_failures_not_crashes(fault: str) -> None:
    with FakeOpenAIServer(faults=[fault]) as server:
        results = run_sync(_chats(cfg_for(server, max_in_flight=1), ["bad", "good"]))
        assert len(server.requests) == 2  # not retried: the server did answer
    bad, good, snap = results
    assert isinstance(bad, RequestFailed)
    assert isinstance(good, ChatResult) and good.texts[0].endswith("to: good")
    assert snap["failures"] == 1


@pytest.mark.parametrize("code", ["400", "401", "403", "404"])
def test_client_errors_stop_with_the_servers_message(code: str) -> None:
    with FakeOpenAIServer(faults=[code], error_message=f"model gone ({code})") as server:
        (res, _snap) = run_sync(_chats(cfg_for(server), ["q"]))
        assert len(server.requests) == 1  # never retried
    assert isinstance(res, TeacherFatalError)
    assert res.status == int(code) and f"model gone ({code})" in str(res)


def test_timeout_is_retried_and_halves_concurrency() -> None:
    with FakeOpenAIServer(faults=["slow"], slow_s=1.0) as server:

        async def go() -> tuple[ChatResult, float]:
            async with open_teacher(cfg_for(server, timeout_s=0.3, max_in_flight=8)) as t:
                res = await t.chat(MSG)
                return res, t.limiter.limit

        res, limit = run_sync(go())
        assert res.texts == ["answer 0 to: hello there"]
        assert len(server.requests) == 2
    assert 4.0 <= limit < 5.0  # halved on the timeout, then one success: +1/limit


def test_429_pauses_every_worker() -> None:
    pause = 0.5
    with FakeOpenAIServer(faults=["429"], retry_after_s=pause, latency_s=0.01) as server:
        results = run_sync(_chats(cfg_for(server, max_in_flight=4), [f"q{i}" for i in range(30)]))
        events = list(server.events)
    assert all(isinstance(r, ChatResult) for r in results[:-1])
    t429 = events[0]["t"]  # the first request got the 429
    # Requests in flight when the 429 arrived may land just after it; nothing new until the pause ends.
    during = [e for e in events if t429 + 0.1 < e["t"] < t429 + pause - 0.02]
    assert during == []
    assert results[-1]["rate_limited"] == 1


def test_rpm_limit_is_never_exceeded_at_the_server() -> None:
    # Server: 600 RPM enforced per 1 s slice (10 per second); the client is told rpm=480, the
    # margin a user leaves for jitter: the server stamps arrivals, which a loaded machine
    # delays and bunches, so a client pacing at exactly the limit sees spurious 429s.
    with FakeOpenAIServer(rpm_limit=600, rpm_window_s=1.0) as server:
        results = run_sync(
            _chats(cfg_for(server, rpm=480, max_in_flight=32), [f"q{i}" for i in range(25)])
        )
        times = sorted(e["t"] for e in server.events)
        assert server.count(status=429) == 0
    assert all(isinstance(r, ChatResult) for r in results[:-1])
    assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 10
    assert times[-1] - times[0] >= 2.0  # 25 requests at 8/s cannot finish sooner


def test_without_client_rpm_the_server_429s_and_retries_recover() -> None:
    with FakeOpenAIServer(rpm_limit=600, rpm_window_s=0.5) as server:
        results = run_sync(
            _chats(cfg_for(server, max_in_flight=16, max_retries=10), [f"q{i}" for i in range(12)])
        )
        assert server.count(status=429) > 0
    assert all(isinstance(r, ChatResult) for r in results[:-1])


def test_ratelimit_headers_seed_limits() -> None:
    headers = {"x-ratelimit-limit-requests": "120", "x-ratelimit-limit-tokens": "90000"}
    with FakeOpenAIServer(ratelimit_headers=headers) as server:

        async def go() -> tuple[int | None, int | None]:
            async with open_teacher(cfg_for(server, tpm=1_000_000)) as t:
                await t.chat(MSG)
                return t.limits.rpm, t.limits.tpm

        assert run_sync(go()) == (120, 90000)


def test_cache_prevents_repeated_requests(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    prompts = [f"q{i}" for i in range(10)]
    with FakeOpenAIServer() as server:
        first = run_sync(_chats(cfg_for(server), prompts, cache, n=2))
        assert len(server.requests) == 10
        again = run_sync(_chats(cfg_for(server), prompts, cache, n=2))
        assert len(server.requests) == 10  # nothing new was sent
        one = run_sync(_chats(cfg_for(server), ["q3"], cache, n=1, sample_index=1))
        assert len(server.requests) == 10  # sample 1 of q3 was the 2nd choice of its n=2 request
        other = run_sync(_chats(cfg_for(server), ["q3"], cache, temperature=0.1))
        assert len(server.requests) == 11  # different sampling params: a new request
    assert [r.texts for r in first[:-1]] == [r.texts for r in again[:-1]]
    assert all(r.cached for r in again[:-1]) and again[-1]["cache_hits"] == 20
    assert one[0].texts == [first[3].texts[1]] and not other[0].cached


def test_n_falls_back_to_separate_requests_with_distinct_seeds() -> None:
    with FakeOpenAIServer(refuse_n=True) as server:
        (res, _snap) = run_sync(_chats(cfg_for(server), ["q"], n=3, seed=7))
        bodies = list(server.requests)
    assert len(res.texts) == 3 and len(set(res.texts)) == 3
    assert bodies[0]["n"] == 3 and [b.get("n") for b in bodies[1:]] == [None] * 3
    assert sorted(b["seed"] for b in bodies[1:]) == [7, 8, 9]


def test_a_server_that_refuses_logprobs_is_asked_without_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """400 to `logprobs` and 200 without: the call is answered (no distribution), one warning
    is logged, and every later call goes out without `logprobs` (one request each)."""
    caplog.set_level(logging.WARNING, logger="teachers")

    async def calls(cfg: TeacherConfig) -> tuple[list[ChatResult], bool]:
        async with open_teacher(cfg) as t:
            got = [await t.chat([{"role": "user", "content": q}], top_logprobs=5) for q in "abc"]
            return got, t.supports_logprobs

    with FakeOpenAIServer(refuse_logprobs=True) as server:
        results, supported = run_sync(calls(cfg_for(server)))
        bodies = list(server.requests)
    assert [r.texts for r in results] == [
        ["answer 0 to: a"],
        ["answer 1 to: b"],
        ["answer 2 to: c"],
    ]
    assert all(r.logprobs == [None] for r in results) and supported is False
    assert [(b["messages"][0]["content"], "logprobs" in b) for b in bodies] == [
        ("a", True),
        ("a", False),
        ("b", False),
        ("c", False),
    ]
    warnings = [r for r in caplog.records if "refused log-probabilities" in r.getMessage()]
    assert len(warnings) == 1


def test_a_400_that_is_not_about_logprobs_still_stops_the_run() -> None:
    """A 400 the request without `logprobs` gets too is the server's real answer: the original
    error is raised and `supports_logprobs` stays True."""

    async def call(cfg: TeacherConfig) -> tuple[BaseException | None, bool]:
        async with open_teacher(cfg) as t:
            try:
                await t.chat([{"role": "user", "content": "q"}], top_logprobs=5)
            except TeacherFatalError as exc:
                return exc, t.supports_logprobs
            return None, t.supports_logprobs

    with FakeOpenAIServer(faults=["400", "400"]) as server:
        err, supported = run_sync(call(cfg_for(server)))
        assert ["logprobs" in b for b in server.requests] == [True, False]
    assert isinstance(err, TeacherFatalError) and err.status == 400 and supported is True


def test_n_in_one_request_when_supported() -> None:
    with FakeOpenAIServer() as server:
        (res, snap) = run_sync(_chats(cfg_for(server), ["q"], n=4))
        assert len(server.requests) == 1 and server.requests[0]["n"] == 4
    assert len(set(res.texts)) == 4 and snap["completion_tokens"] == 16


def test_api_key_never_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-SENTINEL-0123456789abcdef"
    monkeypatch.setenv("SENTINEL_KEY", secret)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "cache.sqlite"
    # A server that echoes the key in its error (some providers echo part of it).
    with FakeOpenAIServer(
        faults=["500", "401"], error_message=f"Incorrect API key provided: {secret}"
    ) as server:
        results = run_sync(_chats(cfg_for(server, api_key_env="SENTINEL_KEY"), ["q", "r"], cache))
        assert server.api_keys_seen == {secret}  # it was sent, to the server only
    errors = [r for r in results[:-1] if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], TeacherFatalError)
    assert secret not in str(errors[0]) and secret[-6:] not in str(errors[0])
    assert secret not in caplog.text and secret[-6:] not in caplog.text
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in json.dumps(results[-1])


def test_budget_stops_before_it_is_exceeded(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake-model": {"input": 1000.0, "output": 1000.0}}))
    # max cost of one request: (prompt bound 28 + 10 completion) tokens x $0.001 = $0.038
    budget = 0.2
    with FakeOpenAIServer() as server:

        async def go() -> tuple[list, Teacher]:
            cfg = cfg_for(server, prices_file=str(prices), budget_usd=budget, max_in_flight=8)
            async with open_teacher(cfg) as t:
                coros = [
                    t.chat([{"role": "user", "content": f"q{i}"}], max_tokens=10) for i in range(40)
                ]
                return await asyncio.gather(*coros, return_exceptions=True), t

        results, t = run_sync(go())
        sent = len(server.requests)
    done = [r for r in results if isinstance(r, ChatResult)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(done) + len(refused) == 40 and refused and "budget_usd" in str(refused[0])
    assert t.accounting.cost_usd <= budget and sent == len(done)
    assert t.accounting.cost_usd == pytest.approx(
        sum(r.prompt_tokens + r.completion_tokens for r in done) * 1e-3
    )


def test_budget_without_price_is_a_config_error() -> None:
    with (
        FakeOpenAIServer() as server,
        pytest.raises(ValueError, match=r"^prices_file: no price known"),
    ):
        run_sync(_chats(cfg_for(server, budget_usd=1.0), ["q"]))


def test_throughput_keeps_many_requests_in_flight() -> None:
    """With max_in_flight=100 the server handles many requests at once (not one after another).

    Checked at the server, not by wall time: a timed assertion fails on a loaded machine, while
    the concurrency the server sees does not depend on how fast the CPU is. Each request is held
    1 s, so the client's 100 slots fill long before the first one frees."""
    latency, count = 1.0, 200
    with FakeOpenAIServer(latency_s=latency) as server:
        results = run_sync(
            _chats(cfg_for(server, max_in_flight=100), [f"q{i}" for i in range(count)])
        )
        assert len(server.requests) == count
        peak = server.max_in_flight
    assert all(isinstance(r, ChatResult) for r in results[:-1])
    assert 50 <= peak <= 100  # sequential would be 1; the client never exceeds its 100 slots


def test_exhausted_quota_pauses_until_reset() -> None:
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    with FakeOpenAIServer(ratelimit_headers=headers) as server:
        run_sync(_chats(cfg_for(server, max_in_flight=1), ["a", "b"]))
        first, second = (e["t"] for e in server.events)
    assert second - first >= 0.3


def test_samples_that_succeeded_are_cached_when_a_sibling_fails(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAIServer(refuse_n=True, faults=["nonjson"]) as server:
        (first, _) = run_sync(_chats(cfg_for(server), ["q"], cache, n=3))
        assert isinstance(first, RequestFailed) and len(server.requests) == 4  # refused n=3, then 3
        (again, snap) = run_sync(_chats(cfg_for(server), ["q"], cache, n=3))
        assert len(server.requests) == 5  # only the failed sample is asked again
    assert len(again.texts) == 3 and snap["cache_hits"] == 2

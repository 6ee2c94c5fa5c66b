"""Teacher building blocks in isolation: limits, cache, prices, config, model verification."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from teachers import run_sync
from teachers.accounting import Price, find_price, load_prices
from teachers.cache import RequestCache, canonical_key
from teachers.config import TeacherConfig, parse_teacher_spec
from teachers.embedded import GGUFModel, verify
from teachers.errors import TeacherFatalError
from teachers.limits import AdaptiveLimiter, WindowLimiter


def test_window_limiter_never_exceeds_its_window() -> None:
    async def go() -> list[float]:
        lim = WindowLimiter(3, 0.2, margin_s=0.0)
        stamps = []

        async def one() -> None:
            await lim.acquire()
            stamps.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(10)))
        return stamps

    stamps = run_sync(go())
    assert max(sum(1 for u in stamps if t <= u < t + 0.2) for t in stamps) == 3
    assert stamps[-1] - stamps[0] >= 0.6  # 10 units at 3 per 0.2 s: four windows


def test_window_limiter_corrects_charges() -> None:
    async def go() -> float:
        lim = WindowLimiter(100, 60.0)
        entry = await lim.acquire(90)
        lim.adjust(entry, 10)  # usage said 10 tokens, not 90
        start = time.monotonic()
        await lim.acquire(80)  # fits now, no wait
        return time.monotonic() - start

    assert run_sync(go()) < 0.05


def test_aimd_halves_once_per_event_and_grows_additively() -> None:
    lim = AdaptiveLimiter(16)
    sent = time.monotonic()
    lim.on_overload(sent)
    lim.on_overload(sent)  # same congestion event: sent before the cut
    assert lim.limit == 8.0
    for _ in range(8):
        lim.on_success()
    assert 8.9 < lim.limit < 9.0  # about +1 per window of `limit` successes
    lim.on_overload(time.monotonic())
    assert 4.4 < lim.limit < 4.5


def test_adaptive_limiter_caps_in_flight() -> None:
    async def go() -> int:
        lim = AdaptiveLimiter(5)

        async def one() -> None:
            await lim.acquire()
            await asyncio.sleep(0.01)
            lim.release()

        await asyncio.gather(*(one() for _ in range(50)))
        return lim.peak_in_flight

    assert run_sync(go()) == 5


def test_cache_key_is_canonical() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.7}
    b = dict(reversed(list(a.items())))
    assert canonical_key(a, 0) == canonical_key(b, 0)
    assert canonical_key(a, 0) != canonical_key(a, 1)
    assert len(canonical_key(a, 0)) == 32  # xxh3_128


def test_cache_concurrent_writers_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"

    def writer(w: int) -> None:
        cache = RequestCache(path)
        for i in range(50):
            cache.put(f"k{w}-{i}", "m", f"text {w} {i}", "stop", 3)
        cache.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache = RequestCache(path)
    assert len(cache) == 200 and cache.get("k3-49") == "text 3 49" and cache.get("nope") is None


def test_prices_file_extends_table_and_prefix_match(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[my-model]\ninput = 1.0\noutput = 2.0\n\n["gpt-4o-mini"]\ninput = 9\noutput = 9\n'
    )
    table = load_prices(f)
    assert find_price(table, "my-model") == Price(1.0, 2.0)
    assert find_price(table, "gpt-4o-mini-2024-07-18") == Price(9.0, 9.0)
    assert find_price(table, "gpt-4o-2024-08-06") == table["gpt-4o"]
    assert find_price(table, "unknown") is None
    assert Price(1.0, 2.0, 0.5).cost(1_000_000, 1_000_000, 500_000) == pytest.approx(
        0.5 + 0.25 + 2.0
    )


def test_bad_prices_file_names_the_setting(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"m": {"input": 1}}')
    with pytest.raises(ValueError, match=r"^prices_file: "):
        load_prices(f)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("embedded", ("embedded", "qwen")),
        ("embedded:smollm2", ("embedded", "smollm2")),
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("http://127.0.0.1:8000/v1/", ("url", "http://127.0.0.1:8000/v1")),
    ],
)
def test_teacher_specs(spec: str, expected: tuple[str, str]) -> None:
    assert parse_teacher_spec(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-4", "openai:", "embedded:llama", "ftp://x"])
def test_bad_teacher_spec_names_teacher(spec: str) -> None:
    with pytest.raises(ValueError, match=r"^teacher: "):
        TeacherConfig(teacher=spec)


def test_config_validation_names_fields() -> None:
    with pytest.raises(ValueError, match=r"^model: "):
        TeacherConfig(teacher="http://localhost:8000/v1")
    with pytest.raises(ValueError, match=r"^rpm: "):
        TeacherConfig(rpm=0)
    with pytest.raises(ValueError, match=r"^parallel: "):
        TeacherConfig(parallel=0)


def test_openai_teacher_without_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    from teachers import open_teacher

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)

    async def go() -> None:
        async with open_teacher(
            TeacherConfig(teacher="openai:gpt-4o-mini", api_key_env="NO_SUCH_KEY_VAR")
        ):
            pass

    with pytest.raises(ValueError, match=r"^api_key_env: environment variable NO_SUCH_KEY_VAR"):
        run_sync(go())


def test_model_verification_rejects_wrong_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 60)
    good = GGUFModel("m", "a3c5d0b2a1d3f0bd1ea1a2ea2d62b0f6a5e3d2a4e3e2b2a6a1f0b1b2c3d4e5f6", 64)
    with pytest.raises(TeacherFatalError, match="sha256 mismatch"):
        verify(f, good)
    with pytest.raises(TeacherFatalError, match="expected 65"):
        verify(f, GGUFModel("m", good.sha256, 65))
    import hashlib

    verify(
        f, GGUFModel("m", hashlib.sha256(f.read_bytes()).hexdigest(), 64)
    )  # passes, leaves a marker
    assert any(p.name.endswith(".verified") for p in (tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2.5", 2.5),
        ("", None),
        ("x", None),
    ],
)
def test_reset_durations(text: str, seconds: float | None) -> None:
    from teachers.client import parse_duration

    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_forms() -> None:
    from email.utils import formatdate

    from teachers.client import _retry_after

    assert _retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert _retry_after({"Retry-After": "2"}) == 2.0
    assert 0.0 <= _retry_after({"retry-after": formatdate(time.time() + 3, usegmt=True)}) <= 3.0
    assert _retry_after({"retry-after": "soon"}) is None and _retry_after({}) is None

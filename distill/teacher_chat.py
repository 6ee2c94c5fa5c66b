"""Run a piece of async work against the configured teacher, from sync command code.

Shared by `distill init` (the parser's fallback) and `distill retrieve-model` (HyDE). Teacher
failures become UserErrors: the run cannot continue without the answer, and the message from
the server (bad key, unknown model, budget) is what the user needs to see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from distill.errors import UserError
from distill.prompt_to_task.llm import ChatFn

if TYPE_CHECKING:
    from teachers.client import Teacher
    from teachers.config import TeacherConfig

T = TypeVar("T")


def run_with_teacher(cfg: TeacherConfig, work: Callable[[ChatFn], Awaitable[T]]) -> T:
    """Open the teacher of `cfg` (a TeacherConfig), run `work(chat)`, close it, return the result."""
    from teachers import open_teacher
    from teachers.errors import TeacherError

    async def main() -> T:
        async with open_teacher(cfg, cache_path=None) as teacher:
            return await work(teacher_chat(teacher))

    try:
        return asyncio.run(main())
    except TeacherError as exc:
        raise UserError(f"teacher ({cfg.teacher}): {exc}") from None


def teacher_chat(teacher: Teacher, *, max_tokens: int = 1024) -> ChatFn:
    """Adapt an open `teachers` client to ChatFn: greedy, one answer.

    `response_format` is sent where the server supports it: a server that rejects it (HTTP
    400 naming response_format) is asked again without it, and the reply is validated anyway.
    """
    from teachers.errors import TeacherFatalError

    supported = True

    async def chat(messages: list[dict[str, str]], response_format: dict[str, Any] | None) -> str:
        nonlocal supported
        fmt = response_format if supported else None
        try:
            res = await teacher.chat(
                messages, temperature=0.0, max_tokens=max_tokens, response_format=fmt
            )
        except TeacherFatalError as exc:
            if fmt is None or "response_format" not in str(exc).lower():
                raise
            supported = False
            res = await teacher.chat(messages, temperature=0.0, max_tokens=max_tokens)
        return res.texts[0]

    return chat

"""The teacher fallback of the prompt parser: a JSON-constrained request, validated and retried.

Used only when no rule finds a demonstration. The request asks for the JSON schema below
(`response_format` json_schema, which OpenAI, vLLM and llama.cpp servers honour); the reply is
validated here regardless, because servers that ignore `response_format` still answer. An
invalid reply is sent back with the reason and the request retried, a bounded number of times.
Demonstrations must be copied from the prompt: an invented example is rejected, because a small
teacher asked to "split" a prompt with no examples tends to make some up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable
from typing import Any, Protocol

Pair = tuple[str, str]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string"},
        "demonstrations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"input": {"type": "string"}, "output": {"type": "string"}},
                "required": ["input", "output"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["instruction", "demonstrations"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "task", "schema": SCHEMA, "strict": True},
}
SYSTEM = (
    "You split a user's prompt into the task instruction and the worked examples it contains. "
    "Reply with one JSON object only: "
    '{"instruction": "...", "demonstrations": [{"input": "...", "output": "..."}]}. '
    "The instruction says what to do with an input, without the examples. Copy every example's "
    "input and output verbatim from the prompt; never invent examples. If the prompt has no "
    "examples, return an empty demonstrations list."
)


class ChatFn(Protocol):
    """What the fallback needs from a teacher: one chat request returning the assistant text."""

    def __call__(
        self, messages: list[dict[str, str]], response_format: dict[str, Any] | None
    ) -> Awaitable[str]: ...


class LLMParseError(ValueError):
    """The teacher gave no valid split of the prompt within the allowed attempts."""


async def parse_with_llm(prompt: str, chat: ChatFn, *, attempts: int = 3) -> tuple[str, list[Pair]]:
    """(instruction, demonstrations) from the teacher; raises LLMParseError after `attempts`."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    problem = ""
    for _ in range(attempts):
        text = await chat(messages, RESPONSE_FORMAT)
        try:
            return validate_reply(text, prompt)
        except ValueError as exc:
            problem = str(exc)
        # Show the model its own answer and what was wrong with it: a cheap, effective repair.
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"That reply is invalid: {problem}. Reply again with the JSON object only.",
            },
        ]
    raise LLMParseError(
        f"the teacher gave no valid split after {attempts} attempts (last problem: {problem})"
    )


def validate_reply(text: str, prompt: str) -> tuple[str, list[Pair]]:
    """Parse and check one reply against SCHEMA and the prompt; ValueError says what is wrong."""
    obj = _json_object(text)
    extra = sorted(set(obj) - {"instruction", "demonstrations"})
    if extra:
        raise ValueError(f"unexpected key '{extra[0]}'")
    instruction = obj.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("'instruction' must be a non-empty string")
    demos = obj.get("demonstrations")
    if not isinstance(demos, list):
        raise ValueError("'demonstrations' must be a list")
    pairs = [_pair(d, i, prompt) for i, d in enumerate(demos, start=1)]
    return instruction.strip(), pairs


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object in `text`, tolerating ``` fences and prose around it."""
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object found")
    try:
        obj = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("the JSON must be an object")
    return obj


def _pair(demo: Any, i: int, prompt: str) -> Pair:
    if not isinstance(demo, dict) or set(demo) != {"input", "output"}:
        raise ValueError(f"demonstrations[{i}] must have exactly 'input' and 'output'")
    values = []
    for key in ("input", "output"):
        value = demo[key]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"demonstrations[{i}].{key} must be a non-empty string")
        if _norm(value) not in _norm(prompt):
            raise ValueError(
                f"demonstrations[{i}].{key} {value[:40]!r} is not in the prompt; copy examples verbatim"
            )
        values.append(value.strip())
    return values[0], values[1]


def _norm(s: str) -> str:
    """Lower-case, quote-free, single-spaced text for the "copied verbatim" check."""
    s = re.sub(r"[\"'“”‘’`«»]", "", s.lower())
    return re.sub(r"\s+", " ", s).strip()

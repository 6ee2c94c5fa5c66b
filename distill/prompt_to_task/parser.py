"""The prompt parser's entry points: rules, then (optionally) the teacher, then language notes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from distill.prompt_to_task.language import detect_language
from distill.prompt_to_task.llm import ChatFn, LLMParseError, parse_with_llm
from distill.prompt_to_task.rules import parse_with_rules
from distill.task import Demonstration

LANGUAGE_NAMES = {
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "ru": "Russian", "zh": "Chinese", "ja": "Japanese", "ko": "Korean",
    "el": "Greek", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "th": "Thai",
    "bn": "Bengali", "ta": "Tamil",
}  # fmt: skip


class PromptParseError(ValueError):
    """The prompt has no recognisable instruction and demonstrations."""


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt split into task parts, with how it was split and what the user should know."""

    instruction: str
    demonstrations: tuple[Demonstration, ...]
    method: str  # which rule matched ("labels:input/output", "arrows", ...) or "teacher"
    language: str  # ISO 639-1 guess for the instruction, "und" when unsure
    notes: tuple[str, ...] = ()


HINT = (
    "write the instruction first, then examples as 'Input: ...' / 'Output: ...' lines, "
    "'Q: ...' / 'A: ...', or one 'input -> output' a line"
)


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Split `prompt` with the rules alone; PromptParseError says what to write instead."""
    _check_not_empty(prompt)
    result = parse_with_rules(prompt)
    if result is None:
        raise PromptParseError(f"no demonstrations found in the prompt; {HINT}")
    if not result.instruction:
        raise PromptParseError(f"examples found but no instruction before them; {HINT}")
    return _build(result.instruction, result.pairs, result.method, result.notes)


async def parse_prompt_async(
    prompt: str, chat: ChatFn | None, *, attempts: int = 3
) -> ParsedPrompt:
    """Rules first; when they fail and `chat` is given, ask the teacher (validated, retried)."""
    try:
        return parse_prompt(prompt)
    except PromptParseError as rules_error:
        if chat is None or not prompt.strip():
            raise
        try:
            instruction, pairs = await parse_with_llm(prompt, chat, attempts=attempts)
        except LLMParseError as exc:
            raise PromptParseError(f"{rules_error}; {exc}") from None
    if not pairs:
        raise PromptParseError(f"the teacher found no demonstrations in the prompt; {HINT}")
    return _build(instruction, pairs, "teacher", ["split by the teacher: check the task file"])


def _check_not_empty(prompt: str) -> None:
    if not prompt.strip():
        raise PromptParseError("the prompt is empty")


def _build(
    instruction: str, pairs: list[tuple[str, str]], method: str, notes: list[str]
) -> ParsedPrompt:
    demos = tuple(Demonstration(i, o) for i, o in pairs)
    language = detect_language(instruction)
    notes = list(notes)
    if language not in ("en", "und"):
        name = LANGUAGE_NAMES.get(language, language)
        notes.append(
            f"the instruction looks {name} ({language}); it is kept as written. The student "
            "handles it only if the chosen model is multilingual (the embedded MiniLM student "
            "is English-only; consider mt5-small: distill retrieve-model)"
        )
    return ParsedPrompt(instruction, demos, method, language, tuple(notes))


def slugify(text: str, max_len: int = 40) -> str:
    """A task name from the instruction: lower-case words joined by '-', at most `max_len`."""
    words = re.findall(r"[^\W_]+", text.lower())
    slug = ""
    for w in words:
        if len(slug) + len(w) + 1 > max_len:
            break
        slug = f"{slug}-{w}" if slug else w
    return slug or "task"

"""From a free-form prompt to a task spec: rules first, the teacher only when they fail.

parsed = parse_prompt(text)                      # rules only; PromptParseError if none fit
parsed = await parse_prompt_async(text, chat)    # rules, then the teacher fallback
render_task_toml(parsed, name="dates")           # a task.toml that distill.task accepts
"""

from __future__ import annotations

from distill.prompt_to_task.parser import (
    ParsedPrompt,
    PromptParseError,
    parse_prompt,
    parse_prompt_async,
    slugify,
)
from distill.prompt_to_task.toml_writer import render_task_toml

__all__ = [
    "ParsedPrompt",
    "PromptParseError",
    "parse_prompt",
    "parse_prompt_async",
    "render_task_toml",
    "slugify",
]

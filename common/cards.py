"""Hugging Face cards: README.md files whose YAML front matter the hub and `huggingface_hub`
(`DatasetCard.load`, `ModelCard.load`) read, shared by the data, student and ONNX cards.

YAML is written by hand, with every value as JSON (YAML 1.2 is a superset of JSON, so any
string, quotes and colons included, round-trips), to keep this floor free of third-party code.
"""

from __future__ import annotations

import json
import re
from typing import Any

CARD_FILE = "README.md"

# The hub's dataset size buckets (the `size_categories` key), upper bounds exclusive.
_SIZE_BUCKETS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


def size_category(n: int) -> str:
    """The hub's `size_categories` bucket of a dataset with `n` rows."""
    return next((name for bound, name in _SIZE_BUCKETS if n < bound), "n>10M")


def front_matter(data: dict[str, Any]) -> str:
    """The `---`-fenced YAML block: lists of scalars as block lists, anything else as JSON;
    keys whose value is None or empty are left out."""
    lines = ["---"]
    for key, value in data.items():
        if value is None or value in ("", [], {}):
            continue
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            lines += [f"{key}:", *(f"- {json.dumps(v, ensure_ascii=False)}" for v in value)]
        else:
            lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join([*lines, "---", ""])


def md_cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the block between `<!-- distill:NAME -->` markers set to `body` (appended
    at the end when absent), so a card can be updated again without repeating the block."""
    start, end = f"<!-- distill:{name} -->", f"<!-- /distill:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block

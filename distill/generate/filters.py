"""Per-example filters; each returns a rejection reason (a short stable slug) or None.

The reasons are the keys of the manifest's `rejected_by_reason`, so they are part of the output
format: keep them stable.
"""

from __future__ import annotations

import re

EMPTY_INPUT = "empty_input"
EMPTY_OUTPUT = "empty_output"
LONG_INPUT = "input_too_long"
LONG_OUTPUT = "output_too_long"
OUTPUT_IS_INPUT = "output_equals_input"
REGEX = "output_regex_mismatch"
FORMAT = "format_mismatch"  # the shape shared by the demonstrations' outputs (formats.py)
INVALID_DATE = "invalid_date"  # not a calendar date in the layout the instruction names
OUT_OF_LABEL_SET = "out_of_label_set"  # not one of the task's labels (labels.py)
LABEL_OVER_SHARE = "label_over_share"  # its label is too far ahead of the others (labels.py)
UNPARSABLE = "unparsable"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
LEAK = "leak"
LOW_AGREEMENT = "low_agreement"
NO_VALID_OUTPUT = "no_valid_output"  # every answer of an input was rejected
NO_ANSWER = "no_final_answer"
REQUEST_FAILED = "request_failed"


def check_input(text: str, max_chars: int) -> str | None:
    """Reject empty or over-long inputs."""
    if not text.strip():
        return EMPTY_INPUT
    if len(text) > max_chars:
        return LONG_INPUT
    return None


def check_output(
    output: str, input_text: str, max_chars: int, pattern: re.Pattern[str] | None
) -> str | None:
    """Reject empty, over-long, copied-from-input, or regex-violating outputs."""
    out = output.strip()
    if not out:
        return EMPTY_OUTPUT
    if len(out) > max_chars:
        return LONG_OUTPUT
    if " ".join(out.split()) == " ".join(input_text.split()):  # case kept: "upper-case it" tasks
        return OUTPUT_IS_INPUT
    if pattern is not None and pattern.fullmatch(out) is None:
        return REGEX
    return None

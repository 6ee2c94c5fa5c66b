"""An output shape derived from the demonstrations, and a date validity check.

Why: a teacher that answers "2010-08-20" when every demonstration answers "08/20/2010" writes
training data the student learns the wrong format from. When all demonstration outputs share
one shape, that shape becomes a regex and outputs that do not match are rejected
(`format_mismatch`); `output_regex` (explicit) replaces it, `format_check = false` turns it off.

The shape of a string is its runs of character classes: a run of digits is `\\d{n}` (exact when
every demonstration has the same length there, e.g. the 4 of a year, else `\\d+`), a run of
letters is `[^\\W\\d_]+` (any length, any case: words vary), whitespace is `\\s+`, and any other
character is itself. "08/20/2010" and "12/25/2021" share `\\d{2}/\\d{2}/\\d{4}`; "positive" and
"negative" share `[^\\W\\d_]+`; "blue green red" and "two one" share nothing, so no check, and
neither do "does the baker sell bread" and "have my cousins painted it": outputs of several words
and nothing else share only a word count, which is not a format.

A shape cannot see a systematic error such as DD/MM written where the instruction says
MM/DD ("20/08/2010"). `date_layout` reads the layout the instruction names (MM/DD/YYYY,
DD.MM.YYYY, YYYY-MM-DD, ...) and `valid_date` rejects impossible dates (`invalid_date`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass

MIN_DEMOS = 2  # one demonstration says nothing about which parts of its shape vary
LETTERS = r"[^\W\d_]+"


@dataclass(frozen=True)
class Run:
    """One run of a shape: `kind` is 'digit', 'letter', 'space' or a literal character."""

    kind: str
    length: int


def shape(text: str) -> tuple[Run, ...]:
    """The runs of character classes of `text` (stripped)."""
    runs: list[Run] = []
    for ch in text.strip():
        kind = _kind(ch)
        literal = kind not in ("digit", "letter", "space")
        if runs and runs[-1].kind == kind and not literal:
            runs[-1] = Run(kind, runs[-1].length + 1)
        else:
            runs.append(Run(kind, 1))
    return tuple(runs)


def _kind(ch: str) -> str:
    if ch.isdigit():
        return "digit"
    if ch.isalpha():
        return "letter"
    if ch.isspace():
        return "space"
    return ch


def derive_format(outputs: Sequence[str]) -> str | None:
    """A regex every output fully matches, when all share one shape; else None."""
    if len(outputs) < MIN_DEMOS:
        return None
    shapes = [shape(o) for o in outputs]
    kinds = {tuple(r.kind for r in s) for s in shapes}
    if len(kinds) != 1 or not shapes[0] or _word_count_only(shapes[0]):
        return None
    parts = []
    for column in zip(*shapes, strict=True):
        parts.append(_run_regex(column))
    return "".join(parts)


def _word_count_only(runs: tuple[Run, ...]) -> bool:
    """Several words and nothing else: the only shared shape is a word count, a coincidence.

    Three demonstrations of six words each say nothing about a seventh: on a question-formation
    task this check rejected 1,228 of 1,937 teacher answers (every question not six words long).
    One word stays a format (a label, a city), and digits or punctuation make a real one.
    """
    letters = sum(r.kind == "letter" for r in runs)
    return letters > 1 and all(r.kind in ("letter", "space") for r in runs)


def _run_regex(column: tuple[Run, ...]) -> str:
    kind = column[0].kind
    lengths = {r.length for r in column}
    if kind == "digit":
        return rf"\d{{{lengths.pop()}}}" if len(lengths) == 1 else r"\d+"
    if kind == "letter":
        return LETTERS
    if kind == "space":
        return r"\s+"
    return re.escape(kind)


_LAYOUT = re.compile(
    r"(?<![A-Za-z])(YYYY|MM|DD)([/.\-])(YYYY|MM|DD)\2(YYYY|MM|DD)(?![A-Za-z])", re.IGNORECASE
)


@dataclass(frozen=True)
class DateLayout:
    """The order of the numeric fields of a date and their separator: ('MM','DD','YYYY'), '/'."""

    order: tuple[str, str, str]
    sep: str

    def __str__(self) -> str:
        return self.sep.join(self.order)


def date_layout(instruction: str, demo_outputs: Sequence[str]) -> DateLayout | None:
    """The date layout the instruction names, when every demonstration output is a valid date
    in it (so a task that merely mentions a layout is left alone); else None."""
    m = _LAYOUT.search(instruction)
    if m is None:
        return None
    order = (m.group(1).upper(), m.group(3).upper(), m.group(4).upper())
    if sorted(order) != ["DD", "MM", "YYYY"]:
        return None
    layout = DateLayout(order, m.group(2))  # type: ignore[arg-type]
    if not demo_outputs or not all(valid_date(o, layout) for o in demo_outputs):
        return None
    return layout


def valid_date(text: str, layout: DateLayout) -> bool:
    """True when `text` is a calendar date in `layout` (month 1-12, day within the month)."""
    parts = text.strip().split(layout.sep)
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return False
    fields = dict(zip(layout.order, (int(p) for p in parts), strict=True))
    try:
        datetime.date(fields["YYYY"], fields["MM"], fields["DD"])
    except ValueError:
        return False
    return True

"""Rule-based prompt parsing: split a free-form prompt into an instruction and demonstrations.

Each rule recognises one common shape and returns None when the prompt does not have it; the
first rule that succeeds wins, in this order (most specific first):

1. labelled pairs: `Input:`/`Output:`, `Q:`/`A:`, `Question:`/`Answer:`, `Source:`/`Target:`,
   or any two labels that alternate at least twice (`Review: ... / Sentiment: ...`), on one line
   or over several, optionally inside `Example N:` blocks;
2. arrows: one pair a line, `x -> y`, `x => y`, `x → y`;
3. `Example N:` blocks with two unlabelled lines (input, then output);
4. numbered or bulleted items split by one consistent separator (tab, ` | `, ` - `, `: `, ...);
5. quoted pairs in prose: `"10 Jan 2020" becomes "2020-01-10"`.

Text before the first example is the instruction (a trailing "Examples:" line is dropped); text
after the last example is appended to it, so nothing the user wrote is silently lost. A trailing
input without an output (the slot a prompt leaves for the real query) is dropped with a note.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

Pair = tuple[str, str]

# (input labels, output labels) known to belong together; matched case-insensitively.
KNOWN_LABELS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("input", "inputs", "in"), ("output", "outputs", "out", "expected output")),
    (("question", "q"), ("answer", "a")),
    (("source", "src"), ("target", "tgt")),
    (("user", "human"), ("assistant", "bot", "ai")),
)
_LABEL_LINE = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)?([^\W\d_][\w ()/'-]{0,30}?)\s*:\s?(.*)$")
# `Example 3`, `### Sample 2`, `**Example 1**`, `Examples`: the part of a header line before
# any colon (content after the colon belongs to the example).
_HEADER = re.compile(
    r"\s*(?:#+\s*|\*\*)?(?:example|sample|demonstration|demo)s?\s*#?\s*\d*\s*(?:\*\*)?"
    r"\s*[.)-]?\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
_EXAMPLES_INTRO = re.compile(
    r"(?:^|\n)[^\n]*\b(?:examples?|for instance|e\.g\.|such as|like this|demonstrations?)\b[^\n]*:\s*$",
    re.IGNORECASE,
)
_ARROW = re.compile(r"\s*(?:-->|->|=>|→|⇒|⟶)\s*")
_ITEM_PREFIX = re.compile(r"^\s*(?:[-*•]\s+|\(?\d+[.):]\s+)")
_ITEM_SEPARATORS = ("\t", " | ", " || ", " — ", " – ", " - ", ": ", " = ")
_QUOTED_PAIR = re.compile(
    r"[\"“«](?P<a>[^\"“”«»\n]+)[\"”»]\s*,?\s*"
    r"(?:->|=>|→|:|=|becomes|should become|should be|is converted to|turns into|"
    r"is rewritten as|gives|maps to|means|to|is)\s*"
    r"[\"“«](?P<b>[^\"“”«»\n]+)[\"”»]"
)
_QUOTES = {'"': '"', "“": "”", "'": "'", "‘": "’", "«": "»", "`": "`"}


@dataclass
class RuleResult:
    """What a rule found: the instruction, the pairs, and notes for the user."""

    instruction: str
    pairs: list[Pair]
    method: str
    notes: list[str] = field(default_factory=list)


def parse_with_rules(prompt: str) -> RuleResult | None:
    """Try every rule in order; None when no rule finds at least one demonstration."""
    text = prompt.replace("\r\n", "\n").replace("\r", "\n").strip()
    rules: tuple[Callable[[list[str]], RuleResult | None], ...] = (
        _labelled_pairs,
        _arrows,
        _example_blocks,
        _list_items,
    )
    lines = text.split("\n")
    for rule in rules:
        result = rule(lines)
        if result and result.pairs:
            return _finish(result)
    result = _quoted_pairs(text)
    return _finish(result) if result else None


def _finish(result: RuleResult) -> RuleResult:
    """Strip consistent quoting and the trailing "Examples:" line of the instruction."""
    result.pairs = _unquote_consistently(result.pairs)
    result.instruction = _clean_instruction(result.instruction)
    return result


def _clean_instruction(text: str) -> str:
    """Drop an "Here are some examples:" line that ends a paragraph (it introduced the examples)."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        stripped = _EXAMPLES_INTRO.sub("", para.strip()).strip()
        # Keep a paragraph that is only the intro line: "Examples:" alone is no instruction.
        paragraphs.append(stripped if stripped else para.strip())
    return re.sub(r"[ \t]+\n", "\n", "\n\n".join(p for p in paragraphs if p)).strip()


# --- rule 1: labelled pairs -------------------------------------------------------------------


def _label_of(line: str) -> tuple[str, str] | None:
    """(normalised label, value) of a `Label: value` line, or None."""
    if _is_header(line):
        return None
    m = _LABEL_LINE.match(line)
    if not m or len(m.group(1).split()) > 3:
        return None
    return m.group(1).strip().lower(), m.group(2)


def _is_header(line: str) -> bool:
    """True for `Example 3:` / `### Example` lines (possibly with content after the colon)."""
    return bool(_HEADER.fullmatch(line.split(":", 1)[0]))


def _split_inline(lines: list[str], outs: tuple[str, ...]) -> list[str]:
    """Split `Input: x Output: y` into two lines so the line-based scan sees both labels."""
    alternatives = "|".join(re.escape(o) for o in sorted(outs, key=len, reverse=True))
    pattern = re.compile(rf"\s+(?=(?:{alternatives})\s*:)", re.IGNORECASE)
    out: list[str] = []
    for line in lines:
        if _label_of(line):
            parts = pattern.split(line, maxsplit=1)
            out.extend(parts)
        else:
            out.append(line)
    return out


def _header_content(lines: list[str]) -> list[str]:
    """Turn `Example 1: Input: x` into `Example 1:` + `Input: x` (a header keeps no content)."""
    out: list[str] = []
    for line in lines:
        if _is_header(line) and ":" in line:
            head, rest = line.split(":", 1)
            out.append(head + ":")
            rest = rest.strip().strip("*").strip()  # `**Example 1:**` leaves a bold marker
            if rest:
                out.append(rest)
        else:
            out.append(line)
    return out


def _labelled_pairs(lines: list[str]) -> RuleResult | None:
    lines = _header_content(lines)
    multi = _multi_field(lines)
    if multi:
        return multi
    for ins, outs in KNOWN_LABELS:
        split = _split_inline(lines, outs)
        result = _scan_labels(split, set(ins), set(outs), method=f"labels:{ins[0]}/{outs[0]}")
        if result:
            return result
    return _generic_labels(lines)


def _generic_labels(lines: list[str]) -> RuleResult | None:
    """Any two labels that strictly alternate at least twice (`Review:` / `Sentiment:`)."""
    seq = [lab[0] for line in lines if (lab := _label_of(line))]
    for i, first in enumerate(seq):
        second = next((s for s in seq[i + 1 :] if s != first), None)
        if second is None:
            return None
        chain = [s for s in seq[i:] if s in (first, second)]
        alternates = all(s == (first, second)[k % 2] for k, s in enumerate(chain))
        if alternates and chain.count(second) >= 2:
            return _scan_labels(lines, {first}, {second}, method=f"labels:{first}/{second}")
    return None


def _scan_labels(lines: list[str], ins: set[str], outs: set[str], method: str) -> RuleResult | None:
    """Walk the lines collecting (input, output) values; None unless the labels pair up."""
    first = next((i for i, line in enumerate(lines) if _kind(line, ins, outs) == "in"), None)
    if first is None:
        return None
    start = _block_start(lines, first)
    pairs, trailing, notes = _collect(lines[first:], ins, outs)
    if not pairs:
        return None
    instruction = "\n".join(lines[:start] + (["", *trailing] if trailing else []))
    return RuleResult(instruction, pairs, method, notes)


def _block_start(lines: list[str], first: int) -> int:
    """Index where the examples begin: the first input label, or an `Example 1:` header above it."""
    i = first
    while i > 0 and (not lines[i - 1].strip() or _is_header(lines[i - 1])):
        i -= 1
        if _is_header(lines[i]):
            return i
    return first


def _kind(line: str, ins: set[str], outs: set[str]) -> str | None:
    lab = _label_of(line)
    if lab is None:
        return "header" if _is_header(line) else None
    name = re.sub(r"\s*#?\d+$", "", lab[0])  # numbered labels: `Input 2:`, `Q3:`
    return "in" if name in ins else "out" if name in outs else None


def _collect(
    lines: list[str], ins: set[str], outs: set[str]
) -> tuple[list[Pair], list[str], list[str]]:
    """Pairs from a label-led block; non-example text after an output goes to `trailing`."""
    collector = _PairCollector()
    for line in lines:
        collector.feed(line, _kind(line, ins, outs))
    collector.close_pair()
    trailing = [t for t in collector.trailing if not _is_header(t)]
    return collector.pairs, trailing, collector.notes


class _PairCollector:
    """Reads a label-led block line by line: an input label opens a pair, an output label
    its answer; continuation lines extend whichever is open."""

    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.trailing: list[str] = []
        self.notes: list[str] = []
        self.cur_in: list[str] | None = None
        self.cur_out: list[str] | None = None
        self.out_closed = False  # a blank line ended the current output value

    def feed(self, line: str, kind: str | None) -> None:
        """One line, with its label kind ('in', 'out', 'header' or None)."""
        if kind == "in":
            self.close_pair()
            self.cur_in, self.cur_out, self.out_closed = [_label_of(line)[1]], None, False  # type: ignore[index]
        elif kind == "out" and self.cur_in is not None and self.cur_out is None:
            self.cur_out = [_label_of(line)[1]]  # type: ignore[index]
        elif kind == "header":
            self.out_closed = self.cur_out is not None
        elif self.cur_out is not None:
            self._continue_output(line)
        elif self.cur_in is not None:
            self.cur_in.append(line)

    def _continue_output(self, line: str) -> None:
        """A line after an output: more of it, its end (blank), or text after the examples."""
        if not line.strip():
            self.out_closed = True
        elif self.out_closed:
            self.trailing.append(line)
        else:
            self.cur_out.append(line)  # type: ignore[union-attr]

    def close_pair(self) -> None:
        """Keep the open pair if it has an output; note an input left without one."""
        if self.cur_in is not None and self.cur_out is not None and _join(self.cur_out):
            self.pairs.append((_join(self.cur_in), _join(self.cur_out)))
        elif self.cur_in is not None and _join(self.cur_in):
            self.notes.append(f"ignored an input without an output: {_join(self.cur_in)[:60]!r}")


# --- rule 1b: records of three or more labelled fields (Context / Question / Answer) ----------


def _multi_field(lines: list[str]) -> RuleResult | None:
    """Blocks of 3-5 distinct labels repeated in the same order at least twice: the last label
    is the output, the others together the input (`Premise: ...\nHypothesis: ...`)."""
    labelled = [(i, lab[0]) for i, line in enumerate(lines) if (lab := _label_of(line))]
    seq = [lab for _, lab in labelled]
    for start in range(len(seq)):
        for k in (3, 4, 5):
            period = seq[start : start + k]
            if (
                len(period) == k
                and len(set(period)) == k
                and _repetitions(seq[start:], period) >= 2
            ):
                return _collect_fields(lines, labelled[start][0], period)
    return None


def _repetitions(seq: list[str], period: list[str]) -> int:
    """Full repetitions of `period` in `seq`; 0 unless what is left is a prefix of it."""
    k = len(period)
    full = len(seq) // k
    if any(seq[j * k : (j + 1) * k] != period for j in range(full)):
        return 0
    rest = seq[full * k :]
    return full if rest == period[: len(rest)] else 0


def _collect_fields(lines: list[str], first: int, period: list[str]) -> RuleResult:
    records: list[dict[str, list[str]]] = []
    names: dict[str, str] = {}  # normalised label -> as the user wrote it
    trailing: list[str] = []
    current: str | None = None
    closed = False  # a blank line (or header) ended the output value
    for line in lines[first:]:
        m = _LABEL_LINE.match(line)
        lab = _label_of(line)
        if lab and lab[0] in period and m:
            if lab[0] == period[0]:
                records.append({})
            names[lab[0]] = m.group(1).strip()
            records[-1][lab[0]] = [lab[1]]
            current, closed = lab[0], False
        elif current == period[-1] and (closed or not line.strip() or _is_header(line)):
            closed = True
            if line.strip() and not _is_header(line):
                trailing.append(line)
        elif current is not None and not _is_header(line):
            records[-1][current].append(line)
    pairs, notes = _records_to_pairs(records, period, names)
    start = _block_start(lines, first)
    instruction = "\n".join(lines[:start] + (["", *trailing] if trailing else []))
    method = f"labels:{'+'.join(period[:-1])}/{period[-1]}"
    return RuleResult(instruction, pairs, method, notes)


def _records_to_pairs(
    records: list[dict[str, list[str]]], period: list[str], names: dict[str, str]
) -> tuple[list[Pair], list[str]]:
    pairs: list[Pair] = []
    notes: list[str] = []
    for rec in records:
        output = _join(rec.get(period[-1], []))
        fields = [f"{names[label]}: {_join(rec[label])}" for label in period[:-1] if label in rec]
        if output and len(fields) == len(period) - 1:
            pairs.append(("\n".join(fields), output))
        else:
            notes.append(f"ignored an example without an output: {' '.join(fields)[:60]!r}")
    return pairs, notes


def _join(parts: list[str]) -> str:
    return "\n".join(parts).strip()


# --- rule 2: arrows ---------------------------------------------------------------------------


def _strip_item(line: str) -> str:
    """Drop a leading bullet, `1.` number or `Example 1:` header from a one-line example."""
    if _is_header(line) and ":" in line:
        line = line.split(":", 1)[1]
    return _ITEM_PREFIX.sub("", line).strip()


def _arrows(lines: list[str]) -> RuleResult | None:
    idx = [i for i, line in enumerate(lines) if _ARROW.search(_strip_item(line))]
    pairs: list[Pair] = []
    for i in idx:
        left, right = _ARROW.split(_strip_item(lines[i]), maxsplit=1)
        if left.strip() and right.strip():
            pairs.append((left.strip(), right.strip()))
    if not pairs:
        return None
    before = [line for line in lines[: idx[0]] if not _is_header(line)]
    after = [line for line in lines[idx[0] :] if not _ARROW.search(line) and line.strip()]
    after = [line for line in after if not _is_header(line)]
    return RuleResult("\n".join(before + (["", *after] if after else [])), pairs, "arrows")


# --- rule 3: Example N blocks with unlabelled lines -------------------------------------------


def _example_blocks(lines: list[str]) -> RuleResult | None:
    heads = [i for i, line in enumerate(lines) if _is_header(line)]
    if not heads:
        return None
    pairs: list[Pair] = []
    for k, h in enumerate(heads):
        end = heads[k + 1] if k + 1 < len(heads) else len(lines)
        first = lines[h].split(":", 1)[1].strip().strip("*").strip() if ":" in lines[h] else ""
        body = [first] if first else []
        body += [line.strip() for line in lines[h + 1 : end]]
        # A blank line after the output ends the block (anything later is not an example).
        content = _until_second_gap([b for b in body])
        if len(content) != 2:
            return None
        pairs.append((content[0], content[1]))
    return RuleResult("\n".join(lines[: heads[0]]), pairs, "example-blocks")


def _until_second_gap(body: list[str]) -> list[str]:
    out: list[str] = []
    for line in body:
        if line:
            out.append(line)
        elif len(out) >= 2:
            break
    return out


# --- rule 4: numbered / bulleted items with a consistent separator ----------------------------


def _list_items(lines: list[str]) -> RuleResult | None:
    idx = [i for i, line in enumerate(lines) if _ITEM_PREFIX.match(line)]
    if len(idx) < 2:
        return None
    items = [_ITEM_PREFIX.sub("", lines[i]).strip() for i in idx]
    for sep in _ITEM_SEPARATORS:
        split = [item.split(sep, 1) for item in items]
        if all(len(s) == 2 and s[0].strip() and s[1].strip() for s in split):
            pairs = [(a.strip(), b.strip()) for a, b in split]
            after = [ln for ln in lines[idx[-1] + 1 :] if ln.strip()]
            instruction = "\n".join(lines[: idx[0]] + (["", *after] if after else []))
            return RuleResult(instruction, pairs, "list-items")
    return None


# --- rule 5: quoted pairs in prose ------------------------------------------------------------


def _quoted_pairs(text: str) -> RuleResult | None:
    matches = list(_QUOTED_PAIR.finditer(text))
    if not matches:
        return None
    pairs = [(m.group("a").strip(), m.group("b").strip()) for m in matches]
    head = text[: matches[0].start()]
    # "... For example, " before the first pair introduces the examples: not instruction.
    head = re.sub(
        r"[\s,;:]*(?:for example|for instance|e\.g\.|such as|like)?[\s,;:(]*$",
        "",
        head,
        flags=re.IGNORECASE,
    )
    tail = text[matches[-1].end() :].strip(" \t\n.,;)")
    instruction = head.strip() + ("." if head.strip() and head.strip()[-1] not in ".!?:" else "")
    if tail:
        instruction += "\n\n" + tail
    return RuleResult(instruction, pairs, "quoted-pairs")


# --- shared -----------------------------------------------------------------------------------


def _unquote_consistently(pairs: list[Pair]) -> list[Pair]:
    """Remove surrounding quotes from a side only when every demonstration quotes that side.

    `"hello" -> "bonjour"` means the quotes delimit; one quoted output among plain ones means
    the quotes are part of the answer.
    """
    ins = [p[0] for p in pairs]
    outs = [p[1] for p in pairs]
    if all(_quoted(s) for s in ins):
        ins = [s[1:-1].strip() for s in ins]
    if all(_quoted(s) for s in outs):
        outs = [s[1:-1].strip() for s in outs]
    return list(zip(ins, outs, strict=True))


def _quoted(s: str) -> bool:
    return len(s) >= 2 and _QUOTES.get(s[0]) == s[-1] and s[0] not in s[1:-1]

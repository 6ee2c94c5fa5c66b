"""Few-shot prompts for the teacher and robust parsing of what it answers.

Diversity comes from three sources (Prompt2Model / self-instruct): every synthesize request shows
a random subset of the user's demonstrations plus a random sample of examples accepted so far
(so the teacher sees its own variety and is asked for something new), the wording of the request
rotates over several meta-prompt templates, and the temperature is annealed (schedule.py).
Everything random is drawn from `random.Random(seed * 1_000_003 + index)`, so request `index` is a
pure function of the seed and the state: a replay builds the same body and hits the request cache.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Pair = tuple[str, str]

SYSTEM = (
    "You are a careful data writer. You create training examples for a small model that must "
    "learn one task. Follow the output format exactly."
)

# Varied meta-prompts: {instruction}, {examples} and {n} are filled in.
SYNTH_TEMPLATES = (
    "Task: {instruction}\n\nExamples:\n{examples}\n\nWrite {n} new examples of this task. "
    "Make each input different from the examples above and from each other (vary length, "
    "wording, style and difficulty). Answer only with a JSON array of objects with the keys "
    '"input" and "output".',
    "You are building a dataset for this task: {instruction}\n\nHere are some existing "
    "examples:\n{examples}\n\nAdd {n} more examples that cover cases not shown yet. Reply "
    'with a JSON array like [{{"input": "...", "output": "..."}}] and nothing else.',
    "Instruction: {instruction}\n\nSample data:\n{examples}\n\nInvent {n} fresh, realistic "
    "inputs a user might give, each with its correct output. Be creative and avoid "
    'repeating the samples. Output a JSON list of {{"input": ..., "output": ...}} objects only.',
    "Here is a task: {instruction}\n\n{examples}\n\nGenerate {n} diverse new input/output "
    "pairs for it (unusual but valid inputs are welcome). Respond with JSON only: a list of "
    'objects with "input" and "output" fields.',
)

# Attribute-conditioned synthesis (AttrPrompt, Yu et al. 2023): each synthesize request draws
# one value of each attribute, so requests differ in what they ask for rather than only in their
# sampling seed (re-sampling one prompt gave 43% exact duplicates with the embedded teacher).
TOPICS = (
    "everyday life",
    "work and business",
    "travel",
    "food and cooking",
    "technology",
    "health",
    "sports",
    "entertainment",
    "science",
    "money and shopping",
    "education",
    "home and family",
    "nature and weather",
    "society and politics",
    "history",
    "arts and culture",
)
LENGTHS = ("shorter than the examples", "about as long as the examples", "longer than the examples")
STYLES = ("plain", "formal", "casual", "terse", "unusually worded")
DIFFICULTIES = ("easy", "typical", "tricky (an edge case that is still valid)")


@dataclass(frozen=True)
class SynthConditions:
    """What one synthesize request asks for beyond "new examples": one label of a closed set
    (with all the labels, so the teacher knows the alternatives), and drawn attributes."""

    label: str | None = None
    labels: tuple[str, ...] = ()
    attributes: bool = False
    topics: tuple[str, ...] = TOPICS

    def text(self, rng: random.Random, n: int) -> str:
        """The requirement lines (empty when nothing is asked); draws from `rng` in a fixed
        order so that request `index` always gets the same attributes."""
        lines = []
        if self.label is not None:  # first: the 0.5B teacher follows the first line best
            choices = ", ".join(json.dumps(x, ensure_ascii=False) for x in self.labels)
            lines.append(
                f'- every one of the {n} examples must have the output "{self.label}" '
                f"(the possible outputs are {choices}): write inputs for which "
                f'"{self.label}" is clearly the correct output'
            )
        if self.attributes:
            topic = self.topics[rng.randrange(len(self.topics))]
            length = LENGTHS[rng.randrange(len(LENGTHS))]
            style = STYLES[rng.randrange(len(STYLES))]
            level = DIFFICULTIES[rng.randrange(len(DIFFICULTIES))]
            lines += [
                f"- topic: {topic} (where the task allows a topic)",
                f"- length of each input: {length}",
                f"- style: {style}",
                f"- difficulty: {level}",
            ]
        return "Requirements for the new examples:\n" + "\n".join(lines) if lines else ""


SYSTEM_LABEL = "You answer one task for each message, exactly like the earlier answers."
LABEL_SUFFIX = "Answer with the output only, no explanation."
COT_SUFFIX = (
    "First reason step by step in two or three sentences, then end with a last line of the form "
    "'Answer: <output>'."
)


def estimate_tokens(text: str) -> int:
    """Cheap upper-side token estimate (~3 characters a token for English BPE, plus slack)."""
    return len(text) // 3 + 4


# Room a synthesize answer gets, from the demonstrations: each asked-for pair may be this many
# times the longest demonstration's JSON line (estimate_tokens already reads about 1.4x the
# real count, so an input about 2.8x the longest demonstration still fits, for prompts that ask
# for inputs "longer than the examples"), plus tokens for the brackets, a code fence and a line
# of chatter.
SYNTH_ANSWER_SLACK = 2
SYNTH_ANSWER_OVERHEAD = 32


def synth_answer_tokens(demos: Sequence[Pair], n: int, max_tokens: int) -> int:
    """The max_tokens of a synthesize request asking for `n` pairs like `demos`.

    Why not `max_tokens` itself: a small teacher sometimes never closes its JSON array and
    repeats pairs until the limit (2 of 39 embedded-teacher answers on sentiment ran to 512
    tokens, against 227-479 characters for the others); what such an answer writes past its
    first pairs is copies, paid for token by token. An answer cut at this size still yields its
    complete objects (`parse_pairs` reads them one by one). Never more than `max_tokens`.
    """
    longest = max((estimate_tokens(_example_line(i, o)) for i, o in demos), default=0)
    return min(max_tokens, n * SYNTH_ANSWER_SLACK * longest + SYNTH_ANSWER_OVERHEAD)


def format_examples(pairs: Sequence[Pair]) -> str:
    """One JSON object a line: the same shape we ask the teacher to answer in."""
    return "\n".join(_example_line(i, o) for i, o in pairs)


@functools.lru_cache(maxsize=1 << 16)
def _example_line(inp: str, out: str) -> str:
    # pool examples are shown in many prompts: encode each once
    return json.dumps({"input": inp, "output": out}, ensure_ascii=False)


@dataclass(frozen=True)
class PromptBudget:
    """How much prompt fits: the teacher's context length minus room for the answer."""

    context_length: int | None
    max_tokens: int

    def fits(self, messages: list[dict[str, str]]) -> bool:
        if self.context_length is None:
            return True
        used = sum(estimate_tokens(m["content"]) + 4 for m in messages)
        return used + self.max_tokens <= self.context_length


def synth_messages(
    instruction: str,
    demos: Sequence[Pair],
    pool: Sequence[Pair],
    *,
    index: int,
    seed: int,
    n: int,
    n_demos: int,
    n_pool: int,
    budget: PromptBudget,
    conditions: SynthConditions | None = None,
) -> list[dict[str, str]]:
    """Messages of synthesize request `index`: demos + pool sample, trimmed to the budget,
    followed by the requirements of `conditions` (a label, drawn attributes) when given.

    Trimming drops pool examples first, then demonstrations (always keeping one), because the
    demonstrations define the task while the pool only adds variety.
    """
    rng = random.Random(seed * 1_000_003 + index)  # int seed: fast, same on every platform
    shown = [(p, False) for p in rng.sample(demos, min(n_demos, len(demos)))]
    if n_pool and pool:
        shown += [(p, True) for p in rng.sample(pool, min(n_pool, len(pool)))]
    rng.shuffle(shown)  # pool examples interleaved with demos: no position tells them apart
    template = SYNTH_TEMPLATES[rng.randrange(len(SYNTH_TEMPLATES))]
    required = conditions.text(rng, n) if conditions is not None else ""
    while True:
        examples = format_examples([p for p, _ in shown])
        if required:
            examples += "\n\n" + required
        user = template.format(instruction=instruction, examples=examples, n=n)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        if budget.fits(messages) or len(shown) <= 1:
            return messages
        pooled = [k for k, (_, from_pool) in enumerate(shown) if from_pool]
        del shown[pooled[-1] if pooled else len(shown) - 1]


def label_messages(
    instruction: str,
    demos: Sequence[Pair],
    text: str,
    *,
    chain_of_thought: bool,
    budget: PromptBudget,
    labels: Sequence[str] = (),
) -> list[dict[str, str]]:
    """Messages asking for the output of one input: the demos as user/assistant turns; with a
    closed label set, the system message names the allowed outputs.

    Why turns and not one "Input: ... Output: ..." block: measured with the embedded 0.5B
    teacher on the temporal benchmark, the block made it copy the first demonstration's output
    for every input (200 of 200 labels), while the same demos as chat turns gave answers that
    depend on the input. No random parts: every vote sample for an input shares the prompt and
    differs only in the sampling seed, which is what self-consistency needs.
    """
    shown = list(demos)
    suffix = COT_SUFFIX if chain_of_thought else LABEL_SUFFIX
    system = f"{SYSTEM_LABEL}\nTask: {instruction}\n{suffix}"
    if labels:
        choices = ", ".join(json.dumps(x, ensure_ascii=False) for x in labels)
        system += f"\nThe output is exactly one of: {choices}."
    while True:
        messages = [{"role": "system", "content": system}]
        for i, o in shown:
            messages += [{"role": "user", "content": i}, {"role": "assistant", "content": o}]
        messages.append({"role": "user", "content": text})
        if budget.fits(messages) or len(shown) <= 1:
            return messages
        shown.pop()


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_IO_LINES = re.compile(
    r"^\s*(?:\d+[.)]\s*)?input\s*:\s*(.+?)\s*\n\s*output\s*:\s*(.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_pairs(text: str) -> list[Pair]:
    """Extract (input, output) pairs from a teacher answer; [] when nothing parses.

    Accepts, in order: a JSON array or object (optionally in a ``` fence, optionally with
    chatter around it), JSON objects one per line or scattered in the text, and finally
    "Input: ... / Output: ..." line pairs. Values that are numbers are kept as their text; other
    non-string values drop that object.
    """
    for candidate in _json_candidates(text):
        pairs = _pairs_from_json(candidate)
        if pairs:
            return pairs
    pairs = [p for m in _OBJECT.finditer(text) for p in _pairs_from_json(m.group(0))]
    if pairs:
        return pairs
    return [(a.strip(), b.strip()) for a, b in _IO_LINES.findall(text)]


def _json_candidates(text: str) -> Iterator[str]:
    """Fenced blocks, the whole text, then the outermost [...] and {...}; lazily, since the
    first candidate that parses ends the search (usually the whole text)."""
    for m in _FENCE.finditer(text):
        yield m.group(1)
    yield text
    for open_c, close_c in (("[", "]"), ("{", "}")):
        start, end = text.find(open_c), text.rfind(close_c)
        if 0 <= start < end:
            yield text[start : end + 1]


def _pairs_from_json(candidate: str) -> list[Pair]:
    try:
        data = json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        return []
    if isinstance(data, dict):
        data = data.get("examples", data.get("data", [data]))
    if not isinstance(data, list):
        return []
    pairs = []
    for item in data:
        if not isinstance(item, dict):
            continue
        i, o = item.get("input"), item.get("output")
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            o = str(o)
        if isinstance(i, str) and isinstance(o, str):
            pairs.append((i, o))
    return pairs


_PREFIX = re.compile(r"^\s*(?:output|answer)\s*:\s*", re.IGNORECASE)


def parse_label(text: str) -> str:
    """The output in a label answer: fence and a leading "Output:" removed, stripped."""
    m = _FENCE.search(text)
    if m:
        text = m.group(1)
    return _PREFIX.sub("", text.strip(), count=1).strip()

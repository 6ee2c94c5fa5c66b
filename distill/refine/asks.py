"""The teacher's part of a round: label requests for the pool, write-similar requests for the
disagreements, each answer journaled, and the answers judged with generate's own filters.

A label request is built exactly as generate's label mode builds it (`label_messages`, the
label temperature, `max_tokens`, the seed and, for an input generate already asked about, the
same request index, read from generate's journal), so its cache key is generate's: an input
generate labelled costs nothing. Every other request's index is a pure function of the round
and the item, so a rerun builds byte-identical requests, and the round journal
(`round-<r>/journal.jsonl`, one line per answer with its tokens and cost) plus the teacher cache
make a rerun after a kill pay for nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.generate import filters as F
from distill.generate import store
from distill.generate.config import GenerateConfig
from distill.generate.prompts import (
    SYSTEM,
    Pair,
    PromptBudget,
    format_examples,
    label_messages,
    parse_label,
    parse_pairs,
)
from distill.generate.rationale import split_rationale
from distill.generate.rules import OutputRules
from distill.generate.vote import majority_vote

if TYPE_CHECKING:
    from teachers.client import Teacher

# Request indices (the seed offset and part of the cache key) of refine's own requests:
# round r's label requests from ROUND_STRIDE * r, its write-similar requests from
# ROUND_STRIDE * r + SIMILAR_OFFSET; far above any generate run's indices.
ROUND_STRIDE = 1_000_000
SIMILAR_OFFSET = 500_000

SIMILAR_TEMPLATE = (
    "Task: {instruction}\n\nA small model trained for this task got these examples wrong (each "
    "is shown with its correct output):\n{examples}\n\nWrite {n} new examples of this task "
    "that are like these: the same kind of input and the same difficulty, but not copies of "
    'them.{labels} Answer only with a JSON array of objects with the keys "input" and '
    '"output".'
)


@dataclass(frozen=True)
class Ask:
    """One request: `id` names it in the journal (label:<input key>:<vote>, similar:<n>)."""

    id: str
    messages: list[dict[str, str]]
    temperature: float
    index: int  # sample index: the client sends seed + index
    top_logprobs: int = 0
    max_tokens: int | None = None  # None: generate's max_tokens (a label request's)


@dataclass
class Answer:
    """A journaled answer (None text: the request failed and will be asked again next run)."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    sent: bool = False  # a request reached the server (not the journal, not the cache)


class Journal:
    """The round's answers by request id; appended (and flushed) as each one arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = {row["id"]: row for row in store.read_log(path)}

    def get(self, ask_id: str) -> Answer | None:
        row = self.rows.get(ask_id)
        if row is None:
            return None
        return Answer(row["text"], row["prompt_tokens"], row["completion_tokens"], row["cost_usd"])

    def sent(self, kind: str = "") -> dict[str, Any]:
        """Requests sent, tokens and cost of the answers journaled so far (every session),
        of one kind ("label", "similar") or of all."""
        mine = [r for k, r in self.rows.items() if k.startswith(kind)]
        sent = [r for r in mine if r.get("sent")]
        return {
            "answers": len(mine),
            "requests_sent": len(sent),
            "prompt_tokens": sum(r["prompt_tokens"] for r in sent),
            "completion_tokens": sum(r["completion_tokens"] for r in sent),
            "cost_usd": round(sum(r["cost_usd"] for r in sent), 8),
        }


class TeacherBudgetStop(Exception):
    """The teacher's budget refused a request: what was answered is journaled and kept."""


async def ask_all(
    teacher: Teacher,
    asks: Sequence[Ask],
    journal: Journal,
    cfg: GenerateConfig,
    on_answer: Callable[[], None] = lambda: None,
) -> dict[str, Answer]:
    """Answers of `asks` by id: from the journal, else from the teacher (its cache first).

    All requests go out at once; the client keeps within `max_in_flight` and the rate limits.
    Raises TeacherBudgetStop after the others finished when the budget refused one.
    """
    from teachers.errors import BudgetExceeded

    answers: dict[str, Answer] = {}
    writer = store.LogWriter(journal.path)
    refused: list[str] = []

    async def one(ask: Ask) -> None:
        got = journal.get(ask.id)
        if got is None:
            try:
                got = await _ask(teacher, ask, cfg)
            except BudgetExceeded as exc:
                refused.append(str(exc))
                return
            if got.text is not None:  # a failure is not journaled: the next run asks again
                row = {"id": ask.id, "index": ask.index, **got.__dict__}
                writer(row)
                journal.rows[ask.id] = row
        answers[ask.id] = got
        on_answer()

    try:
        await asyncio.gather(*(one(a) for a in asks))
    finally:
        writer.close()
    if refused:
        raise TeacherBudgetStop(refused[0])
    return answers


async def _ask(teacher: Teacher, ask: Ask, cfg: GenerateConfig) -> Answer:
    """One request through the client (cache, limits, retries); a RequestFailed is None text."""
    from teachers.errors import RequestFailed

    try:
        res = await teacher.chat(
            ask.messages,
            temperature=ask.temperature,
            max_tokens=ask.max_tokens or cfg.max_tokens,
            seed=cfg.seed,
            sample_index=ask.index,
            top_logprobs=ask.top_logprobs,
        )
    except RequestFailed:
        return Answer(None)
    price = teacher.accounting.price
    cost = price.cost(res.prompt_tokens, res.completion_tokens) if price else 0.0
    return Answer(res.texts[0], res.prompt_tokens, res.completion_tokens, cost, not res.cached)


# ---------------------------------------------------------------- label requests


def generate_label_indices(data_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(request index, temperature) of every answered label request of generate's journal, by
    input key: what a label request for that input needs to hit generate's cache entries."""
    records = store.read_log(data_dir / store.JOURNAL)
    answered = {r["index"] for r in records if r.get("event") == "done" and r.get("text")}
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in records:
        issue = rec.get("event") == "issue" and rec.get("kind") == "label"
        if issue and rec["index"] in answered:
            out.setdefault(rec["key"], []).append((rec["index"], rec["temperature"]))
    return out


@dataclass(frozen=True)
class LabelPlan:
    """What every label request of a run shares: generate's settings, rules and prompt parts."""

    cfg: GenerateConfig
    rules: OutputRules
    instruction: str
    demos: list[Pair]
    prior: dict[str, list[tuple[int, float]]]  # generate_label_indices

    def asks(self, key: str, text: str, position: int, rnd: int, budget: PromptBudget) -> list[Ask]:
        """The `votes` label requests of one pool input (at `position` in round `rnd`'s pool)."""
        cfg, labels = self.cfg, self.rules.label_set
        messages = label_messages(
            self.instruction,
            self.demos,
            text,
            chain_of_thought=cfg.chain_of_thought,
            budget=budget,
            labels=labels.labels if labels else (),
        )
        top = cfg.resolved_top_logprobs if labels is not None else 0
        votes = cfg.resolved_votes
        slots = self.prior.get(key, [])[:votes]
        fresh = ROUND_STRIDE * rnd + position * votes
        slots += [(fresh + v, cfg.resolved_label_temperature) for v in range(len(slots), votes)]
        return [
            Ask(f"label:{key}:{v}", messages, temp, index, top)
            for v, (index, temp) in enumerate(slots)
        ]

    def decide(self, text: str, answers: list[Answer]) -> tuple[str | None, str | None]:
        """(teacher's output, None) or (None, rejection reason) for one input's answers: each
        answer parsed and checked as generate checks it, then the majority vote."""
        outputs, reason = [], None
        for ans in answers:
            if ans.text is None:
                reason = F.REQUEST_FAILED
                continue
            out, why = self._check(ans.text, text)
            if why is None:
                outputs.append(out)
            reason = reason or why
        if not outputs:
            return None, reason or F.NO_VALID_OUTPUT
        vote = majority_vote(
            outputs, min_share=self.cfg.min_agreement, lowercase=self.cfg.lowercase_outputs
        )
        if not vote.accepted or vote.winner is None:
            return None, F.LOW_AGREEMENT
        labels = self.rules.label_set
        return (labels.canonical(vote.winner) or vote.winner) if labels else vote.winner, None

    def _check(self, answer_text: str, inp: str) -> tuple[str, str | None]:
        cfg = self.cfg
        if cfg.chain_of_thought:  # as generate reads it: a bare one-line answer counts too
            answer = split_rationale(answer_text)[0]
        else:
            answer = parse_label(answer_text)
        if answer is None:
            return "", F.NO_ANSWER
        return check_output(answer, inp, cfg, self.rules)


def check_output(
    output: str, inp: str, cfg: GenerateConfig, rules: OutputRules
) -> tuple[str, str | None]:
    """generate's output checks: the generic filters, then the label set, format and date."""
    reason = F.check_output(output, inp, cfg.max_output_chars, None)
    if reason is not None:
        return output, reason
    return rules.check(output)


# ---------------------------------------------------------------- write-similar requests


def similar_messages(
    instruction: str,
    seeds: Sequence[Pair],
    n: int,
    budget: PromptBudget,
    labels: Sequence[str] = (),
) -> list[dict[str, str]]:
    """A synthesize-style request whose examples are the student's mistakes (with the
    teacher's answers): "write `n` new examples like these". Seeds are dropped from the end
    (keeping one) when the prompt would not fit the teacher's context."""
    shown = list(seeds)
    choices = ", ".join(json.dumps(x, ensure_ascii=False) for x in labels)
    label_line = f" Each output is exactly one of: {choices}." if labels else ""
    while True:
        user = SIMILAR_TEMPLATE.format(
            instruction=instruction, examples=format_examples(shown), n=n, labels=label_line
        )
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        if budget.fits(messages) or len(shown) <= 1:
            return messages
        shown.pop()


def similar_asks(
    plan: LabelPlan, seeds: list[Pair], per_request: int, n_new: int, rnd: int, budget: PromptBudget
) -> list[Ask]:
    """One write-similar request per `per_request` seeds (in order), each asking for `n_new`
    pairs, at generate's most diverse synthesize temperature (`temperature_end`), with room for
    `budget.max_tokens` answer tokens (several pairs: more than one label needs)."""
    labels = plan.rules.label_set
    asks = []
    for j, start in enumerate(range(0, len(seeds), per_request)):
        chunk = seeds[start : start + per_request]
        messages = similar_messages(
            plan.instruction, chunk, n_new, budget, labels.labels if labels else ()
        )
        index = ROUND_STRIDE * rnd + SIMILAR_OFFSET + j
        temperature = plan.cfg.temperature_end
        asks.append(Ask(f"similar:{j}", messages, temperature, index, max_tokens=budget.max_tokens))
    return asks


def parse_similar(answer: Answer) -> tuple[list[Pair], str | None]:
    """The pairs of a write-similar answer, or the reason it gave none."""
    if answer.text is None:
        return [], F.REQUEST_FAILED
    pairs = parse_pairs(answer.text)
    return pairs, None if pairs else F.UNPARSABLE

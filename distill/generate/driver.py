"""The async driver: keeps the teacher busy and feeds answers to the state machine.

No batch barrier: a request is issued whenever a slot frees (up to the teacher's
`max_in_flight`; the client itself enforces rate limits and adapts below that cap). Completed
answers arrive through a queue (O(1) per answer; `asyncio.wait` over hundreds of tasks would
cost O(in flight) per answer), are journaled, and are folded into `SamplerState` synchronously,
so the journal order is exactly the order in which state changed: the property resume needs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distill.generate.config import GenerateConfig
from distill.generate.prompts import (
    TOPICS,
    Pair,
    PromptBudget,
    SynthConditions,
    label_messages,
    synth_messages,
)
from distill.generate.records import (
    CancelRecord,
    DoneRecord,
    IssueRecord,
    RefusedRecord,
    session_spent,
)
from distill.generate.state import SamplerState

if TYPE_CHECKING:
    from teachers.client import Teacher


@dataclass
class DriveResult:
    """How a drive ended: `stopped` is None (target or inputs done), 'budget' or 'failures'."""

    stopped: str | None
    message: str
    sampler_s: float  # wall time spent in our own code on the event loop (not awaiting)


class Driver:
    """Issues requests for `state` through `teacher` until the state is done or a stop."""

    def __init__(
        self,
        state: SamplerState,
        teacher: Teacher,
        cfg: GenerateConfig,
        instruction: str,
        demos: list[Pair],
        journal: Callable[[dict[str, Any]], None],
        max_in_flight: int,
        on_progress: Callable[[], None] = lambda: None,
        label_demos: list[Pair] | None = None,
    ):
        self.state, self.teacher, self.cfg = state, teacher, cfg
        self.instruction, self.demos = instruction, demos
        # what label prompts show: with chain of thought, "<rationale>\nAnswer: <output>"
        self.label_demos = demos if label_demos is None else label_demos
        self.journal = journal
        self.max_in_flight = max_in_flight
        self.on_progress = on_progress
        self.budget = PromptBudget(teacher.context_length, cfg.max_tokens)
        self.synth_max_tokens = cfg.resolved_synth_max_tokens(demos)
        self.label_prompts: dict[str, list[dict[str, str]]] = {}
        self._conditions_of: dict[str | None, SynthConditions | None] = {}  # by target label
        self.sampler_s = 0.0
        # names this session's `spent` totals in the journal (see records.journal_spend)
        self.session_id = uuid.uuid4().hex[:12]

    def messages_for(self, rec: IssueRecord) -> list[dict[str, str]]:
        """The chat messages of issue record `rec` (label prompts are shared by a group's votes)."""
        if rec["kind"] == "synth":
            return synth_messages(
                self.instruction,
                self._demos_for(rec.get("target_label")),
                self.state.pool_for(rec.get("target_label")),
                index=rec["index"],
                seed=self.cfg.seed,
                n=self.cfg.pairs_per_request,
                n_demos=self.cfg.few_shot_demos,
                n_pool=self.cfg.few_shot_accepted,
                budget=self.budget,
                conditions=self._conditions(rec),
            )
        key = rec["key"]
        if key not in self.label_prompts:
            text = self.state.groups[key].input
            self.label_prompts[key] = label_messages(
                self.instruction,
                self.label_demos,
                text,
                chain_of_thought=self.cfg.chain_of_thought,
                budget=self.budget,
                labels=self.state.labels.labels if self.state.labels else (),
            )
        return self.label_prompts[key]

    def max_tokens_for(self, rec: IssueRecord) -> int:
        """The max_tokens request `rec` is sent with: synthesize answers get the room their
        asked-for pairs need (`synth_answer_tokens`), label answers --max-tokens."""
        return self.synth_max_tokens if rec["kind"] == "synth" else self.cfg.max_tokens

    def _demos_for(self, label: str | None) -> list[Pair]:
        """The demonstrations a synthesize request may show: for a request that asks for one
        label, only the demonstrations of that label when there are any (the first runs showed
        the small teacher writing the labels it was shown rather than the one asked for)."""
        if label is None or self.state.labels is None:
            return self.demos
        canonical = self.state.labels.canonical
        own = [d for d in self.demos if canonical(d[1]) == label]
        return own or self.demos

    def _conditions(self, rec: IssueRecord) -> SynthConditions | None:
        """The label and attributes a synthesize request asks for (None: neither, which keeps
        the prompt of a run without them byte-identical, and so its cache entries usable).
        Built once a label: they only depend on the label and the settings."""
        label = rec.get("target_label")
        if label not in self._conditions_of:
            self._conditions_of[label] = self._make_conditions(label)
        return self._conditions_of[label]

    def _make_conditions(self, label: str | None) -> SynthConditions | None:
        if label is None and not self.cfg.attribute_prompts:
            return None
        return SynthConditions(
            label=label,
            labels=self.state.labels.labels if self.state.labels else (),
            attributes=self.cfg.attribute_prompts,
            topics=tuple(self.cfg.topics) if self.cfg.topics else TOPICS,
        )

    async def _call(self, rec: IssueRecord, messages: list[dict[str, str]]) -> DoneRecord:
        """One request; a RequestFailed becomes a `done` record with an error (counted, not fatal)."""
        from teachers.errors import BudgetExceeded, RequestFailed

        done: DoneRecord = {"event": "done", "index": rec["index"], "kind": rec["kind"]}
        if "key" in rec:
            done["key"] = rec["key"]
        top_logprobs = self.top_logprobs(rec)
        try:
            res = await self.teacher.chat(
                messages,
                temperature=rec["temperature"],
                max_tokens=self.max_tokens_for(rec),
                seed=self.cfg.seed,
                sample_index=rec[
                    "index"
                ],  # the client sends seed + sample_index: distinct per request
                top_logprobs=top_logprobs,
            )
            done["text"] = res.texts[0]
            if top_logprobs:
                done["logprobs"] = res.logprobs[0] if res.logprobs else None
        except RequestFailed as exc:
            done["text"], done["error"] = None, str(exc)[:300]
        except BudgetExceeded as exc:
            done["budget"] = str(exc)
        return done

    def top_logprobs(self, rec: IssueRecord) -> int:
        """Log-probabilities asked of request `rec`: label requests of a run with a label set
        and --top-logprobs (only there is the answer a label whose alternatives mean something)."""
        if rec["kind"] != "label" or self.state.labels is None:
            return 0
        return self.cfg.resolved_top_logprobs

    def _fill(self, queue: asyncio.Queue, tasks: dict[asyncio.Task, IssueRecord]) -> None:
        """Issue requests until the slots are full or the state wants nothing more now."""
        while len(tasks) < self.max_in_flight:
            rec = self.state.next_request()
            if rec is None:
                return
            self.journal(rec)
            self.state.on_issue(rec)
            task = asyncio.ensure_future(self._call(rec, self.messages_for(rec)))
            task.add_done_callback(queue.put_nowait)
            tasks[task] = rec

    async def run(self) -> DriveResult:
        """Drive until done. A budget stop lets the requests already in flight (already paid
        for) finish and be used; too many failures in a row stop at once. Once the target is
        met, the requests still in flight are cancelled (and journaled as such): their answers
        could only become surplus, and waiting for them kept a slow teacher busy for minutes."""
        queue: asyncio.Queue[asyncio.Task] = asyncio.Queue()
        tasks: dict[asyncio.Task, IssueRecord] = {}
        budget_msg = ""
        try:
            t0 = time.perf_counter()
            self._fill(queue, tasks)
            self.sampler_s += time.perf_counter() - t0
            while tasks:
                if self.state.done:
                    self._cancel_in_flight(tasks)  # answers already in are still folded in
                    if not tasks:
                        break
                task = await queue.get()
                if task not in tasks:
                    continue  # cancelled earlier; its record is already journaled
                t0 = time.perf_counter()
                tasks.pop(task)
                done = task.result()
                if "budget" in done:  # refused before sending: journaled, so a replay undoes it
                    budget_msg = budget_msg or f"teacher budget reached: {done['budget']}"
                    refused: RefusedRecord = {
                        "event": "refused",
                        "index": done["index"],
                        "kind": done["kind"],
                    }
                    if "key" in done:
                        refused["key"] = done["key"]
                    self.journal(refused)
                    self.state.on_refused(refused)
                    continue
                done["spent"] = session_spent(self.session_id, self.teacher.accounting)
                self.journal(done)
                self.state.on_done(done)
                self.on_progress()
                if self.state.consecutive_failures >= self.cfg.max_consecutive_failures:
                    return self._stop("failures", self._failure_message())
                if self.state.stalled(self.stall_window):
                    return self._stop("failures", self._stall_message())
                if not budget_msg:
                    self._fill(queue, tasks)
                self.sampler_s += time.perf_counter() - t0
            if budget_msg and not self.state.done:
                return self._stop("budget", budget_msg)
            if not self.state.done and self.state.mode != "label":
                # Nothing left worth sending, yet short of the target: inputs wait for votes
                # that cannot come. Label mode legitimately ends when its inputs run out.
                return self._stop("failures", self._stall_message())
            return DriveResult(None, "", self.sampler_s)
        finally:
            await _cancel(set(tasks))

    @property
    def stall_window(self) -> int:
        """Answers without a new accepted example after which the run gives up.

        `max_consecutive_failures` inputs' worth of votes, plus one window of requests in
        flight (those were issued before the last acceptance could steer them).
        """
        return self.cfg.max_consecutive_failures * self.state.votes + self.max_in_flight

    def _cancel_in_flight(self, tasks: dict[asyncio.Task, IssueRecord]) -> None:
        """Journal and cancel what is still in flight once the target is met."""
        for task, rec in list(tasks.items()):
            if task.done():
                continue
            task.cancel()
            del tasks[task]
            cancel: CancelRecord = {"event": "cancel", "index": rec["index"], "kind": rec["kind"]}
            if "key" in rec:
                cancel["key"] = rec["key"]
            self.journal(cancel)
            self.state.on_cancel(cancel)

    def _stall_message(self) -> str:
        n = self.state.answers_since_accept
        return (
            f"stopped after {n} teacher answers in a row accepted no example "
            f"(last: {self.state.last_failure or 'answers were valid but never decided'}); "
            "check the teacher, the task instruction and the settings, or raise "
            "--max-consecutive-failures"
        )

    def _stop(self, why: str, message: str) -> DriveResult:
        return DriveResult(why, message, self.sampler_s)

    def _failure_message(self) -> str:
        n = self.state.consecutive_failures
        return (
            f"stopped after {n} teacher answers in a row gave no usable example "
            f"(last: {self.state.last_failure}); check the teacher, the task instruction and "
            "--output-regex, or raise --max-consecutive-failures"
        )


async def _cancel(tasks: set[asyncio.Task]) -> None:
    """Cancel outstanding requests and wait for them, so no task outlives the client session."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)

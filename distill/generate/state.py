"""The sampler's state machine: pure, synchronous, driven by journal records.

Every teacher answer becomes one `done` record; `SamplerState.on_done` turns it into accepted
and rejected rows (through `emit`) and into follow-up label requests. Because the machine has no
clock and no hidden randomness, replaying the journal after a crash reproduces the exact same
rows, votes, label queue, few-shot pool and annealing position as the run that was killed.

Every change of state is one journal record applied by `apply` (the live run calls the same
`on_*` methods right after journaling the record): `next_request` only proposes a request and
changes nothing, so what the live run did between two records is exactly what a replay does.
The label queue therefore only ever holds requests worth sending (`_unqueue` drops those a
chance vote made unnecessary the moment it happens, not when they reach the head).

A *group* is one distinct input (its normalised xxh3 key): it collects outputs until it has
`votes` of them, then `majority_vote` decides it. Outputs for the same input arriving by chance
(the teacher writing an input twice while its vote is open) join the same group.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from distill.generate import filters as F
from distill.generate.config import GenerateConfig
from distill.generate.dedup import LeakGuard, NearDupIndex, normalised_key
from distill.generate.labels import next_label, over_share
from distill.generate.prompts import Pair, parse_label, parse_pairs
from distill.generate.rationale import split_rationale
from distill.generate.records import (
    CancelRecord,
    DoneRecord,
    IssueRecord,
    JournalRecord,
    RefusedRecord,
)
from distill.generate.rules import OutputRules
from distill.generate.schedule import temperature_at
from distill.generate.soft import LabelProbs, average, label_probs_from_logprobs, vote_shares
from distill.generate.vote import final_answer, majority_vote, normalise_text, vote_key

Emit = Callable[[str, dict[str, Any]], None]
NO_VALID_OUTPUT = F.NO_VALID_OUTPUT


@dataclass
class Group:
    """One distinct input and the outputs voted for it so far."""

    key: str
    input: str
    outputs: list[str] = field(default_factory=list)
    pending: int = 0  # label requests in flight
    attempts: int = 0  # label requests issued in total (bounds replacements)
    queued: int = 0  # label requests waiting in the queue
    decided: bool = False
    probs: list[LabelProbs] = field(default_factory=list)  # per answer, from its logprobs
    # chain of thought: the reasoning of each output (same order), None where it gave none
    rationales: list[str | None] = field(default_factory=list)


class SamplerState:
    """Counts, groups, pool and scheduling decisions of one generate run."""

    def __init__(
        self,
        cfg: GenerateConfig,
        protected: Sequence[str],
        emit: Emit,
        rules: OutputRules | None = None,
        n_inputs: int = 0,
    ):
        self.cfg = cfg
        self.mode = cfg.resolved_mode
        self.votes = cfg.resolved_votes
        self.target = cfg.target(n_inputs)
        self.emit = emit
        if rules is None:  # only the explicit regex: what a caller without a task can know
            pattern = re.compile(cfg.output_regex) if cfg.output_regex else None
            rules = OutputRules(pattern=pattern, pattern_source="output_regex")
        self.rules = rules
        self.labels = rules.label_set
        self.leak_guard = LeakGuard(protected, cfg.near_dup_threshold)
        self.near = NearDupIndex(cfg.near_dup_threshold)
        self.groups: dict[str, Group] = {}
        self.open: dict[str, Group] = {}
        self.label_queue: deque[str] = deque()
        self.accepted: list[dict[str, Any]] = []  # input, output (and label_probs)
        self.pool: list[Pair] = []  # few-shot pool: accepted (input, output) pairs
        self.pool_by_label: dict[str, list[Pair]] = {}  # the same pool split by output label
        self.surplus: list[dict[str, Any]] = []  # accepted past the target (kept for extending)
        self.rejected: Counter[str] = Counter()
        self.agreement: Counter[str] = Counter()
        self.next_index = 0
        self.in_flight = {"synth": 0, "label": 0}
        self.synth_done = 0
        self.groups_from_synth = 0
        self.consecutive_failures = 0
        self.answers_since_accept = 0  # teacher answers folded in since the last acceptance
        self.cancelled = 0  # requests cancelled in flight because the target was met
        self.last_failure = ""
        self.pairs_seen = 0  # (input, output) pairs parsed from synthesize answers
        self.repeats = 0  # synthesize pairs whose input was already in the same answer
        self.accepted_by_label: Counter[str] = Counter()
        self.kept_by_label: Counter[str] = Counter()  # accepted + surplus: the cap's counts
        self.synth_label: dict[int, str] = {}  # request index -> label it asked for
        self.label_in_flight: Counter[str] = Counter()
        self.off_target = 0  # synthesized pairs whose (in-set) output was another label
        self.inputs_total = 0  # label mode: user inputs admitted or rejected
        self.inputs_rejected = 0  # label mode: inputs rejected (filters or the vote)
        self.soft_sources: Counter[str] = Counter()  # accepted examples by label_probs source
        self.logprobs_unusable = 0  # answers asked for logprobs that gave no distribution
        self.vote_share_inputs: set[str] = set()  # label_probs from votes: not calibrated

    # ------------------------------------------------------------------ inputs (label mode)

    def add_inputs(self, texts: Sequence[str]) -> None:
        """Admit user inputs (label mode): each new one opens a group needing `votes` labels."""
        for n, text in enumerate(texts, start=1):
            self.inputs_total += 1
            group = self._admit(text, {"input": text, "line": n})
            if group is None:
                self.inputs_rejected += 1
            else:
                self._queue_labels(group)
        # Label mode labels every input it is given unless --num-examples caps it.
        self.target = max(self.target, self.cfg.target(self.inputs_total))

    def _admit(
        self, text: str, row: dict[str, Any], norm: str | None = None, key: str | None = None
    ) -> Group | None:
        """Open a group for a new input, or reject it (and say why) and return None.

        `norm` and `key`: the input's normalised text and key when the caller has them (each
        input is normalised once: it is a third of the cost of its dedup).
        """
        reason = F.check_input(text, self.cfg.max_input_chars)
        if reason is not None:
            self._reject(reason, row)
            return None
        norm = norm if norm is not None else normalise_text(text, lowercase=True)
        key = key if key is not None else normalised_key(norm)
        m = None
        if key in self.groups:
            reason = F.DUPLICATE
        else:
            m = self.near.minhash_normalised(norm)
            if self.leak_guard.leaks(text, m, key):
                reason = F.LEAK
            elif self.near.query(text, m):
                reason = F.NEAR_DUPLICATE
        if reason is not None:
            self._reject(reason, row)
            return None
        if m is not None:  # None: a short input, exact dedup only (or near-dup disabled)
            self.near.add(text, m)
        group = Group(key, text)
        self.groups[key] = self.open[key] = group
        return group

    # ------------------------------------------------------------------ scheduling

    @property
    def done(self) -> bool:
        """The target is reached, or (label mode) every input is decided."""
        if len(self.accepted) >= self.target:
            return True
        idle = not self.label_queue and not any(self.in_flight.values())
        return self.mode == "label" and idle and not self.open

    def next_request(self) -> IssueRecord | None:
        """The next issue record to send, or None when nothing is worth sending now.

        Changes nothing (asking twice gives the same record): `on_issue` takes the request
        off the label queue, so replaying the journal does exactly what the live run did.
        """
        if self.done:
            return None
        if self.label_queue:  # every queued request is worth sending (see `_unqueue`)
            key = self.label_queue[0]
            return self._issue("label", key=key, temperature=self.cfg.resolved_label_temperature)
        if self.mode != "label" and self._want_synth():
            temp = temperature_at(
                len(self.accepted),
                self.target,
                self.cfg.temperature_start,
                self.cfg.temperature_end,
                self.cfg.schedule,
            )
            if not self._label_requests:
                return self._issue("synth", temperature=temp)
            return self._issue("synth", temperature=temp, target_label=self._next_label())
        return None

    @property
    def _label_requests(self) -> bool:
        """Synthesize requests ask for one label each (a label set, not label mode, on)."""
        return self.labels is not None and self.mode != "label" and self.cfg.label_requests

    def _next_label(self) -> str:
        """The label the next synthesize request asks for: the one furthest below its share,
        counting accepted examples plus what the requests in flight are expected to bring."""
        assert self.labels is not None
        per_answer = self._groups_per_answer()
        counts = {
            label: self.accepted_by_label[label] + self.label_in_flight[label] * per_answer
            for label in self.labels.labels
        }
        return next_label(self.labels, counts)

    def pool_for(self, label: str | None) -> list[Pair]:
        """The few-shot pool a synthesize request samples from: for a request that asks for
        one label, the accepted examples of that label once there are any (examples with the
        asked-for output steer a small teacher toward it far better than the instruction)."""
        if label is not None and self.pool_by_label.get(label):
            return self.pool_by_label[label]
        return self.pool

    def _want_synth(self) -> bool:
        """Keep enough synthesize requests in flight to reach the target, no more.

        Expected new groups = in flight x groups per answer so far (before 5 answers are in,
        the optimistic prior `pairs_per_request`: if answers yield less, more requests follow
        as slots free; a pessimistic prior would overshoot and pay for surplus).
        """
        if not any(self.in_flight.values()):
            return True
        expected = (
            len(self.accepted)
            + len(self.open)
            + self.in_flight["synth"] * max(self._groups_per_answer(), 0.05)
        )
        return expected < self.target

    def _groups_per_answer(self) -> float:
        """New groups per synthesize answer so far (the prior before 5 answers are in)."""
        if self.synth_done >= 5:
            return self.groups_from_synth / self.synth_done
        return float(self.cfg.pairs_per_request)

    def _issue(self, kind: str, **extra: Any) -> IssueRecord:
        return {"event": "issue", "index": self.next_index, "kind": kind, **extra}  # type: ignore[typeddict-item]

    def apply(self, rec: JournalRecord, keep: Sequence[IssueRecord] = ()) -> None:
        """Apply one journal record: what the live run did right after journaling it.

        `keep`: for a `resume` line, the batched requests still out at that line.
        """
        event = rec["event"]
        if event == "done":
            self.on_done(rec)  # type: ignore[arg-type]
        elif event == "issue":
            self.on_issue(rec)  # type: ignore[arg-type]
        elif event == "cancel":
            self.on_cancel(rec)  # type: ignore[arg-type]
        elif event == "refused":
            self.on_refused(rec)  # type: ignore[arg-type]
        elif event == "resume":
            self.forget_in_flight(keep)
        else:
            raise ValueError(f"unknown journal event {event!r}")

    def on_issue(self, rec: IssueRecord) -> None:
        """Count a request as sent and take it off the label queue (live, or replayed)."""
        self.next_index = max(self.next_index, rec["index"] + 1)
        self.in_flight[rec["kind"]] += 1
        if "target_label" in rec:
            self.synth_label[rec["index"]] = rec["target_label"]
            self.label_in_flight[rec["target_label"]] += 1
        if rec["kind"] == "label":
            group = self.groups[rec["key"]]
            self._take_queued(group)
            group.pending += 1
            group.attempts += 1

    def _take_queued(self, group: Group) -> None:
        """Take one queued request of `group` off the label queue: the one being sent.

        It is the head when the record came from `next_request`; a journal written by an
        older version (which dropped filled-up requests only when they reached the head) may
        issue one further back, or one no longer queued at all.
        """
        if not group.queued:
            return
        if self.label_queue[0] == group.key:
            self.label_queue.popleft()
        else:
            self.label_queue.remove(group.key)
        group.queued -= 1

    def on_refused(self, rec: DoneRecord | RefusedRecord) -> None:
        """Undo `on_issue` for a request the client refused to send (budget).

        The request stays off the label queue (as when it was issued): a later run re-queues
        the votes open groups still miss.
        """
        self.in_flight[rec["kind"]] -= 1
        self._label_done(rec["index"])
        if rec["kind"] == "label":
            group = self.groups[rec["key"]]
            group.pending -= 1
            group.attempts -= 1

    def on_cancel(self, rec: CancelRecord) -> None:
        """A request cancelled in flight once the target was met: never answered, never retried.

        Its label vote (if any) is not re-queued now; a later run with a larger target re-queues
        the votes of open groups with fresh request indices, as after a crash.
        """
        self.in_flight[rec["kind"]] -= 1
        self.cancelled += 1
        if rec["kind"] == "label":
            self.groups[rec["key"]].pending -= 1

    def stalled(self, window: int) -> bool:
        """No example accepted in the last `window` answers (while short of the target)."""
        return not self.done and self.answers_since_accept >= window

    def forget_in_flight(self, keep: Sequence[IssueRecord] = ()) -> None:
        """After a replay: requests issued but never answered are lost; re-queue their labels.

        They get fresh request indices (so fresh seeds): re-sending the exact body of a request
        the server may already have seen would count as a repeated request. Requests in `keep`
        are not lost (a batch still holds them): they stay in flight.
        """
        self.in_flight = {"synth": 0, "label": 0}
        self.synth_label.clear()
        self.label_in_flight.clear()
        for group in self.open.values():
            group.pending = 0
        for rec in keep:
            self.in_flight[rec["kind"]] += 1
            if "target_label" in rec:
                self.synth_label[rec["index"]] = rec["target_label"]
                self.label_in_flight[rec["target_label"]] += 1
            if rec["kind"] == "label":
                self.groups[rec["key"]].pending += 1
        for group in self.open.values():
            self._queue_labels(group)
        self.consecutive_failures = 0  # a rerun is the user's explicit retry

    # ------------------------------------------------------------------ answers

    def on_done(self, rec: DoneRecord) -> None:
        """Fold one teacher answer (or failure) into the state."""
        self.in_flight[rec["kind"]] -= 1
        self.answers_since_accept += 1
        target = self._label_done(rec["index"])
        useful = self._on_synth(rec, target) if rec["kind"] == "synth" else self._on_label(rec)
        if useful:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1

    def _label_done(self, index: int) -> str | None:
        """Forget which label request `index` asked for; return it (None: no label asked)."""
        label = self.synth_label.pop(index, None)
        if label is not None:
            self.label_in_flight[label] -= 1
        return label

    def _on_synth(self, rec: DoneRecord, target: str | None = None) -> bool:
        self.synth_done += 1
        if rec.get("text") is None:
            return self._failed(rec, F.REQUEST_FAILED)
        pairs = parse_pairs(rec["text"])
        self.pairs_seen += len(pairs)
        if not pairs:
            return self._failed(rec, F.UNPARSABLE)
        touched: dict[str, Group] = {}  # settled after the whole answer: chance repeats vote
        for inp, out in pairs:
            group = self._on_pair(inp, out, rec["index"], target)
            if group is not None:
                touched[group.key] = group
        before = len(self.accepted) + len(self.surplus)
        for group in touched.values():
            self._settle(group)
        # Progress is an accepted example, or an input now waiting for its label votes; a
        # group that can never be decided (no output, no label request) is not progress.
        waiting = self.mode != "synthesize" and any(not g.decided for g in touched.values())
        useful = len(self.accepted) + len(self.surplus) > before or waiting
        if not useful:
            self.last_failure = (
                "every example in the answer was rejected"
                if not touched
                else "no example in the answer could be decided"
            )
        return useful

    def _on_pair(self, inp: str, out: str, index: int, target: str | None = None) -> Group | None:
        """Add one synthesized pair as a vote of its input's group (None: rejected).

        A pair whose output is another label than the request asked for is kept (the
        teacher's label for the input it wrote) and counted as `off_target`.
        """
        row = {"input": inp, "output": out, "request": index}
        reason = F.check_input(inp, self.cfg.max_input_chars)
        if reason is None:
            out, reason = self._check_output(out, inp)
        if reason is not None:
            self._reject(reason, row)
            return None
        norm = normalise_text(inp, lowercase=True)
        key = normalised_key(norm)
        group = self.open.get(key)
        if group is not None and self.mode == "synthesize":
            self.repeats += 1  # the same input twice in one answer: a duplicate in effect
        if group is None:
            group = self._admit(inp, row, norm, key)
            if group is None:
                return None
            self.groups_from_synth += 1
        if not self.cfg.chain_of_thought:  # a CoT vote needs reasoning; a bare pair has none
            group.outputs.append(out)
        if target is not None and out != target:
            self.off_target += 1
        return group

    def _on_label(self, rec: DoneRecord) -> bool:
        group = self.groups[rec["key"]]
        group.pending -= 1
        if group.decided:
            return True
        useful = True
        if rec.get("text") is None:
            useful = self._failed(rec, F.REQUEST_FAILED, group)
        else:
            text = rec["text"]
            rationale = None
            if self.cfg.chain_of_thought:
                answer, rationale = split_rationale(text)
            else:
                answer = parse_label(text)
            reason: str | None = F.NO_ANSWER
            parsed = answer
            if answer is not None:
                answer, reason = self._check_output(answer, group.input)
            if reason is None:
                group.outputs.append(self._vote_text(answer))
                if self.cfg.chain_of_thought:
                    group.rationales.append(rationale)
                self._add_probs(group, rec, text, parsed or "")
            else:
                self._reject(
                    reason, {"input": group.input, "output": text, "request": rec["index"]}
                )
                useful = False
                self.last_failure = reason
        self._settle(group)
        return useful

    def _add_probs(self, group: Group, rec: DoneRecord, text: str, parsed: str) -> None:
        """Keep the label distribution this answer's log-probabilities give (soft.py)."""
        if self.labels is None or "logprobs" not in rec:
            return
        tokens = rec["logprobs"]
        dist = None
        if tokens:
            dist = label_probs_from_logprobs(
                tokens, text, parsed, self.labels, last=self.cfg.chain_of_thought
            )
        if dist is None:
            self.logprobs_unusable += 1
        else:
            group.probs.append(dist)

    def _label_probs(self, group: Group) -> tuple[LabelProbs | None, str]:
        """The example's distribution and its source: the mean over the answers' logprob
        distributions, else (several votes) the vote shares, else none."""
        assert self.labels is not None
        if group.probs:
            return average(group.probs), "logprobs"
        if self.votes > 1:
            cot = self.cfg.chain_of_thought
            answers = [(final_answer(o) or "") if cot else o for o in group.outputs]
            shares = vote_shares(answers, self.labels)
            if shares is not None:
                return shares, "votes"
        return None, "none"

    def _vote_text(self, answer: str) -> str:
        """What one label answer votes with: the checked answer; for chain of thought
        "Answer: <answer>" (the vote parses final answers, and the reasoning is kept apart in
        `Group.rationales`), so "Positive." and "positive" are one vote key with a label set,
        and a bare answer with no reasoning still counts."""
        return f"Answer: {answer}" if self.cfg.chain_of_thought else answer

    def _failed(self, rec: DoneRecord, reason: str, group: Group | None = None) -> bool:
        row: dict[str, Any] = {"request": rec["index"]}
        if group is not None:
            row["input"] = group.input
        if rec.get("text") is not None:
            row["text"] = rec["text"][:500]
        if rec.get("error"):
            row["error"] = rec["error"]
        self._reject(reason, row)
        self.last_failure = f"{reason}: {rec.get('error') or (rec.get('text') or '')[:120]!r}"
        return False

    def _check_output(self, output: str, inp: str) -> tuple[str, str | None]:
        """(output to keep, None), or (output, rejection reason): the generic filters, then
        the run's rules (label set with canonical spelling, format, date)."""
        reason = F.check_output(output, inp, self.cfg.max_output_chars, None)
        if reason is not None:
            return output, reason
        return self.rules.check(output)

    # ------------------------------------------------------------------ votes

    def _queue_labels(self, group: Group) -> None:
        """Queue label requests so that outputs + pending reach `votes` (bounded retries)."""
        if self.mode == "synthesize":
            return
        missing = self.votes - len(group.outputs) - group.pending - group.queued
        room = 2 * self.votes - group.attempts - group.pending - group.queued
        for _ in range(max(0, min(missing, room))):
            self.label_queue.append(group.key)
            group.queued += 1

    def _unqueue(self, group: Group, n: int) -> None:
        """Take the last `n` queued requests of `group` off the label queue.

        For requests a vote no longer needs (outputs arrived by chance, or the group is
        decided): dropped when that happens, so the queue never holds a request not worth
        sending and `next_request` never has to skip (and so change) anything. Rare (chance
        arrivals while requests are queued), hence the linear scan.
        """
        n = min(n, group.queued)  # more outputs and pending than votes: none queued is left
        if n <= 0:
            return
        group.queued -= n
        queue = self.label_queue
        for i in range(len(queue) - 1, -1, -1):
            if queue[i] == group.key:
                del queue[i]
                n -= 1
                if not n:
                    return

    def _settle(self, group: Group) -> None:
        """Decide the group when its votes are in, or when no more votes can come."""
        if group.decided:
            return
        if len(group.outputs) < self.votes:
            if self.mode == "synthesize":
                return  # a synthesize group with no valid output simply waits for chance
            # outputs that arrived by chance may have made queued requests unnecessary
            excess = len(group.outputs) + group.pending + group.queued - self.votes
            self._unqueue(group, excess)
            self._queue_labels(group)
            if group.pending or group.queued:
                return
        self._decide(group)

    def _decide(self, group: Group) -> None:
        self._unqueue(group, group.queued)
        group.decided = True
        self.open.pop(group.key, None)
        if not group.outputs:
            self.inputs_rejected += self.mode == "label"
            self._reject(NO_VALID_OUTPUT, {"input": group.input})
            return
        vote = majority_vote(
            group.outputs,
            min_share=self.cfg.min_agreement,
            lowercase=self.cfg.lowercase_outputs,
            chain_of_thought=self.cfg.chain_of_thought,
        )
        if len(group.outputs) > 1:
            self.agreement[f"{vote.share:.2f}"] += 1
        if not vote.accepted or vote.winner is None:
            self.inputs_rejected += self.mode == "label"
            reason = F.NO_ANSWER if vote.winner is None else F.LOW_AGREEMENT
            row = {"input": group.input, "outputs": group.outputs, "share": round(vote.share, 4)}
            self._reject(reason, row)
            return
        winner = vote.winner
        if self.labels is not None:  # a CoT winner is the parsed answer: spell it as the set
            winner = self.labels.canonical(winner) or winner
            # The cap balances what label requests ask for; given inputs keep their real
            # labels, and without label requests the teacher's own label mix is kept.
            lead = self.cfg.max_label_lead if self._label_requests else 0
            if over_share(self.labels, self.kept_by_label, winner, lead):
                self._reject(F.LABEL_OVER_SHARE, {"input": group.input, "output": winner})
                return
            self.kept_by_label[winner] += 1
        example: dict[str, Any] = {"input": group.input, "output": winner}
        rationale = self._winning_rationale(group, vote.winner)
        if rationale is not None:
            example["rationale"] = rationale
        if self.labels is not None:
            probs, source = self._label_probs(group)
            self.soft_sources[source] += 1
            if source == "votes":
                self.vote_share_inputs.add(group.input)
            if probs is not None:
                example["label_probs"] = probs
        self._accept(example)

    def _winning_rationale(self, group: Group, winner: str) -> str | None:
        """The reasoning of the first output whose answer won the vote and that has one."""
        if not group.rationales:
            return None
        won = normalise_text(winner, lowercase=self.cfg.lowercase_outputs)
        for output, rationale in zip(group.outputs, group.rationales, strict=True):
            key = vote_key(output, lowercase=self.cfg.lowercase_outputs, chain_of_thought=True)
            if rationale is not None and key == won:
                return rationale
        return None

    def _accept(self, row: dict[str, Any]) -> None:
        self.answers_since_accept = 0
        if len(self.accepted) >= self.target:
            self.surplus.append(row)  # not written: a later run with a larger target takes it
            return
        self.accepted.append(row)
        if self.labels is not None:
            self.accepted_by_label[row["output"]] += 1
        self.pool.append((row["input"], row["output"]))
        if self.labels is not None:
            self.pool_by_label.setdefault(row["output"], []).append(self.pool[-1])
        self.emit("accepted", row)

    def _reject(self, reason: str, row: dict[str, Any]) -> None:
        self.rejected[reason] += 1
        self.emit("rejected", {**row, "reason": reason})

    # ------------------------------------------------------------------ reporting

    def counts(self) -> dict[str, Any]:
        """The manifest's counts block."""
        return {
            "accepted": len(self.accepted),
            "target": self.target,
            "requests": self.next_index,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "duplicates_removed": self.rejected[F.DUPLICATE],
            "near_duplicates_removed": self.rejected[F.NEAR_DUPLICATE],
            "leaks_blocked": self.rejected[F.LEAK],
            "distinct_inputs_seen": len(self.groups),
            "open_votes": len(self.open),
            "surplus_held_back": len(self.surplus),
            "cancelled_in_flight": self.cancelled,
            "vote_agreement_histogram": dict(sorted(self.agreement.items())),
            "teacher_pairs": self.pairs_seen,
            "repeats_within_answer": self.repeats,
            **self.rates(),
            "per_label": self.per_label(),
            **({"with_rationale": self.with_rationale()} if self.cfg.chain_of_thought else {}),
            **({"inputs": self.input_counts()} if self.mode == "label" else {}),
        }

    def with_rationale(self) -> int:
        """Accepted examples that carry the teacher's reasoning (chain of thought)."""
        return sum("rationale" in row for row in self.accepted)

    def soft_label_counts(self) -> dict[str, Any] | None:
        """The manifest's `soft_labels` block: where the examples' `label_probs` came from
        (None without a label set). Counts every decided example, surplus included."""
        if self.labels is None:
            return None
        by = {k: self.soft_sources[k] for k in ("logprobs", "votes", "none")}
        used = [k for k in ("logprobs", "votes") if by[k]]
        return {
            "source": used[0] if len(used) == 1 else ("mixed" if used else None),
            "top_logprobs": self.cfg.resolved_top_logprobs,
            "examples_by_source": by,
            "answers_without_usable_logprobs": self.logprobs_unusable,
        }

    def input_counts(self) -> dict[str, int]:
        """Label mode: of the user's inputs, how many were labelled, rejected, or are left."""
        labelled = len(self.accepted)
        left = self.inputs_total - labelled - self.inputs_rejected
        return {
            "total": self.inputs_total,
            "labelled": labelled,
            "rejected": self.inputs_rejected,
            "left": left,
        }

    def rates(self) -> dict[str, float | None]:
        """Yield and waste per synthesized teacher pair (None when the teacher wrote none).

        `accepted_per_teacher_pair` counts every accepted example, so in synthesize-label mode
        it is the yield of the synthesis step (votes cost label requests on top).
        `duplicate_rate` counts rejected duplicates and, in synthesize mode, inputs repeated
        within one answer (merged into one example, so as wasted as a rejected duplicate).
        """
        n = self.pairs_seen

        def rate(count: int) -> float | None:
            return round(count / n, 4) if n else None

        return {
            "accepted_per_teacher_pair": rate(len(self.accepted) + len(self.surplus)),
            "duplicate_rate": rate(self.rejected[F.DUPLICATE] + self.repeats),
            "near_duplicate_rate": rate(self.rejected[F.NEAR_DUPLICATE]),
            "leak_rate": rate(self.rejected[F.LEAK]),
        }

    def per_label(self) -> dict[str, Any] | None:
        """Accepted count of every label, with off-target pairs and out-of-set rejections."""
        if self.labels is None:
            return None
        return {
            "accepted": {x: self.accepted_by_label[x] for x in self.labels.labels},
            "off_target_pairs": self.off_target,
            "out_of_label_set": self.rejected[F.OUT_OF_LABEL_SET],
            "label_over_share": self.rejected[F.LABEL_OVER_SHARE],
        }

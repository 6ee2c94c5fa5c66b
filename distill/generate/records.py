"""The records generate writes and others read: journal lines, the manifest and its parts.

TypedDicts, not classes, because each is a JSON object on disk (journal.jsonl, manifest.json)
and the hot path appends thousands of journal lines a second: a dict costs nothing to write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

if TYPE_CHECKING:
    from teachers.accounting import Accounting

Kind = Literal["synth", "label"]


class IssueRecord(TypedDict):
    """A request about to be sent (journal line): enough to rebuild it exactly on resume."""

    event: Literal["issue"]
    index: int  # request number, also the seed offset and the few-shot rotation
    kind: Kind
    temperature: float
    key: NotRequired[str]  # label requests: the input group (dedup key) being voted on
    target_label: NotRequired[str]  # synthesize requests of a label set: the label asked for
    batch: NotRequired[str]  # sent in a batch (local batch name): not lost when a run stops
    custom_id: NotRequired[str]  # the batch line's custom_id (the request cache key)


class Spent(TypedDict):
    """A session's teacher totals when a `done` line was written (cumulative in that session)."""

    session: str  # a random id per session: totals of different sessions add up
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class DoneRecord(TypedDict):
    """A request's outcome (journal line): the teacher's text, or why there is none."""

    event: Literal["done"]
    index: int
    kind: Kind
    key: NotRequired[str]
    text: NotRequired[str | None]
    error: NotRequired[str]  # the request failed (retries exhausted); text is None
    budget: NotRequired[str]  # the budget stopped it before it was sent
    # label requests with --top-logprobs: the answer's tokens and their alternatives
    # (teachers.cache.TokenTop), None when the server sent none; journaled so that a replay
    # rebuilds every example's `label_probs` exactly
    logprobs: NotRequired[list[dict[str, Any]] | None]
    spent: NotRequired[Spent]  # the session's totals so far (live sessions; see journal_spend)


class CancelRecord(TypedDict):
    """A request cancelled in flight once the target was met (journal line): never answered,
    never sent again (a later, larger target re-queues open votes with fresh indices)."""

    event: Literal["cancel"]
    index: int
    kind: Kind
    key: NotRequired[str]


class RefusedRecord(TypedDict):
    """A request the client refused to send (the budget): never sent, so not an attempt of
    its vote (journal line, so a replay undoes its issue exactly as the live run did)."""

    event: Literal["refused"]
    index: int
    kind: Kind
    key: NotRequired[str]


class ResumeRecord(TypedDict):
    """The first line a resumed session journals: the requests the sessions before it left
    unanswered are lost (batched ones excepted), as `SamplerState.forget_in_flight` says; the
    replay forgets them at this line, as the live session did when it started."""

    event: Literal["resume"]


RESUME: ResumeRecord = {"event": "resume"}

JournalRecord = IssueRecord | DoneRecord | CancelRecord | RefusedRecord | ResumeRecord


SPENT_KEYS = ("prompt_tokens", "completion_tokens", "cost_usd")


def session_spent(session_id: str, accounting: Accounting) -> Spent:
    """A session's teacher totals so far, journaled with every answer, live or batch, so that a session killed before it wrote a
    manifest still counts toward the run's cost and budget when the run resumes."""
    return {
        "session": session_id,
        "prompt_tokens": accounting.prompt_tokens,
        "completion_tokens": accounting.completion_tokens,
        "cost_usd": round(accounting.cost_usd, 8),
    }


def journal_spend(records: list[dict[str, Any]]) -> dict[str, float]:
    """What the sessions of a journal spent in all: each session's last (largest) totals,
    summed over sessions. Counts sessions that were killed before writing a manifest; misses
    only what was paid for requests whose answers never reached the journal."""
    last: dict[str, dict[str, Any]] = {}
    for rec in records:
        spent = rec.get("spent") if rec.get("event") == "done" else None
        if spent:
            last[spent["session"]] = spent
    return {k: sum(s.get(k, 0) for s in last.values()) for k in SPENT_KEYS}


def upgrade_record(rec: dict[str, Any]) -> JournalRecord:
    """A journal line in the current keys; journals written before the rename used "e"/"i"."""
    if "e" in rec:
        rec["event"], rec["index"] = rec.pop("e"), rec.pop("i")
    return rec  # type: ignore[return-value]


class TaskRef(TypedDict):
    name: str
    instruction: str
    license: NotRequired[str]  # the task file's `license`, when it has one


class TeacherRef(TypedDict):
    teacher: str
    model: str | None


class Tokens(TypedDict):
    prompt: int
    completion: int


class Manifest(TypedDict):
    """RUN/data/manifest.json: what a generate run produced, what it cost, why it stopped."""

    task: TaskRef
    fingerprint: str
    complete: bool
    stopped: str | None  # None, "budget", "failures", "fatal", "batch_pending" or "cancelled"
    message: str
    mode: str
    votes: int
    settings: dict[str, Any]  # the GenerateConfig
    teacher: TeacherRef
    counts: dict[str, Any]  # SamplerState.counts()
    splits: dict[str, int]  # examples per split: train, validation, test
    rules: NotRequired[dict[str, Any]]  # OutputRules.describe(): label set, format, date
    tokens: Tokens
    cost_usd: float
    wall_s: float
    sampler_s: float
    sampler_share_of_wall: float
    teacher_accounting: dict[str, Any]  # this session's teachers.accounting snapshot
    sessions: list[dict[str, Any]]  # one accounting snapshot (+ wall_s) per session
    files: list[str]
    resumed: NotRequired[dict[str, Any]]  # {"resumed": bool, "accepted_before": int}
    soft_labels: NotRequired[dict[str, Any]]  # SamplerState.soft_label_counts()

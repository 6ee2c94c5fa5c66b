"""Batch mode of `distill generate`: the same sampler, its requests sent as batches.

A *round* is every request the state machine wants now (`next_request` until it says None):
in label mode all the votes of all open inputs, then the replacements of failed votes; in the
synthesize modes the requests expected to reach the target at the current temperature and
few-shot pool (the pool grows, and the temperature anneals, from one round to the next).

- `--batch-file OUT.jsonl` writes a round as Batch API JSONL and stops; `--batch-results IN.jsonl`
  ingests the answers (from `vllm run-batch`, or OpenAI's output and error files).
- `--batch` submits each round through the `openai` SDK, polls it, ingests it, and goes on.

Every request of a batch is journaled as an `issue` record tagged with its batch and its
`custom_id` (the request cache key) before anything is written or sent, so a rerun knows what
is still out: those requests stay in flight instead of being re-issued, a late answer still
finds its request, and an answer already ingested (its `done` record is in the journal) is
never counted twice. Answers go through the same steps as streamed ones: the request cache,
then a `done` record in the journal, then `SamplerState.on_done` (vote, dedup, filters).
Requests a batch never ran (expired, cancelled) are sent again, with the same custom_id, in
the next round; requests that failed become failed votes, whose replacements the state queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.files import atomic_write_text
from distill.errors import UserError
from distill.generate import store
from distill.generate.driver import Driver, DriveResult
from distill.generate.records import DoneRecord, IssueRecord, session_spent
from distill.generate.state import SamplerState

if TYPE_CHECKING:
    from distill.generate.run import _Session
    from teachers.accounting import Accounting
    from teachers.batch import BatchAnswer, BatchClient, BatchStatus
    from teachers.cache import RequestCache

REQUESTS = "batch_requests.jsonl"  # every batch line ever prepared (resubmission reads it)
BATCHES = "batches.jsonl"  # submitted / finished events of --batch (re-attach reads it)
MAX_POLL_S = 300.0
MAX_POLL_GROWTH = 20.0  # the interval never grows past 20x the first one (--batch-poll-s)


def next_poll_wait(wait: float, first: float) -> float:
    """The next wait between status polls: 1.5x the last, at most 20x the first and 5 min.

    Capping by the first interval keeps a short --batch-poll-s short: a batch that finishes
    late is then noticed within 20 intervals, not after a wait that grew without bound.
    """
    return min(wait * 1.5, first * MAX_POLL_GROWTH, MAX_POLL_S)


def pending_batched(records: Iterable[dict[str, Any]]) -> dict[str, IssueRecord]:
    """custom_id -> issue record of every batched request that has no answer yet."""
    records = list(records)
    answered = {r["index"] for r in records if r.get("event") == "done"}
    return {
        r["custom_id"]: r  # type: ignore[misc]
        for r in records
        if r.get("event") == "issue" and r.get("batch") and r["index"] not in answered
    }


@dataclass
class _Offline:
    """What `Driver.messages_for` needs of a teacher when none is opened (batch files):
    no context length known, so prompts are not trimmed to one."""

    context_length: int | None = None


@dataclass
class _Batcher:
    """The state of batch rounds in one session."""

    session: _Session
    state: SamplerState
    journal: store.LogWriter
    driver: Driver
    model: str
    accounting: Accounting
    cache: RequestCache | None
    pending: dict[str, IssueRecord]
    lines: dict[str, dict]  # custom_id -> request line (all prepared so far)
    saved: store.LogWriter  # appends to REQUESTS
    budget_msg: str = ""
    ingested: int = 0
    ignored: int = 0
    reservations: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ preparing a round

    def prepare(self, name: str) -> list[dict]:
        """The lines of the next batch: requests still out (no batch is running when a round
        is prepared), then every new request the state wants now. Cached answers are used at
        once, not sent; the budget bounds the lines."""
        lines = [self.lines[c] for c in self.pending if self._fits(c)]
        while not self.budget_msg and (rec := self.state.next_request()) is not None:
            line = self._issue(rec, name)
            if line is not None:
                lines.append(line)
        return lines

    def _issue(self, rec: IssueRecord, name: str) -> dict | None:
        from teachers.batch import batch_line
        from teachers.cache import canonical_key
        from teachers.client import chat_request, prompt_upper_bound, wire_body

        messages = self.driver.messages_for(rec)
        cfg = self.session.cfg
        max_tokens = self.driver.max_tokens_for(rec)
        request = chat_request(
            self.model, messages, temperature=rec["temperature"], max_tokens=max_tokens,
            seed=cfg.seed,
        )  # fmt: skip
        cid = canonical_key(request, rec["index"])
        cached = self.cache.get(cid) if self.cache is not None else None
        if cached is not None:
            self.accounting.cache_hits += 1
            self._record(rec)
            self._answer(rec, {"text": cached})
            return None
        cost = self.accounting.max_cost(prompt_upper_bound(messages), max_tokens)
        if not self._reserve(cid, cost):
            return None
        # The line is kept before the request is journaled: a request out has its line.
        line = batch_line(cid, wire_body(request, rec["index"]))
        self.lines[cid] = line
        self.saved(line)
        rec = {**rec, "batch": name, "custom_id": cid}  # type: ignore[typeddict-item]
        self._record(rec)
        self.pending[cid] = rec
        return line

    def _record(self, rec: IssueRecord) -> None:
        self.journal(rec)  # type: ignore[arg-type]
        self.state.on_issue(rec)

    def _fits(self, cid: str) -> bool:
        from teachers.client import prompt_upper_bound

        body = self.lines[cid]["body"]
        cost = self.accounting.max_cost(prompt_upper_bound(body["messages"]), body["max_tokens"])
        return self._reserve(cid, cost)

    def _reserve(self, cid: str, cost: float) -> bool:
        """Claim the request's maximum cost, or note the budget stop (and send nothing more)."""
        from teachers.errors import BudgetExceeded

        if self.budget_msg:
            return False
        try:
            self.accounting.reserve(cost)
        except BudgetExceeded as exc:
            self.budget_msg = f"teacher budget reached: {exc}"
            return False
        self.reservations[cid] = cost
        return True

    # ------------------------------------------------------------------ answers

    def ingest(self, answers: dict[str, BatchAnswer]) -> None:
        """Feed the answers of pending requests to the state, in request order (so the same
        answers give the same data whatever order the results file has)."""
        self.ignored += sum(1 for cid in answers if cid not in self.pending)
        for cid, rec in sorted(self.pending.items(), key=lambda kv: kv[1]["index"]):
            answer = answers.get(cid)
            self.accounting.release(self.reservations.pop(cid, 0.0))
            if answer is None or answer.not_run:
                continue  # still out: the next round sends it again
            del self.pending[cid]
            self.accounting.record_usage(answer.prompt_tokens, answer.completion_tokens, 0)
            if answer.text is None:
                self.accounting.failures += 1
                self._answer(rec, {"text": None, "error": (answer.error or "")[:300]})
                continue
            if self.cache is not None:
                self.cache.put(
                    cid, self.model, answer.text, answer.finish_reason, answer.completion_tokens
                )
            self._answer(rec, {"text": answer.text})
            self.ingested += 1

    def _answer(self, rec: IssueRecord, outcome: dict[str, Any]) -> None:
        done: DoneRecord = {"event": "done", "index": rec["index"], "kind": rec["kind"]}
        if "key" in rec:
            done["key"] = rec["key"]
        done.update(outcome)  # type: ignore[typeddict-item]
        # the batch prices (usage is recorded before the answer), as the live driver does
        done["spent"] = session_spent(self.driver.session_id, self.accounting)
        self.journal(done)  # type: ignore[arg-type]
        self.state.on_done(done)

    def stop_reason(self) -> DriveResult | None:
        """Too many useless answers in a row stop batch runs as they stop streamed ones."""
        if self.state.consecutive_failures >= self.session.cfg.max_consecutive_failures:
            return DriveResult("failures", self.driver._failure_message(), 0.0)
        return None


# ---------------------------------------------------------------------- entry point


async def drive_batch(
    session: _Session, state: SamplerState, journal: store.LogWriter
) -> tuple[DriveResult, dict[str, Any]]:
    """Run the batch mode the settings ask for; returns how it ended and the accounting."""
    cfg, teacher_cfg = session.cfg, session.teacher_cfg
    if cfg.batch:
        return await _api(session, state, journal)
    model = _model_name(teacher_cfg)
    batcher = _batcher(session, state, journal, model, _Offline())
    try:
        if cfg.batch_results:
            result = _ingest_file(batcher, Path(cfg.batch_results))
        else:
            result = _write_file(batcher, Path(str(cfg.batch_file)))
    finally:
        _close(batcher)
    return result, _snapshot(batcher)


def _model_name(teacher_cfg: Any) -> str:
    from teachers.config import parse_teacher_spec

    kind, value = parse_teacher_spec(teacher_cfg.teacher)
    if kind == "embedded":
        raise UserError(
            "--teacher: batch mode needs a model a batch runs on: --teacher openai:MODEL or a "
            "base URL with --model (the embedded teacher has no Batch API; stream instead)"
        )
    return str(value if kind == "openai" else teacher_cfg.model)


def _batcher(
    session: _Session, state: SamplerState, journal: store.LogWriter, model: str, teacher: Any
) -> _Batcher:
    from distill.configs import config_error
    from teachers.accounting import Accounting, find_price, load_prices
    from teachers.cache import RequestCache

    tcfg, out = session.teacher_cfg, session.out_dir
    try:
        price = find_price(load_prices(tcfg.prices_file), model)
    except ValueError as exc:
        raise config_error(exc) from None
    if price is None and tcfg.budget_usd is not None:
        raise UserError(
            f"--prices-file: no price known for model {model!r}, so --budget-usd cannot be "
            "enforced; add it to a prices file"
        )
    accounting = Accounting(price.for_batch() if price else None, tcfg.budget_usd)
    accounting.spent_before_usd = session.spent_before.get("cost_usd", 0.0)
    demos = [(d.input, d.output) for d in session.task.demonstrations]
    driver = Driver(
        state,
        teacher,
        session.cfg,
        session.task.instruction,
        demos,
        journal,
        1,
        label_demos=_batch_label_demos(session, demos),
    )  # only its prompts are used: the batch sends them
    records = [dict(r) for r in store.read_log(out / store.JOURNAL)]
    lines = {row["custom_id"]: row for row in store.read_log(out / REQUESTS)}
    return _Batcher(
        session, state, journal, driver, model, accounting,
        RequestCache(out / store.CACHE) if tcfg.cache else None,
        {c: r for c, r in pending_batched(records).items() if c in lines},
        lines, store.LogWriter(out / REQUESTS),
    )  # fmt: skip


def _close(batcher: _Batcher) -> None:
    batcher.saved.close()
    if batcher.cache is not None:
        batcher.cache.close()


def _snapshot(batcher: _Batcher) -> dict[str, Any]:
    snap = batcher.accounting.snapshot()
    snap["batch"] = {
        "ingested": batcher.ingested,
        "ignored": batcher.ignored,
        "pending": len(batcher.pending),
    }
    return snap


# ---------------------------------------------------------------------- batch files


def _write_file(batcher: _Batcher, path: Path) -> DriveResult:
    """Write the round (requests still out + new ones) to `path`; nothing is sent."""
    lines = batcher.prepare(f"file:{path.name}")
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    batcher.accounting.requests += len(lines)
    if not lines:
        return batcher.stop_reason() or DriveResult(
            "budget" if batcher.budget_msg else None, batcher.budget_msg, 0.0
        )
    message = (
        f"{len(lines)} requests written to {path} (max cost "
        f"${batcher.accounting.reserved_usd:.4f}); run them (e.g. `vllm run-batch -i {path} "
        "-o results.jsonl`) and ingest the answers with --batch-results results.jsonl"
    )
    return DriveResult("batch_pending", message, 0.0)


def _ingest_file(batcher: _Batcher, path: Path) -> DriveResult:
    """Feed the answers of a results file to the run; say what is still to do."""
    from teachers.batch import parse_results

    try:
        answers = parse_results(path.read_text(encoding="utf-8").splitlines())
    except OSError as exc:
        raise UserError(f"--batch-results: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"--batch-results: {path}: {str(exc).partition(': ')[2]}") from None
    batcher.ingest(answers)
    if (stop := batcher.stop_reason()) is not None:
        return stop
    # Asking changes nothing (`next_request` only proposes): the session ends here, and the
    # next one replays the journal afresh.
    wants_more = batcher.state.next_request() is not None
    if batcher.state.done or not (wants_more or batcher.pending):
        return DriveResult(None, "", 0.0)
    return DriveResult("batch_pending", _todo(batcher), 0.0)


def _todo(batcher: _Batcher) -> str:
    return (
        f"ingested {batcher.ingested} answers ({batcher.ignored} skipped: unknown or already "
        f"ingested); {len(batcher.pending)} requests still out. Run --batch-file again for "
        "the next round (it repeats what is still out and adds what the votes now need)"
    )


# ---------------------------------------------------------------------- the Batch API


@dataclass
class _Live:
    """A submitted batch of this run (from BATCHES): its local name and server ids."""

    name: str
    batch_id: str
    input_file_id: str


def _live_batch(out_dir: Path) -> _Live | None:
    """The batch this run submitted and has not finished ingesting, if any."""
    live: dict[str, _Live] = {}
    for row in store.read_log(out_dir / BATCHES):
        if row["event"] == "submitted":
            live[row["name"]] = _Live(row["name"], row["batch_id"], row["input_file_id"])
        elif row["event"] == "finished":
            live.pop(row["name"], None)
    return next(iter(live.values()), None)


async def _api(
    session: _Session, state: SamplerState, journal: store.LogWriter
) -> tuple[DriveResult, dict[str, Any]]:
    """Rounds through the Batch API until the state is done or a stop."""
    from openai import APIError

    from distill.configs import config_error
    from teachers import open_teacher
    from teachers.batch import BatchClient
    from teachers.client import _api_key

    tcfg = session.teacher_cfg
    model = _model_name(tcfg)
    async with contextlib.AsyncExitStack() as stack:
        try:  # the base URL and its context length
            teacher = await stack.enter_async_context(open_teacher(tcfg))
        except ValueError as exc:  # a teacher setting the client rejects (no key, no price)
            raise config_error(exc) from None
        batcher = _batcher(session, state, journal, model, teacher)
        key = _api_key(tcfg, False)
        client = BatchClient(teacher.base_url, key, tcfg.max_retries, tcfg.timeout_s)
        log = store.LogWriter(session.out_dir / BATCHES)
        try:
            result = await _rounds(batcher, client, log)
        except APIError as exc:  # the server refused a files/batches call (after SDK retries)
            result = DriveResult("fatal", teacher.redact(f"{type(exc).__name__}: {exc}"), 0.0)
        finally:
            log.close()
            await client.close()
            _close(batcher)
    return result, _snapshot(batcher)


async def _rounds(batcher: _Batcher, client: BatchClient, log: store.LogWriter) -> DriveResult:
    cfg, out = batcher.session.cfg, batcher.session.out_dir
    live = _live_batch(out)
    if cfg.cancel:
        return await _cancel(batcher, client, log, live)
    while True:
        if live is None:
            live = await _submit(batcher, client, log)
            if live is None:
                break
        status = await _poll(batcher, client, live)
        out_before = len(batcher.pending)
        result = await _collect(batcher, client, log, live, status)
        if result is not None:
            return result
        if len(batcher.pending) == out_before:  # resubmitting it as is would loop forever
            message = f"batch {live.batch_id} ({status.status}) answered none of its requests"
            return DriveResult("fatal", f"{message}; rerun to submit them again", 0.0)
        live = None
        if (stop := batcher.stop_reason()) is not None:
            return stop
        if batcher.budget_msg:
            break
    if batcher.budget_msg and not batcher.state.done:
        return DriveResult("budget", batcher.budget_msg, 0.0)
    return DriveResult(None, "", 0.0)


async def _submit(batcher: _Batcher, client: BatchClient, log: store.LogWriter) -> _Live | None:
    """Prepare a round and submit it; its ids are logged before anything waits on it."""
    name = f"round-{batcher.state.next_index}"
    lines = batcher.prepare(name)
    if not lines:
        return None
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    file_id = await client.upload(data, f"distill-{name}.jsonl")
    batch_id = await client.create(file_id, {"distill_run": batcher.session.fingerprint})
    log({"event": "submitted", "name": name, "batch_id": batch_id, "input_file_id": file_id,
         "requests": len(lines), "max_cost_usd": round(batcher.accounting.reserved_usd, 8)})  # fmt: skip
    batcher.accounting.requests += len(lines)
    return _Live(name, batch_id, file_id)


async def _poll(batcher: _Batcher, client: BatchClient, live: _Live) -> BatchStatus:
    """Wait for the batch to finish, with a growing interval and a progress bar. Ctrl-C
    leaves the batch running and says how to re-attach."""
    from tqdm import tqdm

    wait = first = batcher.session.cfg.batch_poll_s
    started = time.monotonic()
    bar = tqdm(desc=f"batch {live.batch_id}", unit="req", dynamic_ncols=True)
    try:
        while not (status := await client.retrieve(live.batch_id)).finished:
            _show(bar, status, batcher, started)
            await asyncio.sleep(wait)
            wait = next_poll_wait(wait, first)
        _show(bar, status, batcher, started)
        return status
    except (asyncio.CancelledError, KeyboardInterrupt):
        print(_reattach_message(live), file=sys.stderr, flush=True)
        raise
    finally:
        bar.close()


def _show(bar: Any, status: BatchStatus, batcher: _Batcher, started: float) -> None:
    bar.total = status.total or bar.total
    bar.n = status.completed + status.failed
    bar.set_postfix(
        status=status.status, failed=status.failed,
        max_cost=f"${batcher.accounting.reserved_usd:.4f}",
        elapsed=f"{time.monotonic() - started:.0f}s", refresh=False,
    )  # fmt: skip
    bar.refresh()


def _reattach_message(live: _Live) -> str:
    return (
        f"distill generate: batch {live.batch_id} is still running on the server; rerun the "
        "same command to re-attach to it (nothing is submitted twice), or add --cancel to "
        "cancel it"
    )


async def _collect(
    batcher: _Batcher,
    client: BatchClient,
    log: store.LogWriter,
    live: _Live,
    status: BatchStatus,
) -> DriveResult | None:
    """Download and ingest a finished batch; a failed batch stops the run (None: go on)."""
    answers_lines = await client.content(status.output_file_id)
    error_lines = await client.content(status.error_file_id)
    from teachers.batch import parse_results

    batcher.ingest(parse_results(answers_lines + error_lines))
    log({"event": "finished", "name": live.name, "batch_id": live.batch_id,
         "status": status.status, "output_file_id": status.output_file_id,
         "error_file_id": status.error_file_id})  # fmt: skip
    if status.status == "failed":
        return DriveResult("fatal", f"batch {live.batch_id} failed: {status.errors}", 0.0)
    if status.status == "cancelled":
        return DriveResult("cancelled", f"batch {live.batch_id} was cancelled", 0.0)
    return None


async def _cancel(
    batcher: _Batcher, client: BatchClient, log: store.LogWriter, live: _Live | None
) -> DriveResult:
    """--cancel: cancel the running batch, keep the answers it already has."""
    if live is None:
        raise UserError("--cancel: this run has no running batch to cancel")
    await client.cancel(live.batch_id)
    status = await _poll(batcher, client, live)
    await _collect(batcher, client, log, live, status)
    message = (
        f"batch {live.batch_id} cancelled; {batcher.ingested} answers kept, "
        f"{len(batcher.pending)} requests not run (rerun without --cancel to submit them)"
    )
    return DriveResult("cancelled", message, 0.0)


def _batch_label_demos(session: Any, demos: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The demonstrations of batched label prompts: with chain of thought, each needs its
    rationale (the task file's, or saved by an earlier live session): a batch cannot wait for
    the teacher to write them first."""
    from distill.generate.rationale import DEMO_RATIONALES, cot_demos, known_rationales

    cfg, task = session.cfg, session.task
    if not cfg.chain_of_thought or cfg.resolved_mode == "synthesize":
        return demos
    rationales = known_rationales(task.demonstrations, session.out_dir)
    if rationales is None:
        raise UserError(
            f"{task.path or 'task file'}: chain_of_thought with a batch needs a `rationale` on "
            "every [[demonstrations]] (or one run without --batch, which has the teacher write "
            f"them into {DEMO_RATIONALES})"
        )
    return cot_demos(demos, rationales)

"""`run_generate`: one generate run (or its resumption) from settings to finished artefacts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from common.files import atomic_write_json
from common.jsonl import read_jsonl
from distill.configs import config_error
from distill.errors import UserError
from distill.generate import filters as F
from distill.generate import store
from distill.generate.calibration import (
    CONTENT_FREE_INPUTS,
    apply_calibration,
    auto_applies,
    content_free_prior,
)
from distill.generate.card import write_dataset_card
from distill.generate.config import FINGERPRINT_FIELDS, GenerateConfig
from distill.generate.driver import Driver, DriveResult
from distill.generate.rationale import cot_demos, demo_rationales
from distill.generate.records import RESUME, IssueRecord, Manifest, upgrade_record
from distill.generate.rules import OutputRules, resolve_rules
from distill.generate.state import SamplerState
from distill.task import TaskSpec

if TYPE_CHECKING:
    from teachers.client import Teacher
    from teachers.config import TeacherConfig


class GenerateStopped(UserError):
    """The run stopped before its target for a reason the user must fix (e.g. a garbage teacher).

    Everything produced so far is kept; the manifest says why it stopped.
    """


def _digest(items: list[str]) -> str:
    return xxhash.xxh3_64_hexdigest("\n".join(items).encode("utf-8"))


def load_inputs(path: str) -> list[str]:
    """Inputs of label mode: JSONL with a string field 'input' (and optionally 'id')."""
    return [row["input"] for row in read_jsonl(path, required=("input",), allowed=("input", "id"))]


def run_rules(task: TaskSpec, cfg: GenerateConfig) -> OutputRules:
    """The label set, format and date checks of this task and settings (see rules.py).

    A `labels` key that a demonstration's output is not part of is a user error: every
    answer like that demonstration would be rejected.
    """
    outputs = [d.output for d in task.demonstrations]
    rules = resolve_rules(cfg, task.instruction, outputs)
    if cfg.top_logprobs and rules.label_set is None:
        raise UserError(
            f"--top-logprobs / [generate] top_logprobs: needs a label set, and "
            f"{task.path or 'the task'} has none (set `labels`, or name every label in the "
            "instruction)"
        )
    if cfg.label_calibration == "content-free" and cfg.resolved_mode == "synthesize":
        raise UserError(
            "--label-calibration / [generate] label_calibration: content-free needs mode label "
            "or synthesize-label (it reads the label requests' log-probabilities; synthesize "
            "mode sends none)"
        )
    if cfg.label_calibration == "content-free" and rules.label_set is None:
        raise UserError(
            f"--label-calibration / [generate] label_calibration: needs a label set, and "
            f"{task.path or 'the task'} has none (set `labels`, or name every label in the "
            "instruction)"
        )
    if rules.label_set is not None and rules.label_set.source == "task":
        for n, out in enumerate(outputs, start=1):
            if rules.label_set.canonical(out) is None:
                where = task.path or "task.toml"
                raise UserError(
                    f"{where}: [generate] labels / --labels: demonstrations[{n}] output "
                    f"{out!r} is not one of {list(rules.label_set.labels)}"
                )
    return rules


def run_fingerprint(
    task: TaskSpec,
    cfg: GenerateConfig,
    teacher_cfg: TeacherConfig,
    inputs: list[str],
    exclude: list[str],
    rules: OutputRules | None = None,
) -> tuple[str, dict[str, Any]]:
    """The fingerprint and the settings it covers (what decides the produced data), with the
    resolved rules: a changed inference of the label set or format is a different run."""
    settings = {name: getattr(cfg, name) for name in FINGERPRINT_FIELDS}
    settings.update(
        mode=cfg.resolved_mode,
        votes=cfg.resolved_votes,
        label_temperature=cfg.resolved_label_temperature,
    )
    synth_max_tokens = _synth_max_tokens(task, cfg)
    if synth_max_tokens is not None:  # label runs send no synthesize request: fingerprint kept
        settings["synth_max_tokens"] = synth_max_tokens
    rules = rules if rules is not None else run_rules(task, cfg)
    if cfg.resolved_top_logprobs and rules.label_set is not None:
        # only when asked: runs without log-probabilities keep their fingerprint
        settings["top_logprobs"] = cfg.resolved_top_logprobs
    if not cfg.label_requests and rules.label_set is not None and cfg.resolved_mode != "label":
        # only where it changes the data, and only when off: runs from before the setting
        # asked for labels, and keep their fingerprint when resumed with --label-requests
        settings["label_requests"] = False
    payload = {
        "settings": settings,
        "rules": rules.describe(),
        "task": {"name": task.name, "instruction": task.instruction},
        "demonstrations": [[d.input, d.output] for d in task.demonstrations],
        "inputs_xxh3": _digest(inputs),
        "exclude_xxh3": _digest(sorted(exclude)),
        "teacher": {"teacher": teacher_cfg.teacher, "model": teacher_cfg.model},
    }
    return store.fingerprint(payload), payload


def _synth_max_tokens(task: TaskSpec, cfg: GenerateConfig) -> int | None:
    """The max_tokens synthesize requests are sent with; None in label mode, which sends none."""
    if cfg.resolved_mode == "label":
        return None
    return cfg.resolved_synth_max_tokens([(d.input, d.output) for d in task.demonstrations])


@dataclass(frozen=True)
class _Session:
    """What one generate session works with: the settings, where, and when it started."""

    task: TaskSpec
    cfg: GenerateConfig
    teacher_cfg: TeacherConfig
    out_dir: Path
    fingerprint: str
    started: float  # time.monotonic() at the start
    # teacher totals of the run's earlier sessions (the run's budget and manifest count them)
    spent_before: dict[str, float] = dataclasses.field(default_factory=dict)


class _Sink:
    """Where emitted rows go: collected during replay, appended (LogWriter) when live."""

    def __init__(self) -> None:
        self.replayed: dict[str, list[dict]] = {"accepted": [], "rejected": []}
        self.files: dict[str, store.LogWriter] = {}

    def __call__(self, kind: str, row: dict[str, Any]) -> None:
        if kind in self.files:
            self.files[kind](row)
        else:
            self.replayed[kind].append(row)

    def go_live(self, out_dir: Path) -> None:
        """Reconcile the replayed rows with the files, append what the kill lost, open for append."""
        for kind, name in (("accepted", store.EXAMPLES), ("rejected", store.REJECTED)):
            path = out_dir / name
            on_disk = store.read_log(path)
            replayed = self.replayed[kind]
            same = len(on_disk) <= len(replayed) and all(
                a.get("input") == b.get("input") and a.get("reason") == b.get("reason")
                for a, b in zip(on_disk, replayed, strict=False)
            )
            if not same:
                raise UserError(
                    f"{path}: does not match {out_dir / store.JOURNAL} (edited by hand?); "
                    "use --overwrite or a fresh --out directory"
                )
            self.files[kind] = store.LogWriter(path)
            for row in replayed[len(on_disk) :]:
                self.files[kind](row)

    def close(self) -> None:
        for writer in self.files.values():
            writer.close()


def run_generate(
    task: TaskSpec,
    cfg: GenerateConfig,
    teacher_cfg: TeacherConfig,
    out_dir: Path,
    *,
    exclude_inputs: list[str] | tuple[str, ...] = (),
) -> Manifest:
    """Generate (or resume generating) `cfg.num_examples` examples into `out_dir`.

    Returns the manifest. A budget stop returns normally with `manifest["stopped"] == "budget"`.
    Raises UserError for a conflicting run directory or bad inputs, and GenerateStopped (a
    UserError) when the teacher keeps giving nothing usable or refuses requests
    (400/401/403/404); in both stop cases after writing the manifest and the splits.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    inputs = load_inputs(cfg.inputs) if cfg.inputs else []
    rules = run_rules(task, cfg)
    fp, payload = run_fingerprint(task, cfg, teacher_cfg, inputs, list(exclude_inputs), rules)
    try:
        resumed = store.prepare_run_dir(out_dir, fp, payload, cfg.overwrite)
    except store.RunDirConflict as exc:
        raise UserError(str(exc)) from None
    protected = [d.input for d in task.demonstrations] + list(exclude_inputs)
    state, sink, records = _restore(cfg, protected, inputs, out_dir, rules)
    before = _spent_before(out_dir, records)
    session = _Session(task, cfg, teacher_cfg, out_dir, fp, started, before)
    replayed = len(sink.replayed["accepted"])
    journal = store.LogWriter(out_dir / store.JOURNAL)
    if records:  # this session starts by forgetting what was in flight: say where, if it writes
        journal.prefix_next(dict(RESUME))
    try:
        sink.go_live(out_dir)
        result, accounting = _drive(session, state, journal)
    finally:
        journal.close()
        sink.close()
    manifest = _finish(session, state, result, accounting)
    manifest["resumed"] = {"resumed": resumed, "accepted_before": replayed}
    atomic_write_json(out_dir / store.MANIFEST, manifest)
    write_dataset_card(out_dir, manifest)
    if result.stopped == "failures":
        raise GenerateStopped(result.message)
    if result.stopped == "fatal":
        raise GenerateStopped(f"the teacher refused the request: {result.message}")
    return manifest


def _spent_before(out_dir: Path, records: list[dict[str, Any]]) -> dict[str, float]:
    """Teacher totals of the earlier sessions: from the journal's `spent` totals, which count
    sessions killed before they wrote a manifest, or from the manifest's sessions when those
    are larger (journals written before `spent` was journaled)."""
    from distill.generate.records import SPENT_KEYS, journal_spend

    journal = journal_spend(records)
    sessions = _ended_sessions(out_dir)
    return {k: max(journal[k], sum(s.get(k, 0) for s in sessions)) for k in SPENT_KEYS}


def _ended_sessions(out_dir: Path) -> list[dict[str, Any]]:
    """The accounting of the sessions that ended with a manifest (none in a fresh run)."""
    old = out_dir / store.MANIFEST
    return json.loads(old.read_text()).get("sessions", []) if old.is_file() else []


def _restore(
    cfg: GenerateConfig,
    protected: list[str],
    inputs: list[str],
    out_dir: Path,
    rules: OutputRules | None = None,
) -> tuple[SamplerState, _Sink, list[dict[str, Any]]]:
    """A fresh state with the journal of the earlier sessions (if any) replayed into it, and
    the requests they left in flight forgotten (their votes queued again); and the records."""
    state, sink, records = _replay(cfg, protected, inputs, out_dir, rules)
    state.forget_in_flight(keep=_still_out(cfg, records))
    return state, sink, records


def _still_out(cfg: GenerateConfig, records: list[dict[str, Any]]) -> list[IssueRecord]:
    """Of the requests `records` left unanswered, those not lost: a batch still holds them."""
    if not cfg.batch_mode:
        return []
    from distill.generate.batch import pending_batched

    return list(pending_batched(records).values())


def _replay(
    cfg: GenerateConfig,
    protected: list[str],
    inputs: list[str],
    out_dir: Path,
    rules: OutputRules | None = None,
) -> tuple[SamplerState, _Sink, list[dict[str, Any]]]:
    """A fresh state with the journal replayed into it: the state the last session had after
    its last journaled record (its requests in flight included), and the records."""
    sink = _Sink()
    state = SamplerState(cfg, protected, sink, rules, n_inputs=len(inputs))
    if inputs:
        state.add_inputs(inputs)
    try:
        records = store.read_log(out_dir / store.JOURNAL)
    except ValueError as exc:
        raise UserError(f"{exc}; use --overwrite or a fresh --out directory") from None
    for n, rec in enumerate(map(upgrade_record, records)):
        # a `resume` line: the next session forgot what was in flight, as `_restore` does
        state.apply(rec, _still_out(cfg, records[:n]) if rec["event"] == "resume" else ())
    return state, sink, records


def _drive(
    session: _Session, state: SamplerState, journal: store.LogWriter
) -> tuple[DriveResult, dict[str, Any]]:
    """Open the teacher (only when there is work left: requests, or the content-free answers
    of calibration) and drive the state to completion."""
    if state.done and not _calibration_pending(session, state):
        return DriveResult(None, "", 0.0), {}
    if session.cfg.batch_mode:
        from distill.generate.batch import drive_batch

        return asyncio.run(drive_batch(session, state, journal))
    with _quiet_gc():
        return asyncio.run(_drive_async(session, state, journal))


@contextlib.contextmanager
def _quiet_gc(gen0_threshold: int = 50_000):
    """Fewer, cheaper garbage collections while hundreds of requests are in flight.

    Measured at 256 in flight: ~500 collections cost 0.8 s of a 6 s run (more than the whole
    sampler), landing as multi-ms stalls in the event loop. Freezing the objects that exist
    now (imports, the replayed state) keeps collections from rescanning them, and a larger
    gen-0 threshold makes them rarer. Both are restored afterwards.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0_threshold, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


async def _drive_async(
    session: _Session, state: SamplerState, journal: store.LogWriter
) -> tuple[DriveResult, dict[str, Any]]:
    from teachers import open_teacher
    from teachers.errors import TeacherFatalError

    task, teacher_cfg = session.task, session.teacher_cfg
    demos = [(d.input, d.output) for d in task.demonstrations]
    async with contextlib.AsyncExitStack() as stack:
        try:
            teacher = await stack.enter_async_context(
                open_teacher(teacher_cfg, cache_path=session.out_dir / store.CACHE)
            )
        except ValueError as exc:  # a teacher setting the client rejects, e.g. no price known
            raise config_error(exc) from None
        except TeacherFatalError as exc:  # e.g. the embedded model could not start
            raise UserError(f"--teacher: {exc}") from None
        teacher.accounting.spent_before_usd = session.spent_before.get("cost_usd", 0.0)
        label_demos = demos
        if session.cfg.chain_of_thought and session.cfg.resolved_mode != "synthesize":
            rationales = await demo_rationales(
                teacher, task.instruction, task.demonstrations, session.out_dir
            )
            label_demos = cot_demos(demos, rationales)
        progress = _Progress(state, teacher)
        driver = Driver(
            state,
            teacher,
            session.cfg,
            task.instruction,
            demos,
            journal,
            teacher_cfg.max_in_flight,
            on_progress=progress.update,
            label_demos=label_demos,
        )
        try:
            result = await driver.run()
            if result.stopped in (None, "budget") and _calibration_pending(session, state):
                await _ask_content_free(session, driver)
        except TeacherFatalError as exc:
            result = DriveResult("fatal", str(exc), driver.sampler_s)
        finally:
            progress.close()
        return result, teacher.accounting.snapshot()


def _wants_calibration(cfg: GenerateConfig, state: SamplerState) -> bool:
    """Content-free calibration can apply: asked for (content-free or auto), a label set, and
    some example's distribution read from log-probabilities."""
    return (
        cfg.label_calibration != "none"
        and state.labels is not None
        and state.soft_sources["logprobs"] > 0
    )


def _read_calibration(session: _Session) -> dict[str, Any] | None:
    """This run's content-free answers (calibration.json), if they were asked already."""
    path = session.out_dir / store.CALIBRATION
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("fingerprint") == session.fingerprint else None


def _calibration_pending(session: _Session, state: SamplerState) -> bool:
    """Calibration applies and its prior is not known yet: never asked, or asked and every
    answer failed (a budget stop, a server error), which the next run asks again."""
    if not _wants_calibration(session.cfg, state):
        return False
    saved = _read_calibration(session)
    return saved is None or saved.get("prior") is None


async def _ask_content_free(session: _Session, driver: Driver) -> None:
    """Ask the label prompt about each content-free input (greedy, with log-probabilities)
    and keep the answers in calibration.json. A failed request gives no distribution; the
    teacher cache makes a repeat after a crash free."""
    from distill.generate.prompts import label_messages, parse_label
    from distill.generate.rationale import split_rationale
    from distill.generate.soft import label_probs_from_logprobs
    from teachers.errors import BudgetExceeded, RequestFailed

    cfg, labels = session.cfg, driver.state.labels
    assert labels is not None
    answers: list[str | None] = []
    dists: list[dict[str, float] | None] = []
    for i, text in enumerate(CONTENT_FREE_INPUTS):
        messages = label_messages(
            session.task.instruction,
            driver.label_demos,
            text,
            chain_of_thought=cfg.chain_of_thought,
            budget=driver.budget,
            labels=labels.labels,
        )
        try:
            res = await driver.teacher.chat(
                messages,
                temperature=0.0,
                max_tokens=cfg.max_tokens,
                seed=cfg.seed,
                sample_index=i,
                top_logprobs=cfg.resolved_top_logprobs,
            )
        except (RequestFailed, BudgetExceeded):
            answers.append(None)
            dists.append(None)
            continue
        answer_text = res.texts[0]
        parsed = (
            split_rationale(answer_text)[0] if cfg.chain_of_thought else parse_label(answer_text)
        )
        tokens = res.logprobs[0] if res.logprobs else None
        dist = None
        if parsed and tokens:
            dist = label_probs_from_logprobs(
                tokens, answer_text, parsed, labels, last=cfg.chain_of_thought
            )
        answers.append(answer_text)
        dists.append(dist)
    saved = {
        "fingerprint": session.fingerprint,
        "inputs": list(CONTENT_FREE_INPUTS),
        "answers": answers,
        "label_probs": dists,
        "prior": content_free_prior(dists),
    }
    atomic_write_json(session.out_dir / store.CALIBRATION, saved)


def _calibrated(
    session: _Session, state: SamplerState
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The accepted rows as the splits hold them (calibrated where it applies), and the
    manifest's `calibration` block (None without a label set)."""
    if state.labels is None:
        return state.accepted, None
    method = session.cfg.label_calibration
    if method == "none":
        return state.accepted, {"method": "none"}
    block: dict[str, Any] = {"method": method, "inputs": list(CONTENT_FREE_INPUTS)}
    if not _wants_calibration(session.cfg, state):
        return state.accepted, {**block, "applied": False, "why": "no log-probabilities"}
    saved = _read_calibration(session)
    prior = saved.get("prior") if saved else None
    if prior is None:
        why = "content-free answers gave no distribution" if saved else "not asked (stopped)"
        return state.accepted, {**block, "applied": False, "why": why}
    rows, summary = apply_calibration(
        state.accepted, prior, skip=frozenset(state.vote_share_inputs)
    )
    block |= {"prior": prior, **summary}
    if method == "auto":
        applies, before, after = auto_applies(summary, list(state.labels.labels))
        block |= {"evenness_before": round(before, 4), "evenness_after": round(after, 4)}
        if not applies:
            why = (
                f"the calibrated labels are spread less evenly than the teacher's "
                f"(evenness {before:.2f} -> {after:.2f}), so the prior is not what skews them"
            )
            return state.accepted, {**block, "applied": False, "why": why}
    return rows, {**block, "applied": True}


class _Progress:
    """tqdm bar: accepted of target, with rejected, tokens and cost; refreshed at most 4x/s."""

    def __init__(self, state: SamplerState, teacher: Teacher) -> None:
        from tqdm import tqdm

        self.state, self.teacher = state, teacher
        self.bar = tqdm(
            total=state.target,
            initial=len(state.accepted),
            unit="ex",
            desc="accepted",
            dynamic_ncols=True,
            mininterval=0.25,
        )
        self.shown = len(state.accepted)
        self.last = 0.0

    def update(self) -> None:
        n = len(self.state.accepted)
        if n != self.shown:
            self.bar.update(n - self.shown)
            self.shown = n
        now = time.monotonic()
        if now - self.last >= 0.25:
            self.last = now
            acc = self.teacher.accounting
            self.bar.set_postfix(
                rejected=sum(self.state.rejected.values()),
                tokens=acc.prompt_tokens + acc.completion_tokens,
                cost=f"${acc.spent_before_usd + acc.cost_usd:.4f}",  # the run's, all sessions
                refresh=False,
            )

    def close(self) -> None:
        self.bar.close()


def _finish(
    session: _Session, state: SamplerState, result: DriveResult, accounting: dict[str, Any]
) -> Manifest:
    """Write splits and `hf/`, and build the manifest (sessions accumulate across resumes)."""
    task, cfg, teacher_cfg, out_dir = (
        session.task,
        session.cfg,
        session.teacher_cfg,
        session.out_dir,
    )
    rows, calibration = _calibrated(session, state)
    splits = store.write_splits(
        out_dir,
        rows,
        cfg.validation_fraction,
        cfg.seed,
        test_fraction=cfg.test_fraction,
        min_test=cfg.min_test_examples,
    )
    sessions = _ended_sessions(out_dir)
    before = session.spent_before
    wall = time.monotonic() - session.started
    if accounting:
        sessions.append({**accounting, "wall_s": round(wall, 3)})
    return {
        "task": {
            "name": task.name,
            "instruction": task.instruction,
            **({"license": task.license} if task.license else {}),
        },
        "fingerprint": session.fingerprint,
        "complete": len(state.accepted) >= state.target or (result.stopped is None),
        "stopped": result.stopped,
        "message": result.message or _done_message(state),
        "mode": state.mode,
        "votes": state.votes,
        "synth_max_tokens": _synth_max_tokens(task, cfg),
        "settings": dataclasses.asdict(cfg),
        "teacher": {"teacher": teacher_cfg.teacher, "model": teacher_cfg.model},
        "counts": state.counts(),
        "splits": splits,
        # every session's, interrupted ones included: earlier ones + this one
        "tokens": {
            "prompt": before.get("prompt_tokens", 0) + accounting.get("prompt_tokens", 0),
            "completion": before.get("completion_tokens", 0)
            + accounting.get("completion_tokens", 0),
        },
        "cost_usd": round(before.get("cost_usd", 0.0) + accounting.get("cost_usd", 0.0), 6),
        "wall_s": round(wall, 3),
        "sampler_s": round(result.sampler_s, 3),
        "sampler_share_of_wall": round(result.sampler_s / wall, 4) if wall > 0 else 0.0,
        "teacher_accounting": accounting,
        "sessions": sessions,
        "rules": state.rules.describe(),
        **({"soft_labels": soft} if (soft := state.soft_label_counts()) else {}),
        **({"calibration": calibration} if calibration else {}),
        "files": ["examples.jsonl", "rejected.jsonl", *store.SPLIT_FILES, "hf/", store.CARD],
    }


def _done_message(state: SamplerState) -> str:
    n = len(state.accepted)
    if n >= state.target:
        return f"{n} examples accepted (target {state.target})" + _label_set_warning(state)
    return f"inputs exhausted: {n} of {state.target} examples accepted" + _label_set_warning(state)


def _label_set_warning(state: SamplerState) -> str:
    """A warning when an inferred label set rejected many answers: a label may be missing.

    An inferred set is read from the instruction and demonstrations; if it misses a label the
    teacher rightly uses, every such answer is thrown away (once 451 of 1,452 on a sentiment
    task), so more than 10% out-of-set answers are worth the user's look.
    """
    labels, out = state.labels, state.rejected[F.OUT_OF_LABEL_SET]
    if labels is None or labels.source != "inferred" or out <= 0.1 * (len(state.accepted) + out):
        return ""
    return (
        f"; warning: {out} answers were outside the label set inferred from the task "
        f"({', '.join(labels.labels)}): if a label is missing, set `labels` in the task file"
    )

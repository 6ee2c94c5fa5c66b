"""Active rounds on disk: RUN/refine/round-<r>/ and RUN/refine/manifest.json.

A round writes, in order, each step resumable on its own:

    pool.jsonl           the inputs it probes (chosen once; a rerun reads them back)
    predictions.jsonl    the student's answers to them (batched torch decoding)
    journal.jsonl        every teacher answer (label and write-similar), with tokens and cost
    labels.jsonl         the teacher's output (or rejection reason) for each pool input
    disagreements.jsonl  pool inputs where the student's answer differs, with the teacher's
    added.jsonl          what joins training: the disagreements and the accepted new pairs
    rejected.jsonl       write-similar pairs refused, with generate's reason slugs
    data/                train.jsonl (old train + added), validation.jsonl (the same split)
    model/               the retrained student (warm start); moved onto RUN/model if kept
    trained.json         its training metrics, once training finished
    result.json          the round's record (also in RUN/refine/manifest.json)

A finished round (result.json) is never redone; RUN/model is replaced (an atomic rename) only
by a round that raised the validation score.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.files import atomic_write_json, atomic_write_jsonl, read_json_object, replace_dir
from distill.configs import config_error
from distill.errors import UserError
from distill.generate import store
from distill.generate.dedup import LeakGuard, input_key
from distill.generate.filters import check_input
from distill.generate.prompts import Pair, PromptBudget
from distill.generate.vote import normalise_text
from distill.refine.asks import (
    Answer,
    Journal,
    LabelPlan,
    TeacherBudgetStop,
    ask_all,
    check_output,
    parse_similar,
    similar_asks,
)
from distill.refine.config import RefineConfig
from distill.refine.pool import Seen, select_pool

if TYPE_CHECKING:
    from distill.task import TaskSpec
    from teachers.config import TeacherConfig

REFINE_DIR = "refine"
MANIFEST = "manifest.json"
RESULT = "result.json"
TRAINED = "trained.json"


@dataclass
class Context:
    """What every round of one refine run works with."""

    task: TaskSpec
    cfg: RefineConfig
    teacher_cfg: TeacherConfig
    root: Path  # the run directory: data/, model/
    plan: LabelPlan  # generate's label requests and output rules
    pool_inputs: list[str]
    pool_path: str
    protected: list[str]  # test split, --exclude, demonstrations
    metric: str  # train's metric_for_best
    log: Callable[[str], None] = print

    @property
    def rounds(self) -> int:
        return self.cfg.rounds or 0

    def round_dir(self, rnd: int) -> Path:
        return self.root / REFINE_DIR / f"round-{rnd}"


def run_rounds(ctx: Context) -> dict[str, Any]:
    """Rounds 1..R (finished ones read back), stopping by the rule; returns the manifest."""
    records: list[dict[str, Any]] = []
    for rnd in range(1, ctx.rounds + 1):
        done = ctx.round_dir(rnd) / RESULT
        if done.is_file():
            record = read_json_object(done)
            ctx.log(f"refine: round {rnd} already finished ({_summary(record)})")
        else:
            record = run_round(ctx, rnd)
            ctx.log(f"refine: round {rnd}: {_summary(record)}")
        _install(ctx, rnd, record)
        records.append(record)
        _write_manifest(ctx, records)
        if record["stop"]:
            break
    return _write_manifest(ctx, records)


def _summary(record: dict[str, Any]) -> str:
    score = record["score"]
    after = "-" if score["after"] is None else f"{score['after']:.4f}"
    return (
        f"{record['disagreements']} disagreements of {record['pool']['size']}, "
        f"{record['added']['total']} examples added, {score['metric']} "
        f"{score['before']:.4f} -> {after}, {'kept' if record['kept'] else 'not kept'}"
        + (f", stop: {record['stop_reason']}" if record["stop"] else "")
    )


def _install(ctx: Context, rnd: int, record: dict[str, Any]) -> None:
    """Move a kept round's model onto RUN/model (idempotent: a rerun after a kill between
    result.json and the rename finishes the move); drop a discarded one."""
    model = ctx.round_dir(rnd) / "model"
    if not model.is_dir():
        return
    if record["kept"]:
        replace_dir(model, ctx.root / "model")
    else:
        shutil.rmtree(model, ignore_errors=True)


def _write_manifest(ctx: Context, records: list[dict[str, Any]]) -> dict[str, Any]:
    """RUN/refine/manifest.json: settings, every round's record, totals, why it stopped."""
    last = records[-1] if records else None
    stopped = last["stop_reason"] if last and last["stop"] else None
    if stopped is None and len(records) >= ctx.rounds:
        stopped = "rounds_done"
    manifest = {
        "settings": dataclasses.asdict(ctx.cfg),
        "pool_inputs": ctx.pool_path,
        "metric": ctx.metric,
        "rounds_run": len(records),
        "stopped": stopped,
        "model_replaced": any(r["kept"] for r in records),
        "teacher": _totals([r["teacher"]["all"] for r in records]),
        "rounds": records,
    }
    atomic_write_json(ctx.root / REFINE_DIR / MANIFEST, manifest)
    return manifest


def _totals(parts: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("answers", "requests_sent", "prompt_tokens", "completion_tokens", "cost_usd")
    return {
        k: round(sum(p[k] for p in parts), 8) if k == "cost_usd" else sum(p[k] for p in parts)
        for k in keys
    }


# ---------------------------------------------------------------- one round


def run_round(ctx: Context, rnd: int) -> dict[str, Any]:
    """One round from its pool to its result.json; every step reuses what a killed run wrote."""
    rdir = ctx.round_dir(rnd)
    rdir.mkdir(parents=True, exist_ok=True)
    before = model_score(ctx.root / "model", ctx.metric)
    pool, skipped = _pool(ctx, rnd, rdir)
    record: dict[str, Any] = {
        "round": rnd,
        "pool": {"size": len(pool), "skipped": dict(sorted(skipped.items()))},
    }
    if not pool:
        return _close(ctx, rdir, record, before, None, "pool_exhausted")
    preds = _predictions(ctx, rdir, pool)
    outcome = _teacher_phase(ctx, rnd, rdir, pool, preds)
    record.update(outcome.record())
    if not outcome.added:
        return _close(ctx, rdir, record, before, None, "no_disagreements")
    train_rows = _old_train(ctx, rnd) + outcome.added
    data = rdir / "data"
    atomic_write_jsonl(data / "train.jsonl", train_rows)
    for name in ("validation.jsonl", store.MANIFEST):  # the same split; card facts
        if (ctx.root / "data" / name).is_file():
            shutil.copyfile(ctx.root / "data" / name, data / name)
    record["train_examples"] = len(train_rows)
    metrics = _train(ctx, rdir)
    return _close(ctx, rdir, record, before, score_of(metrics, ctx.metric), None)


def _close(
    ctx: Context,
    rdir: Path,
    record: dict[str, Any],
    before: float,
    after: float | None,
    reason: str | None,
) -> dict[str, Any]:
    """Score, decide, write result.json: the round is finished from here on."""
    gain, kept, stop = decide(before, after, ctx.metric, ctx.cfg.min_gain)
    record.setdefault("teacher", {"label": _zero(), "similar": _zero(), "all": _zero()})
    record.setdefault("disagreements", 0)
    record.setdefault("added", {"disagreements": 0, "similar": 0, "total": 0})
    record["score"] = {"metric": ctx.metric, "before": before, "after": after, "gain_points": gain}
    record["kept"] = kept
    record["stop"] = stop or reason is not None
    record["stop_reason"] = reason or ("gain_below_min_gain" if stop else None)
    atomic_write_json(rdir / RESULT, record)
    return record


def _zero() -> dict[str, Any]:
    return {k: 0 for k in ("answers", "requests_sent", "prompt_tokens", "completion_tokens")} | {
        "cost_usd": 0.0
    }


def decide(
    before: float, after: float | None, metric: str, min_gain: float
) -> tuple[float | None, bool, bool]:
    """(gain in points, keep the new model, stop the loop).

    Points are the metric x 100 (exact match and chrF++ are fractions here); for loss the
    gain is the decrease. Kept only when strictly better; stop when the gain is below
    `min_gain` (so a round that helped a little is kept and still ends the loop).
    """
    if after is None:
        return None, False, True
    sign = -1.0 if metric == "loss" else 1.0
    gain = round(100.0 * sign * (after - before), 6)
    return gain, gain > 0, gain < min_gain


def score_of(metrics: dict[str, Any], metric: str) -> float:
    """The best epoch's validation score (metrics.json of a trained student)."""
    value = (metrics.get("best") or {}).get(f"val_{metric}")
    if not isinstance(value, int | float):
        raise UserError(
            f"refine: the student's metrics have no validation {metric} (empty validation split? "
            "refine compares rounds on it: set validation_fraction > 0)"
        )
    return float(value)


def model_score(model_dir: Path, metric: str) -> float:
    """The current student's validation score, from its metrics.json."""
    return score_of(read_json_object(model_dir / "metrics.json"), metric)


def _pool(ctx: Context, rnd: int, rdir: Path) -> tuple[list[str], Counter[str]]:
    """This round's pool: read back when chosen already, else the next unused inputs."""
    path = rdir / "pool.jsonl"
    if path.is_file():
        rows = store.read_log(path)
        return [r["input"] for r in rows[1:]], Counter(rows[0]["skipped"])
    used = {
        input_key(t) for r in range(1, rnd) for t in _read_inputs(ctx.round_dir(r) / "pool.jsonl")
    }
    in_data = {input_key(r["input"]) for r in _data_rows(ctx.root / "data")}
    guard = LeakGuard(ctx.protected, ctx.plan.cfg.near_dup_threshold)
    pool, skipped = select_pool(ctx.pool_inputs, used, guard, in_data, ctx.cfg.pool_size)
    # first line: what was skipped (kept with the pool, so a rerun reports the same counts)
    atomic_write_jsonl(path, [{"skipped": dict(skipped)}, *({"input": t} for t in pool)])
    return pool, skipped


def _read_inputs(path: Path) -> list[str]:
    return [r["input"] for r in store.read_log(path) if "input" in r]


def _data_rows(data: Path) -> list[dict[str, Any]]:
    """Every example of RUN/data's splits."""
    return [r for name in store.SPLIT_FILES for r in store.read_log(data / name)]


def _old_train(ctx: Context, rnd: int) -> list[dict[str, Any]]:
    """The training set the current model learnt: the last round's, else RUN/data's."""
    prev = ctx.round_dir(rnd - 1) / "data" / "train.jsonl"
    return store.read_log(prev if rnd > 1 and prev.is_file() else ctx.root / "data" / "train.jsonl")


def _predictions(ctx: Context, rdir: Path, pool: list[str]) -> list[str]:
    """The current student's answers to the pool (greedy, batched torch decoding)."""
    path = rdir / "predictions.jsonl"
    if path.is_file():
        return [r["prediction"] for r in store.read_log(path)]
    from students.predict import TorchPredictor

    ctx.log(f"refine: the student answers {len(pool)} pool inputs")
    preds = TorchPredictor(ctx.root / "model").generate(pool)
    atomic_write_jsonl(
        path, [{"input": t, "prediction": p} for t, p in zip(pool, preds, strict=True)]
    )
    return preds


def _train(ctx: Context, rdir: Path) -> dict[str, Any]:
    """Retrain from RUN/model's weights on round-<r>/data (train.stages, not a copy of it)."""
    from distill.stages.train import train_model

    marker = rdir / TRAINED
    if marker.is_file():
        return read_json_object(marker)
    cfg = round_train_config(ctx.root / "model", ctx.cfg, resume=_has_checkpoint(rdir / "model"))
    ctx.log(f"refine: retraining from {ctx.root / 'model'} ({cfg.epochs} epochs)")
    metrics = train_model(ctx.task, cfg, rdir / "data", rdir / "model", data_flag="--out")
    atomic_write_json(marker, metrics)
    return metrics


def _has_checkpoint(model_dir: Path) -> bool:
    return (model_dir / "checkpoints" / "last" / "trainer_state.json").is_file()


def round_train_config(model_dir: Path, cfg: RefineConfig, *, resume: bool) -> Any:
    """The settings that trained `model_dir` (its metrics.json), warm-started from it: the
    student is that directory, and the round's epochs and step floor replace the originals."""
    from students.config import TrainConfig

    settings = read_json_object(model_dir / "metrics.json").get("settings", {})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        base = TrainConfig(**{k: v for k, v in settings.items() if k in known})
    except (TypeError, ValueError) as exc:
        raise config_error(exc, where=str(model_dir / "metrics.json")) from None
    return dataclasses.replace(
        base,
        student=str(model_dir),
        epochs=cfg.round_epochs,
        min_steps=cfg.round_min_steps,
        resume=resume,
        keep_checkpoints=False,
    )


# ---------------------------------------------------------------- the teacher's part


@dataclass
class Outcome:
    """What the teacher's answers made of one round."""

    labels: dict[str, tuple[str | None, str | None]]  # input -> (output, rejection reason)
    disagreements: list[Pair]
    agreements: int
    similar: list[dict[str, Any]]  # accepted new pairs
    rejected: list[dict[str, Any]]  # refused new pairs, with reason
    journal: Journal
    label_requests: int
    similar_requests: int

    @property
    def added(self) -> list[dict[str, Any]]:
        return [{"input": i, "output": o} for i, o in self.disagreements] + self.similar

    def record(self) -> dict[str, Any]:
        label_rejected = Counter(why for out, why in self.labels.values() if out is None)
        journal = self.journal
        return {
            "teacher": {
                "label": {"requests": self.label_requests, **journal.sent("label:")},
                "similar": {"requests": self.similar_requests, **journal.sent("similar:")},
                "all": journal.sent(),
            },
            "teacher_labels": {
                "accepted": sum(out is not None for out, _ in self.labels.values()),
                "rejected_by_reason": dict(sorted(label_rejected.items())),
            },
            "agreements": self.agreements,
            "disagreements": len(self.disagreements),
            "added": {
                "disagreements": len(self.disagreements),
                "similar": len(self.similar),
                "total": len(self.added),
            },
            "similar_rejected_by_reason": dict(
                sorted(Counter(r["reason"] for r in self.rejected).items())
            ),
        }


def _teacher_phase(
    ctx: Context, rnd: int, rdir: Path, pool: list[str], preds: list[str]
) -> Outcome:
    """Label the pool, find the disagreements, ask for similar examples, judge them; write
    the round's labels, disagreements, added and rejected files."""
    from tqdm import tqdm

    bar = tqdm(desc=f"round {rnd}: teacher", unit="req", dynamic_ncols=True, mininterval=0.25)
    try:
        outcome = asyncio.run(_ask_teacher(ctx, rnd, rdir, pool, preds, bar))
    except TeacherBudgetStop as exc:
        raise UserError(
            f"refine: stopped at the teacher budget ({exc}); every answer is kept in "
            f"{rdir / 'journal.jsonl'}: raise --budget-usd and rerun the same command"
        ) from None
    finally:
        bar.close()
    atomic_write_jsonl(
        rdir / "labels.jsonl",
        [{"input": t, "output": o, "reason": why} for t, (o, why) in outcome.labels.items()],
    )
    atomic_write_jsonl(
        rdir / "disagreements.jsonl",
        [
            {"input": i, "output": o, "prediction": preds[pool.index(i)]}
            for i, o in outcome.disagreements
        ],
    )
    atomic_write_jsonl(rdir / "added.jsonl", outcome.added)
    atomic_write_jsonl(rdir / "rejected.jsonl", outcome.rejected)
    return outcome


async def _ask_teacher(
    ctx: Context, rnd: int, rdir: Path, pool: list[str], preds: list[str], bar: Any
) -> Outcome:
    """Both request kinds through one teacher session (cache: RUN/data's, shared with generate)."""
    async with _open(ctx) as teacher:
        plan, journal = ctx.plan, Journal(rdir / "journal.jsonl")
        budget = PromptBudget(teacher.context_length, plan.cfg.max_tokens)
        per_input = [plan.asks(input_key(t), t, p, rnd, budget) for p, t in enumerate(pool)]
        flat = [a for asks in per_input for a in asks]
        bar.total = len(flat)
        got = await ask_all(teacher, flat, journal, plan.cfg, lambda: bar.update(1))
        labels = {
            t: plan.decide(t, [got.get(a.id, Answer(None)) for a in asks])
            for t, asks in zip(pool, per_input, strict=True)
        }
        wrong = disagreements(pool, preds, labels, plan)
        room = PromptBudget(teacher.context_length, ctx.cfg.similar_max_tokens)
        seeds_asks = similar_asks(
            plan, wrong, ctx.cfg.seeds_per_request, ctx.cfg.similar_per_request, rnd, room
        )
        bar.total += len(seeds_asks)
        bar.refresh()
        answers = await ask_all(teacher, seeds_asks, journal, plan.cfg, lambda: bar.update(1))
    seen = Seen.build(ctx.protected, _known_inputs(ctx, rnd, pool), plan.cfg.near_dup_threshold)
    accepted, rejected = judge_similar(
        [answers.get(a.id, Answer(None)) for a in seeds_asks], seen, plan
    )
    agreements = sum(out is not None for out, _ in labels.values()) - len(wrong)
    return Outcome(
        labels, wrong, agreements, accepted, rejected, journal, len(flat), len(seeds_asks)
    )


@contextlib.asynccontextmanager
async def _open(ctx: Context):
    """The teacher, with RUN/data's request cache; its start-up errors as one-line errors."""
    from teachers import open_teacher
    from teachers.errors import TeacherFatalError

    cache = ctx.root / "data" / store.CACHE
    try:
        async with open_teacher(ctx.teacher_cfg, cache_path=cache) as teacher:
            yield teacher
    except ValueError as exc:
        raise config_error(exc) from None
    except TeacherFatalError as exc:
        raise UserError(f"--teacher: {exc}") from None


def _known_inputs(ctx: Context, rnd: int, pool: list[str]) -> list[str]:
    """Inputs new pairs may not repeat: RUN/data's splits, earlier rounds' additions, this
    round's pool (a write-similar answer that copies its seed is a duplicate)."""
    known = [r["input"] for r in _data_rows(ctx.root / "data")]
    for r in range(1, rnd):
        known += _read_inputs(ctx.round_dir(r) / "added.jsonl")
    return known + pool


def disagreements(
    pool: list[str],
    preds: list[str],
    labels: dict[str, tuple[str | None, str | None]],
    plan: LabelPlan,
) -> list[Pair]:
    """(input, teacher's output) where the student's normalised answer differs from the
    teacher's; inputs the teacher gave no valid output for are left out (no reference)."""
    out = []
    for text, pred in zip(pool, preds, strict=True):
        teacher, _ = labels[text]
        if teacher is not None and not same_answer(pred, teacher, plan):
            out.append((text, teacher))
    return out


def same_answer(pred: str, teacher: str, plan: LabelPlan) -> bool:
    """Equal after generate's normalisation (NFKC, whitespace; case when the vote ignores it),
    or the same label of the label set."""
    labels = plan.rules.label_set
    if labels is not None:
        return labels.canonical(pred.strip()) == teacher
    lower = plan.cfg.lowercase_outputs
    return normalise_text(pred, lowercase=lower) == normalise_text(teacher, lowercase=lower)


def judge_similar(
    answers: list[Answer], seen: Seen, plan: LabelPlan
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Accepted and rejected new pairs: generate's input and output checks (label set, format,
    date), then dedup against the data and the leak guard. Outputs keep the teacher's written
    label, as LLM2LLM does (see docs/refine.md)."""
    accepted, rejected = [], []
    for n, answer in enumerate(answers):
        pairs, reason = parse_similar(answer)
        if reason is not None:
            rejected.append({"request": n, "reason": reason})
        for inp, out in pairs:
            row = {"input": inp, "output": out, "request": n}
            why = check_input(inp, plan.cfg.max_input_chars)
            if why is None:
                out, why = check_output(out, inp, plan.cfg, plan.rules)
            why = why or seen.reason(inp)
            if why is not None:
                rejected.append({**row, "reason": why})
                continue
            seen.add(inp)
            accepted.append({"input": inp, "output": out})
    return accepted, rejected

"""Fine-tune a student: a plain training loop on Hugging Face Accelerate.

Why a plain loop and not Seq2SeqTrainer: we need our own length-grouped batch sampler with a
per-epoch order that resume can replay (skip the batches already done), validation that decodes
with the marker tokenizer for exact match and chrF++, a best-checkpoint rule with early stopping,
and LoRA merged on save. In a loop each of these is a few lines; in Trainer each is a callback or
subclass. Accelerate still gives us DDP (`accelerate launch` / `torchrun`), bf16/fp16 and
save_state/load_state (model, optimizer, scheduler and RNG states) on the same code path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypedDict

from common.copy_decoding import MIN_SPAN_SHARE, rewrite_as_written, span_share
from common.files import replace_dir
from common.meta import META_FILE, StudentMeta, format_source, read_meta, write_meta
from common.metrics import chrf, exact_match, is_label_set
from students.config import TrainConfig
from students.data import (
    EpochBatches,
    LengthPlan,
    attach_probs,
    collate,
    drop_unsure,
    label_list,
    mix_sources,
    model_inputs,
    parse_source_spec,
    plan_lengths,
    read_examples,
    tokenize_pairs,
    truncate,
)
from students.ema import make_ema
from students.markers import tokenizer_has_markers
from students.modelcard import model_card
from students.predict import generate_texts
from students.presets import (
    checkpoint_parameters,
    load_student,
    new_parameters,
    num_parameters,
    preset_for,
    resolve_student,
)
from students.rationale import (
    RATIONALE_PREFIX,
    answer_prefix,
    attach_rationales,
    multitask_loss,
    token_cross_entropy,
)
from students.soft_labels import SoftLabels, label_token_ids, soft_label_loss

CHECKPOINTS = "checkpoints"

# EncoderDecoderModel warns on every step that it builds decoder inputs from the labels, which
# is exactly what we rely on (labels carry no leading start token): not actionable, so hidden.
warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)


def train_student(
    cfg: TrainConfig,
    train_path: Path,
    val_path: Path | None,
    out_dir: Path,
    *,
    instruction: str,
    task_name: str,
    card: dict | None = None,
    labels: list[str] | None = None,
) -> dict:
    """Train, validate each epoch, keep the best epoch and save it to `out_dir`; return metrics.

    `labels`: the data's closed label set (the generate manifest's), kept in distill.json for
    label-set decoding when `cfg.label_decoding` and every output is one of them."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    out_dir = Path(out_dir)
    acc = Accelerator(
        mixed_precision=_mixed_precision(cfg.precision),
        gradient_accumulation_steps=cfg.grad_accum,
        cpu=_multi_cpu(),
    )
    run = _Run(cfg, acc, out_dir, instruction)
    run.prepare_data(Path(train_path), Path(val_path) if val_path else None, labels)
    run.build()
    run.loop()
    metrics = run.finish(task_name, card or {})
    acc.wait_for_everyone()
    return metrics


def _multi_cpu() -> bool:
    """Several processes (torchrun / accelerate launch) and no GPU: Accelerate must be told to
    use CPU DDP (gloo), or each process silently trains its own copy as process 0 of 1."""
    import torch

    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _mixed_precision(precision: str) -> str:
    import torch

    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if precision in ("bf16", "fp16") and not torch.cuda.is_available():
        raise ValueError(f"precision: {precision} needs a GPU; use fp32 (or auto) on a CPU")
    return {"fp32": "no"}.get(precision, precision)


class TrainerState(TypedDict):
    """Our counters beside accelerate's checkpoint (trainer_state.json): where to resume."""

    epoch: int  # epochs finished
    step_in_epoch: int  # optimizer steps done in the current epoch (skipped on resume)
    global_step: int
    history: list[dict[str, Any]]  # one row per epoch: epoch, train_loss, val_* metrics
    best: float | None  # best score of metric_for_best so far (negated loss)
    best_loss: float | None  # that epoch's validation loss (breaks a tie in the score)
    metric: str | None  # the resolved metric_for_best that `best` is a score of
    best_epoch: int | None
    bad_epochs: int  # epochs since the best (early stopping)


class _Run:
    """One training run's state; methods are the phases of `train_student`."""

    def __init__(self, cfg: TrainConfig, acc: Any, out_dir: Path, instruction: str) -> None:
        preset = preset_for(cfg.student)
        self.cfg, self.acc, self.out_dir, self.instruction = cfg, acc, out_dir, instruction
        self.lr = cfg.lr or preset.lr
        self.template = cfg.source_template or preset.source_template
        self.prefix = answer_prefix(cfg.rationale_weight)  # the answer task's source prefix
        self.min_steps = preset.min_steps if cfg.min_steps is None else cfg.min_steps
        self.batch_size = cfg.batch_size or preset.batch_size
        self.cap_source = cfg.max_source_length or preset.max_source_length
        self.cap_target = cfg.max_target_length or preset.max_target_length
        self.source = resolve_student(cfg.student)
        self.model, self.tokenizer = load_student(self.source, cfg.student)
        self.ckpt_dir = out_dir / CHECKPOINTS
        self.state: TrainerState = {
            "epoch": 0,
            "step_in_epoch": 0,
            "global_step": 0,
            "history": [],
            "best": None,
            "best_loss": None,
            "metric": None,
            "best_epoch": None,
            "bad_epochs": 0,
        }

    # ---- data -------------------------------------------------------------------------------
    def prepare_data(
        self, train_path: Path, val_path: Path | None, labels: list[str] | None = None
    ) -> None:
        """Read, mix, format, tokenise and truncate; count truncation and round-trip failures;
        decide the label set distill.json keeps."""
        cfg, tok = self.cfg, self.tokenizer
        extras = [(read_examples(p), w) for p, w in map(parse_source_spec, cfg.extra_data)]
        rows = mix_sources(read_examples(train_path), extras, cfg.seed)
        self.n_extra = len(rows) - len(read_examples(train_path))
        rows, self.n_unsure = self._confident(rows)
        self.val_rows = read_examples(val_path) if val_path else []
        outputs = [r["output"] for r in rows + self.val_rows]
        labels = labels or self._warm_start_labels()
        self.labels = decoding_labels(labels, outputs) if cfg.label_decoding else []
        pairs = [(r["input"], r["output"]) for r in rows + self.val_rows]
        self.span_share = span_share(pairs)
        self.copy_input = copy_input(cfg.copy_decoding, self.span_share, bool(self.labels))
        self.as_written = 0
        if self.copy_input and cfg.copy_as_written:
            rows, n_train = rewrite_as_written(rows)
            self.val_rows, n_val = rewrite_as_written(self.val_rows)
            self.as_written = n_train + n_val
        self.metric_key = best_metric(cfg.metric_for_best, [r["output"] for r in self.val_rows])
        self.eos = _eos_id(self.model, tok)
        prompt_len = self._prompt_len(self.prefix)
        src, tgt = self._tokenize(rows)
        if cfg.max_source_length is None:
            # The preset's cap is room for the input; a long instruction must not eat it all.
            self.cap_source = max(self.cap_source, prompt_len + self.cap_source // 2)
            encoder_cfg = getattr(self.model.config, "encoder", self.model.config)
            limit = getattr(encoder_cfg, "max_position_embeddings", None)  # None for T5
            self.cap_source = min(self.cap_source, limit) if limit else self.cap_source
        self.plan = plan_lengths(src, tgt, self.cap_source, self.cap_target, prompt_len)
        self.train = truncate(src, tgt, self.plan)
        self.val = truncate(*self._tokenize(self.val_rows), self.plan) if self.val_rows else []
        self.n_train = len(rows)
        self.not_roundtrip = _count_not_roundtrip(tok, [r["output"] for r in rows])
        self.soft = self._soft_labels(rows)
        self.n_rationale, self.rationale_plan = self._rationales(rows)

    def _warm_start_labels(self) -> list[str]:
        """The label set of a student directory this run starts from (a refine round retrains
        RUN/model on data without a generate manifest); [] for a preset or hub student."""
        source = Path(self.source)
        return read_meta(source).labels if (source / META_FILE).is_file() else []

    def _confident(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """`min_label_prob`: the rows whose teacher distribution backs their label enough, and
        how many were dropped (students.data.drop_unsure)."""
        p = self.cfg.min_label_prob
        if not p:
            return rows, 0
        if not any(r.get("label_probs") for r in rows):
            raise ValueError(
                "min_label_prob: no training example carries `label_probs` (generate them "
                "with --top-logprobs, or --votes > 1, on a task with a label set), or set it to 0"
            )
        kept, dropped = drop_unsure(rows, p)
        if not kept:
            raise ValueError(
                f"min_label_prob: all {dropped} training examples fall below {p}; lower it"
            )
        return kept, dropped

    def _prompt_len(self, prefix: str) -> int:
        """Tokens of a source with an empty input: the task prefix, template and instruction."""
        source = format_source(self.template, self.instruction, "", prefix)
        return len(self.tokenizer(source)["input_ids"])

    def _rationales(self, rows: list[dict[str, Any]]) -> tuple[int, LengthPlan | None]:
        """When `rationale_weight` > 0, give each training example whose row has a rationale
        its rationale-task row (students.rationale), sources cut at the answers' source cap
        and targets at `rationale_max_target_length`; (rows with one, their length plan)."""
        if not self.cfg.rationale_weight:
            return 0, None
        where = [i for i, r in enumerate(rows) if "rationale" in r]
        if not where:
            raise ValueError(
                "rationale_weight: no training example carries a `rationale`; generate the "
                "data with `distill generate --chain-of-thought`, or set it to 0"
            )
        sources = [
            format_source(self.template, self.instruction, rows[i]["input"], RATIONALE_PREFIX)
            for i in where
        ]
        targets = [rows[i]["rationale"] for i in where]
        src, tgt = tokenize_pairs(self.tokenizer, sources, targets, self.eos)
        cap_target = self.cfg.rationale_max_target_length
        plan = plan_lengths(
            src, tgt, self.cap_source, cap_target, self._prompt_len(RATIONALE_PREFIX)
        )
        attach_rationales(self.train, truncate(src, tgt, plan), where)
        return len(where), plan

    def _soft_labels(self, rows: list[dict[str, Any]]) -> SoftLabels | None:
        """The soft-label setup when `soft_label_weight` > 0: the label list the rows'
        `label_probs` name, tokenised like targets, and each example's distribution."""
        cfg = self.cfg
        if not cfg.soft_label_weight:
            return None
        labels = label_list(rows)
        if len(labels) < 2:
            raise ValueError(
                "soft_label_weight: no training example carries `label_probs` over two or more "
                "labels (generate them with --top-logprobs, or --votes > 1, on a task with a "
                "label set), or set it to 0"
            )
        self.n_soft = attach_probs(self.train, rows, labels)
        # cut at the target cap, not the data's longest target: a label no train target
        # shows may be longer than every one that does
        ids = label_token_ids(self.tokenizer, labels, self.eos, self.cap_target)
        return SoftLabels(tuple(labels), ids, cfg.soft_label_weight, cfg.soft_label_temperature)

    def _source(self, text: str) -> str:
        """The answer task's source for a raw input: what the saved model reads at inference."""
        return format_source(self.template, self.instruction, text, self.prefix)

    def _tokenize(self, rows: list[dict[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
        sources = [self._source(r["input"]) for r in rows]
        return tokenize_pairs(self.tokenizer, sources, [r["output"] for r in rows], self.eos)

    # ---- model, optimiser, resume -----------------------------------------------------------
    def build(self) -> None:
        """LoRA wrap, data loader, AdamW + linear schedule, accelerate.prepare, resume."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        cfg = self.cfg
        self.params_total = num_parameters(self.model)
        self.params_checkpoint = checkpoint_parameters(
            self.source if isinstance(self.source, Path) else None
        )
        _freeze_unused_pooler(self.model)
        if cfg.lora_r:
            self.model = _wrap_lora(self.model, cfg.lora_r, cfg.lora_alpha or 2 * cfg.lora_r)
        self.sampler = EpochBatches(
            [len(e.source) for e in self.train], self.batch_size, cfg.seed, cfg.group_by_length
        )
        pad = self.tokenizer.pad_token_id
        loader = torch.utils.data.DataLoader(
            self.train, batch_sampler=self.sampler, collate_fn=lambda b: collate(b, pad)
        )
        self.steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
        self.epochs = planned_epochs(cfg.epochs, self.min_steps, self.steps_per_epoch)
        total = self.steps_per_epoch * self.epochs
        new = new_parameters(self.source) if cfg.new_lr_scale != 1.0 else ()
        groups = _param_groups(self.model, cfg.weight_decay, self.lr, new, cfg.new_lr_scale)
        opt = torch.optim.AdamW(groups, lr=self.lr)
        sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
        self.model, self.opt, self.loader, self.sched = self.acc.prepare(
            self.model, opt, loader, sched
        )
        self.ema = None
        if cfg.ema_decay:
            # registered before a resume loads the checkpoint, so the average comes back too
            self.ema = make_ema(self.acc.unwrap_model(self.model), cfg.ema_decay)
            self.acc.register_for_checkpointing(self.ema)
        if cfg.resume:
            self._resume()

    def _resume(self) -> None:
        last = self.ckpt_dir / "last"
        if not (last / "trainer_state.json").is_file():
            raise FileNotFoundError(
                f"{last}: no checkpoint to resume from (train without --resume)"
            )
        if self.ema is not None and not any(last.glob("custom_checkpoint_*")):
            raise ValueError(
                f"{last}: this checkpoint holds no weight average (its run had ema_decay 0); "
                "resume with the settings it started with"
            )
        self.acc.load_state(str(last))
        self.state = TrainerState(**json.loads((last / "trainer_state.json").read_text()))
        # the best so far is a score of the metric the run started with: keep comparing on it
        # (a checkpoint from before the metric was recorded keeps today's resolution)
        self.metric_key = self.state.get("metric") or self.metric_key

    # ---- training ---------------------------------------------------------------------------
    def loop(self) -> None:
        """Epochs with per-epoch validation, checkpoints and early stopping."""
        while self.state["epoch"] < self.epochs and not self._stopped():
            self._train_epoch()
            self._end_epoch()

    def _stopped(self) -> bool:
        """Early stop: `patience` epochs without improvement, once the step floor is done."""
        if self.state["global_step"] < self.min_steps:
            return False
        return bool(self.cfg.patience) and self.state["bad_epochs"] >= self.cfg.patience

    def _train_epoch(self) -> None:
        import torch
        from tqdm.auto import tqdm

        epoch, skip = self.state["epoch"], self.state["step_in_epoch"] * self.cfg.grad_accum
        self.sampler.epoch = epoch  # the batch order of this epoch (replayed on resume)
        loader = self.acc.skip_first_batches(self.loader, skip) if skip else self.loader
        bar = tqdm(
            total=len(self.loader),
            initial=skip,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="batch",
            disable=not self.acc.is_local_main_process,
            dynamic_ncols=True,
        )
        self.model.train()
        seen, start, running = 0, time.perf_counter(), None
        self.soft_kl_sum, self.soft_batches = 0.0, 0
        self.answer_sum, self.answer_batches = 0.0, 0
        self.rationale_sum, self.rationale_batches = 0.0, 0
        # Starting to iterate a DataLoader draws a seed from torch's global RNG. The run being
        # resumed made that draw before its checkpoint, so a resumed epoch undoes its own draw
        # (or every dropout mask after the resume point would shift).
        rng = torch.get_rng_state() if skip else None
        for batch in loader:
            if rng is not None:
                torch.set_rng_state(rng)
                rng = None
            loss = self._step(batch)
            running = loss if running is None else 0.9 * running + 0.1 * loss
            seen += batch["input_ids"].shape[0] * self.acc.num_processes
            bar.update(1)
            bar.set_postfix(
                loss=f"{running:.4f}", samples_s=f"{seen / (time.perf_counter() - start):.1f}"
            )
        bar.close()
        self.epoch_train_loss = running

    def _step(self, batch: dict[str, Any]) -> float:
        with self.acc.accumulate(self.model):
            loss = self._loss(batch)
            self.acc.backward(loss)
            if self.acc.sync_gradients and self.cfg.max_grad_norm:
                self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad()
        if self.acc.sync_gradients:
            if self.ema is not None:
                self.ema.update_parameters(self.acc.unwrap_model(self.model))
            self.state["global_step"] += 1
            self.state["step_in_epoch"] += 1
            every = self.cfg.checkpoint_every
            if every and self.state["global_step"] % every == 0:
                self._checkpoint()
        return float(loss.detach())

    def _loss(self, batch: dict[str, Any]) -> Any:
        """The answer rows' loss; with rationales, mixed with the rationale rows' token
        cross-entropy as (1 - W) * answer + W * rationale (students.rationale)."""
        answer = self._answer_loss(batch)
        weight = self.cfg.rationale_weight
        if not weight:
            return answer
        total, rationale = multitask_loss(
            answer, self.model, batch, weight, self.cfg.label_smoothing
        )
        self.answer_sum += float(answer.detach())
        self.answer_batches += 1
        if rationale is not None:
            self.rationale_sum += float(rationale.detach())
            self.rationale_batches += 1
        return total

    def _answer_loss(self, batch: dict[str, Any]) -> Any:
        """The model's token cross-entropy, or the same with label smoothing; plus the
        soft-label term for a batch with teacher distributions (students.soft_labels)."""
        if self.soft is not None and "soft_mask" in batch:
            encoder = self.acc.unwrap_model(self.model).get_encoder()
            total, _, kl = soft_label_loss(
                self.model, encoder, batch, self.soft, self.cfg.label_smoothing
            )
            self.soft_kl_sum += float(kl.detach())
            self.soft_batches += 1
            return total
        return token_cross_entropy(self.model, model_inputs(batch), self.cfg.label_smoothing)

    def _end_epoch(self) -> None:
        metrics = {"epoch": self.state["epoch"] + 1, "train_loss": self.epoch_train_loss}
        if self.soft is not None and self.soft_batches:
            # mean distillation term (T^2 * KL) over this epoch's batches with soft rows
            metrics["train_soft_kl"] = self.soft_kl_sum / self.soft_batches
        if self.answer_batches:
            # mean answer loss over this epoch's batches, mean rationale CE over those with
            # rationale rows (the running train_loss mixes the two)
            metrics["train_answer_loss"] = self.answer_sum / self.answer_batches
            if self.rationale_batches:
                metrics["train_rationale_ce"] = self.rationale_sum / self.rationale_batches
        metrics.update(self.validate())
        self.state["history"].append(metrics)
        self.state["epoch"] += 1
        self.state["step_in_epoch"] = 0
        self._track_best(metrics)
        self._checkpoint()

    def _track_best(self, metrics: dict[str, Any]) -> None:
        """Best by `metric_for_best` as resolved (`best_metric`), an equal score going to the
        lower validation loss (no validation: the latest epoch is the best)."""
        key = self.metric_key
        score, loss = metrics.get(f"val_{key}"), metrics.get("val_loss")
        if score is not None and key == "loss":
            score = -score
        if is_better(score, loss, self.state["best"], self.state.get("best_loss")):
            self.state["best"], self.state["best_epoch"], self.state["bad_epochs"] = (
                score,
                metrics["epoch"],
                0,
            )
            self.state["best_loss"], self.state["metric"] = loss, key
            self._save_best()
        else:
            self.state["bad_epochs"] += 1

    def validate(self) -> dict[str, Any]:
        """Teacher-forced loss over the validation split, then greedy EM and chrF++ on a sample.

        Sharded across processes (rank r takes rows r, r + world, ...) and gathered, so every
        rank gets the same numbers (and makes the same best-epoch decision) for 1/world of
        the work.
        """
        import torch
        from accelerate.utils import gather_object

        if not self.val:
            return {}
        model = self._evaluated()
        model.eval()
        rank, world = self.acc.process_index, self.acc.num_processes
        shard = self.val[rank::world]
        sums = torch.zeros(2, dtype=torch.float64, device=self.acc.device)  # (loss sum, rows)
        with torch.inference_mode():
            for start in range(0, len(shard), self.batch_size):
                chunk = shard[start : start + self.batch_size]
                batch = collate(chunk, self.tokenizer.pad_token_id)
                batch = {k: v.to(self.acc.device) for k, v in batch.items()}
                with self.acc.autocast():
                    sums[0] += float(model(**model_inputs(batch)).loss) * len(chunk)
                sums[1] += len(chunk)
        total, count = self.acc.reduce(sums, reduction="sum").tolist()
        rows = self.val_rows[: self.cfg.max_eval_examples][rank::world]
        preds = self._decode(model, [r["input"] for r in rows]) if rows else []
        pairs = gather_object(list(zip(preds, [r["output"] for r in rows], strict=True)))
        self.model.train()
        preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
        return {
            "val_loss": total / count,
            "val_exact_match": exact_match(preds, refs),
            "val_chrf": chrf(preds, refs),
        }

    def _evaluated(self) -> Any:
        """The weights validation scores and the best epoch keeps: the moving average with
        `ema_decay`, else the model being trained."""
        return self.ema.module if self.ema is not None else self.acc.unwrap_model(self.model)

    def _decode(self, model: Any, inputs: list[str]) -> list[str]:
        """Greedy outputs for validation, copy-decoded when the saved student will be (so the
        best epoch is the best under the decoding it ships with)."""
        sources = [self._source(t) for t in inputs]
        return generate_texts(
            model,
            self.tokenizer,
            sources,
            max_source_length=self.plan.max_source_length,
            max_new_tokens=self.plan.max_target_length,
            batch_size=self.batch_size,
            copy_from=inputs if self.copy_input else None,
        )

    # ---- checkpoints ------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """model + optimizer + scheduler + RNG (accelerate) and our counters, swapped in atomically."""
        tmp = self.ckpt_dir / ".last.tmp"
        if self.acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        # every rank creates tmp in save_state: none may before rank 0 has cleared it, or the
        # rmtree deletes the directory a faster rank is writing its RNG file into
        self.acc.wait_for_everyone()
        self.acc.save_state(str(tmp), safe_serialization=False)
        self.acc.wait_for_everyone()  # every rank's RNG file is in tmp before rank 0 moves it
        if self.acc.is_main_process:
            (tmp / "trainer_state.json").write_text(json.dumps(self.state, indent=2))
            replace_dir(tmp, self.ckpt_dir / "last")
        self.acc.wait_for_everyone()

    def _save_best(self) -> None:
        import torch

        if self.acc.is_main_process:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            if self.ema is not None:
                state = self.ema.module.state_dict()
            else:
                state = self.acc.get_state_dict(self.model)
            tmp = self.ckpt_dir / ".best.pt.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.ckpt_dir / "best.pt")

    # ---- final artefacts --------------------------------------------------------------------
    def finish(self, task_name: str, card: dict) -> dict:
        """Load the best weights, merge LoRA, write the model dir; return the metrics.

        Two barriers: every rank waits until rank 0 has written best.pt, and rank 0 deletes
        the checkpoints only after every rank has loaded it.
        """
        import torch

        self.acc.wait_for_everyone()
        model = self.acc.unwrap_model(self.model)
        best = self.ckpt_dir / "best.pt"
        if best.is_file():
            model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
        self.acc.wait_for_everyone()
        if self.cfg.lora_r:
            model = model.merge_and_unload()
        metrics = self._metrics()
        if self.acc.is_main_process:
            self._write_model_dir(model, task_name, card, metrics)
            if not self.cfg.keep_checkpoints:
                shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        self.final_model = model  # what every rank ends with (tests compare them)
        return metrics

    def _metrics(self) -> dict[str, Any]:
        best_epoch = self.state["best_epoch"]
        best = next((h for h in self.state["history"] if h["epoch"] == best_epoch), {})
        return {
            "student": self.cfg.student,
            "num_parameters": self.params_total,
            "checkpoint_parameters": self.params_checkpoint,
            "train_examples": self.n_train,
            "extra_examples": self.n_extra,
            "train_examples_dropped_unsure": self.n_unsure,
            "validation_examples": len(self.val),
            "epochs_run": self.state["epoch"],
            "epochs_planned": self.epochs,
            "global_steps": self.state["global_step"],
            "early_stopped": self._stopped() and self.state["epoch"] < self.epochs,
            "best_epoch": best_epoch,
            "best": best,
            "history": self.state["history"],
            "lengths": asdict(self.plan),
            "targets_not_roundtrip": self.not_roundtrip,
            "soft_labels": self._soft_metrics(),
            "rationale": self._rationale_metrics(),
            "decoding_labels": self.labels,
            "copy_decoding": {
                "span_share": round(self.span_share, 4),
                "on": self.copy_input,
                "as_written": self.as_written,
            },
            "settings": {
                **asdict(self.cfg),
                # the metric that picked the best epoch ("auto" resolved; refine compares on it)
                "metric_for_best": self.metric_key,
                "lr": self.lr,
                "batch_size": self.batch_size,
                "source_template": self.template,
                "min_steps": self.min_steps,
            },
        }

    def _soft_metrics(self) -> dict[str, Any] | None:
        if self.soft is None:
            return None
        return {
            "labels": list(self.soft.labels),
            "train_examples_with_probs": self.n_soft,
            "weight": self.soft.weight,
            "temperature": self.soft.temperature,
        }

    def _rationale_metrics(self) -> dict[str, Any] | None:
        if self.rationale_plan is None:
            return None
        return {
            "weight": self.cfg.rationale_weight,
            "train_examples_with_rationale": self.n_rationale,
            "answer_prefix": self.prefix,
            "rationale_prefix": RATIONALE_PREFIX,
            "lengths": asdict(self.rationale_plan),
        }

    def _write_model_dir(self, model: Any, task_name: str, card: dict, metrics: dict) -> None:
        tmp = self.out_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        _fix_tokenizer_config(tmp)
        cfg = model.config
        meta = StudentMeta(
            task_name=task_name,
            instruction=self.instruction,
            source_template=self.template,
            max_source_length=self.plan.max_source_length,
            max_target_length=self.plan.max_target_length,
            max_new_tokens=self.plan.max_target_length,
            decoder_start_token_id=int(cfg.decoder_start_token_id),
            pad_token_id=int(self.tokenizer.pad_token_id),
            eos_token_id=int(self.eos),
            lowercase_input=False,  # the tokenizer.json normaliser handles case itself
            case_markers=tokenizer_has_markers(self.tokenizer),
            model_type=cfg.model_type,
            student=self.cfg.student,
            num_parameters=self.params_total,
            task_prefix=self.prefix,
            labels=self.labels,
            copy_input=self.copy_input,
        )
        write_meta(tmp, meta)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / "README.md").write_text(model_card(task_name, self.instruction, meta, metrics, card))
        for item in tmp.iterdir():  # each file lands atomically; checkpoints/ stays untouched
            os.replace(item, self.out_dir / item.name)
        tmp.rmdir()


def copy_input(setting: str, share: float, has_labels: bool) -> bool:
    """Whether the student copy-decodes (common.copy_decoding): `on`, or `auto` with at least
    MIN_SPAN_SHARE of its outputs spans of their inputs; never with a label set, whose own
    decoding already holds every answer to a label."""
    if has_labels or setting == "off":
        return False
    if setting == "auto" and share < MIN_SPAN_SHARE:
        return False
    print(f"copy decoding on: {share:.0%} of the training outputs are spans of their inputs")
    return True


def decoding_labels(labels: list[str], outputs: list[str]) -> list[str]:
    """The label set to decode in: `labels` when every output is one of them (after stripping),
    else none. Data mixed with other sources or edited by hand may answer outside the set, and
    a student held to the set could then never give those answers."""
    known = {x.strip() for x in labels}
    outside = sorted({o.strip() for o in outputs} - known)
    if labels and outside:
        print(
            f"label decoding off: {len(outside)} training output(s) outside the label set "
            f"(e.g. {outside[0][:40]!r}); the student decodes freely"
        )
        return []
    return list(labels)


def _eos_id(model: Any, tokenizer: Any) -> int:
    eos = model.generation_config.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    eos = eos if eos is not None else tokenizer.eos_token_id
    if eos is None:
        raise ValueError("student: the model defines no eos_token_id")
    return int(eos)


def _count_not_roundtrip(tokenizer: Any, texts: list[str]) -> int:
    """Targets whose encode -> decode differs (accents, [UNK], unusual whitespace)."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    back = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return sum(a != b for a, b in zip(texts, back, strict=True))


def _fix_tokenizer_config(model_dir: Path) -> None:
    """Make transformers load tokenizer.json verbatim and never re-space punctuation."""
    path = model_dir / "tokenizer_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    config["clean_up_tokenization_spaces"] = False
    if config.get("tokenizer_class") in (
        None,
        "TokenizersBackend",
        "BertTokenizer",
        "BertTokenizerFast",
    ):
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2) + "\n")


def _freeze_unused_pooler(model: Any) -> None:
    """A BERT encoder's pooler gets no gradient in seq2seq; DDP fails on unused parameters."""
    pooler = getattr(getattr(model, "encoder", None), "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)


def best_metric(requested: str, references: list[str]) -> str:
    """The validation metric that picks the best epoch: `requested`, or for "auto" exact match
    when the references form a label set (`common.metrics.is_label_set`), chrF++ otherwise.

    On a label set chrF++ gives partial credit to a label outside the set ("add_music" for
    "add_to_playlist"), so it can prefer an undertrained epoch that writes such labels; exact
    match is what the task is scored in. No validation rows: chrF++ (nothing is compared)."""
    if requested != "auto":
        return requested
    return "exact_match" if references and is_label_set(references) else "chrf"


def is_better(
    score: float | None, loss: float | None, best: float | None, best_loss: float | None
) -> bool:
    """Whether an epoch (`score`, higher is better; its validation `loss`) replaces the best so
    far. An equal score goes to the lower loss: on a small validation split exact match ties
    often (51 rows move it in steps of 2 points), and the lower loss is the better-fitted model.
    No score (no validation) or no best yet: the epoch replaces it."""
    if score is None or best is None:
        return True
    if score != best:
        return score > best
    return loss is not None and best_loss is not None and loss < best_loss


def planned_epochs(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """`epochs`, or more when that many epochs would make fewer than `min_steps` steps."""
    return max(epochs, math.ceil(min_steps / max(steps_per_epoch, 1)))


def _param_groups(
    model: Any,
    weight_decay: float,
    lr: float,
    new_parameters: tuple[str, ...] = (),
    new_lr_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and norms (standard for transformers); names
    containing a fragment of `new_parameters` (freshly initialised) learn at `lr * new_lr_scale`."""
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            no_decay = p.ndim < 2 or "norm" in name.lower()
            is_new = any(fragment in name for fragment in new_parameters)
            groups.setdefault((no_decay, is_new), []).append(p)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else weight_decay,
            "lr": lr * new_lr_scale if is_new else lr,
        }
        for (no_decay, is_new), params in sorted(groups.items())
    ]


def _wrap_lora(model: Any, r: int, alpha: int) -> Any:
    """LoRA on every linear layer except the output head (peft's 'all-linear')."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.05,
        target_modules="all-linear",
    )
    return get_peft_model(model, config)

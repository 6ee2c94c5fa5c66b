"""Training data: reading and mixing sources, text-to-text formatting, lengths, batching.

Batches use dynamic padding (pad to the longest in the batch) over length-grouped batches:
indices are shuffled, cut into mega-batches of 50 batches, sorted by length inside each, and the
resulting batches shuffled again, so each batch holds similar lengths but the order stays random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.jsonl import check_row, read_jsonl

IGNORE_INDEX = -100  # label positions the loss skips (padding)


def read_examples(path: Path) -> list[dict[str, Any]]:
    """Rows with string `input` and `output` from a JSONL file or a `datasets` save dir.

    A bad file is a UserError naming the file and line (the same check as every JSONL the
    user hands to distill); `label_probs` (the teacher's distribution over a label set, from
    `distill generate`) and `rationale` (the teacher's reasoning, from `distill generate
    --chain-of-thought`) are kept and checked; other fields of a row are dropped.
    """
    if path.is_dir():
        return _read_datasets_dir(path)
    return [_pair(row, f"{path}:{n}") for n, row in enumerate(read_jsonl(path), start=1)]


def _pair(row: dict[str, Any], where: str) -> dict[str, Any]:
    pair = {"input": row["input"], "output": row["output"]}
    if row.get("label_probs") is not None:
        pair["label_probs"] = check_label_probs(row["label_probs"], where)
    if rationale := check_rationale(row.get("rationale"), where):
        pair["rationale"] = rationale
    return pair


def check_rationale(value: Any, where: str) -> str | None:
    """A row's `rationale`: the string, or None when absent, null or blank (an Arrow copy
    fills rows without one); any other type is a UserError naming `where`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UserError(f"{where}: field 'rationale' must be a string (got {value!r:.40})")
    return value if value.strip() else None


def check_label_probs(value: Any, where: str) -> dict[str, float]:
    """`value` as {label: probability}: non-empty, numbers >= 0 that sum to 1 (within 1e-4,
    what a rounded file may hold); else a UserError naming `where`."""
    ok = isinstance(value, dict) and value and all(isinstance(k, str) for k in value)
    probs = value if ok else {}
    if not ok or not all(_is_prob(v) for v in probs.values()):
        raise UserError(f"{where}: field 'label_probs' must map labels to numbers in [0, 1]")
    total = sum(probs.values())
    if abs(total - 1.0) > 1e-4:
        raise UserError(f"{where}: field 'label_probs' must sum to 1 (got {total:.6f})")
    return {k: float(v) for k, v in probs.items()}


def _is_prob(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _read_datasets_dir(path: Path) -> list[dict[str, str]]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if "train" not in ds:
            raise ValueError(f"{path}: datasets dir has no 'train' split (has {list(ds)})")
        ds = ds["train"]
    rows = [
        _pair(_hf_row(check_row(f"{path} row {i}", r, ("input", "output"))), f"{path} row {i}")
        for i, r in enumerate(ds)
    ]
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def _hf_row(row: dict[str, Any]) -> dict[str, Any]:
    """An Arrow row's `label_probs` (a list of {label, prob}, empty: none) as a dict."""
    items = row.get("label_probs")
    if isinstance(items, list):
        row = {**row, "label_probs": {x["label"]: x["prob"] for x in items} or None}
    return row


def parse_source_spec(spec: str) -> tuple[Path, float]:
    """`PATH[:WEIGHT]` -> (path, weight); weight 1.0 when absent."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:
            return Path(spec), 1.0  # a colon inside the path
        if weight <= 0:
            raise ValueError(f"extra_data: weight must be > 0 (got {spec!r})")
        return Path(head), weight
    return Path(spec), 1.0


def mix_sources(
    main: list[dict[str, str]], extras: Sequence[tuple[list[dict[str, str]], float]], seed: int
) -> list[dict[str, str]]:
    """The main rows plus each extra source scaled by its weight (deterministic per seed).

    Weight w takes floor(w) full copies plus a random share (w - floor(w)) of the rows, so 0.5
    uses half a source and 2 repeats it twice.
    """
    rng = random.Random(seed)
    mixed = list(main)
    for rows, weight in extras:
        whole, frac = int(weight), weight - int(weight)
        mixed += rows * whole
        mixed += rng.sample(rows, round(frac * len(rows)))
    return mixed


@dataclass
class Encoded:
    """Token ids of one example: source with the tokenizer's specials, target ending in eos;
    `probs`: the teacher's distribution over the run's label list (soft labels), if any;
    `rationale`: the same example's rationale-task row (students.rationale), if any."""

    source: list[int]
    target: list[int]
    probs: list[float] | None = None
    rationale: Encoded | None = None


def label_list(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The labels the rows' `label_probs` name, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row.get("label_probs") or {}))
    return list(seen)


def drop_unsure(
    rows: Sequence[dict[str, Any]], min_prob: float
) -> tuple[list[dict[str, Any]], int]:
    """(the rows whose `label_probs` give their `output` at least `min_prob`, how many were
    dropped). A row without `label_probs` is kept: there is no evidence against it. An output
    the distribution does not name has probability 0."""
    if min_prob <= 0:
        return list(rows), 0
    kept = [
        r
        for r in rows
        if not r.get("label_probs") or float(r["label_probs"].get(r["output"], 0.0)) >= min_prob
    ]
    return kept, len(rows) - len(kept)


def attach_probs(
    encoded: list[Encoded], rows: Sequence[dict[str, Any]], labels: Sequence[str]
) -> int:
    """Set each example's `probs` over `labels` (a label its row does not name: 0); returns
    how many examples carry one."""
    n = 0
    for enc, row in zip(encoded, rows, strict=True):
        probs = row.get("label_probs")
        if probs:
            enc.probs = [float(probs.get(x, 0.0)) for x in labels]
            n += 1
    return n


@dataclass
class LengthPlan:
    """Chosen truncation lengths and what they cost."""

    max_source_length: int
    max_target_length: int
    source_truncated: int
    target_truncated: int
    source_stats: dict[str, int]
    target_stats: dict[str, int]


def _stats(lengths: list[int]) -> dict[str, int]:
    ordered = sorted(lengths)
    pick = lambda q: ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]  # noqa: E731
    return {"min": ordered[0], "p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1]}


def tokenize_pairs(
    tokenizer: Any, sources: list[str], targets: list[str], eos_id: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Untruncated ids; targets carry no leading start token (the model shifts right itself)."""
    src = tokenizer(sources, add_special_tokens=True)["input_ids"]
    tgt = tokenizer(targets, add_special_tokens=False)["input_ids"]
    return src, [[*t, eos_id] for t in tgt]


def plan_lengths(
    src: list[list[int]], tgt: list[list[int]], cap_source: int, cap_target: int, prompt_len: int
) -> LengthPlan:
    """Lengths = the data's longest, capped; a cap that cannot hold the prompt is an error."""
    if cap_source <= prompt_len:
        raise ValueError(
            f"max_source_length: {cap_source} tokens leaves no room for the input; the prompt "
            f"(template + instruction) alone is {prompt_len} tokens"
        )
    s_len, t_len = [len(x) for x in src], [len(x) for x in tgt]
    max_s, max_t = min(cap_source, max(s_len)), min(cap_target, max(t_len))
    return LengthPlan(
        max_s,
        max_t,
        sum(n > max_s for n in s_len),
        sum(n > max_t for n in t_len),
        _stats(s_len),
        _stats(t_len),
    )


def truncate(src: list[list[int]], tgt: list[list[int]], plan: LengthPlan) -> list[Encoded]:
    """Cut sources and targets to the plan, keeping each sequence's final special/eos token."""
    out = []
    for s, t in zip(src, tgt, strict=True):
        if len(s) > plan.max_source_length:
            s = s[: plan.max_source_length - 1] + s[-1:]
        if len(t) > plan.max_target_length:
            t = t[: plan.max_target_length - 1] + t[-1:]
        out.append(Encoded(s, t))
    return out


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, group: bool = True
) -> list[list[int]]:
    """Index batches for one epoch; similar lengths together when `group` (see module doc)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        mega = batch_size * 50
        order = [
            i
            for start in range(0, len(order), mega)
            for i in sorted(order[start : start + mega], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group:
        rng.shuffle(batches)
    return batches


class EpochBatches:
    """A batch sampler whose order depends on (seed, epoch): reproducible and resumable."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: bool) -> None:
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.epoch = 0

    def __iter__(self) -> Iterator[list[int]]:
        yield from length_grouped_batches(
            self.lengths, self.batch_size, self.seed + self.epoch, self.group
        )

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def collate(examples: list[Encoded], pad_id: int) -> dict[str, Any]:
    """Pad to the longest in the batch: input_ids/attention_mask (B, S), labels (B, T); when
    an example carries soft labels, also label_probs (B, L) and soft_mask (B,) (rows without
    a distribution: zeros, mask False); when R > 0 examples carry a rationale row, also
    rationale_input_ids/rationale_attention_mask (R, S') and rationale_labels (R, T'), those
    rows padded among themselves. `model_inputs` drops all of these before a forward."""
    batch = _pad(examples, pad_id)
    width = next((len(e.probs) for e in examples if e.probs is not None), 0)
    if width:
        import torch

        batch["label_probs"] = torch.tensor(
            [e.probs if e.probs is not None else [0.0] * width for e in examples],
            dtype=torch.float32,
        )
        batch["soft_mask"] = torch.tensor([e.probs is not None for e in examples])
    rationales = [e.rationale for e in examples if e.rationale is not None]
    if rationales:
        batch.update({RATIONALE_KEY + k: v for k, v in _pad(rationales, pad_id).items()})
    return batch


def _pad(examples: list[Encoded], pad_id: int) -> dict[str, Any]:
    """input_ids/attention_mask (B, S) padded with `pad_id`, labels (B, T) with IGNORE_INDEX."""
    import torch

    s_max = max(len(e.source) for e in examples)
    t_max = max(len(e.target) for e in examples)
    ids = torch.full((len(examples), s_max), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), s_max), dtype=torch.long)
    labels = torch.full((len(examples), t_max), IGNORE_INDEX, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.source)] = torch.tensor(e.source)
        mask[i, : len(e.source)] = 1
        labels[i, : len(e.target)] = torch.tensor(e.target)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


SOFT_KEYS = ("label_probs", "soft_mask")
RATIONALE_KEY = "rationale_"  # prefix of the rationale rows' tensors in a batch


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's answer rows alone (no soft-label or rationale tensors): what the model's
    forward accepts."""
    return {
        k: v for k, v in batch.items() if k not in SOFT_KEYS and not k.startswith(RATIONALE_KEY)
    }


def rationale_inputs(batch: dict[str, Any]) -> dict[str, Any] | None:
    """The batch's rationale rows as model inputs (input_ids, attention_mask, labels), or
    None when no example of the batch carries one."""
    rows = {k[len(RATIONALE_KEY) :]: v for k, v in batch.items() if k.startswith(RATIONALE_KEY)}
    return rows or None

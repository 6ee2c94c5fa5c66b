"""Rationale distillation ("Distilling step-by-step", Hsieh et al. 2023): multi-task training
on the teacher's answers and its reasoning, with task prefixes.

With `rationale_weight` W > 0 every training example becomes an answer row

    "[label] " + source -> output

and, when the teacher wrote a rationale for it (`distill generate --chain-of-thought`), a
rationale row

    "[rationale] " + source -> rationale

and one optimizer step's loss is

    (1 - W) * CE_answer + W * CE_rationale

where each CE is the token cross-entropy averaged over all target tokens of that task's rows in
the batch (what a Hugging Face seq2seq model returns as `.loss` for those rows alone, as in the
paper's code). A batch none of whose examples has a rationale has no rationale term: its loss is
(1 - W) * CE_answer, so the answer task weighs the same in every batch, with or without
rationale rows; renormalising would give answer-only batches more pull than mixed ones.

Batching: each batch carries both rows of the same examples (the sampler draws examples, the
collator adds their rationale rows as a second padded block), and the two blocks go through the
model as two forward passes before one backward. Why: the formula then holds exactly at every
step, not only in expectation over a schedule of separate answer and rationale batches; the
sampler, steps per epoch, `min_steps` and resume stay as they are (they count examples); and
answer rows (a few tokens) are not padded to rationale length (up to
`rationale_max_target_length`), which one concatenated forward would need. The cost: a step
with batch size B runs up to 2B sequences, the extra B with long targets.

Only the answer task is validated (early stopping and the best epoch use it), and the model dir
records the answer prefix (`distill.json`'s `task_prefix`) so every runtime puts "[label] " in
front of its inputs (common.meta.format_source): the model never emits a rationale at inference,
and serving costs what a plain student's does.
"""

from __future__ import annotations

from typing import Any

from students.data import IGNORE_INDEX, Encoded, rationale_inputs

ANSWER_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "


def answer_prefix(weight: float) -> str:
    """The answer task's source prefix: "[label] " when rationales are trained, else none
    (a plain student's sources are exactly what they were before this feature)."""
    return ANSWER_PREFIX if weight > 0 else ""


def attach_rationales(encoded: list[Encoded], rows: list[Encoded], where: list[int]) -> None:
    """Give example `where[k]` of `encoded` its rationale row `rows[k]`."""
    for index, row in zip(where, rows, strict=True):
        encoded[index].rationale = row


def token_cross_entropy(model: Any, inputs: dict[str, Any], label_smoothing: float = 0.0) -> Any:
    """Mean token cross-entropy of `inputs`' labels (IGNORE_INDEX skipped): the model's own
    loss, or the same with label smoothing."""
    import torch.nn.functional as F

    out = model(**inputs)
    if not label_smoothing:
        return out.loss
    logits = out.logits  # (batch, target_len, vocab)
    return F.cross_entropy(
        logits.flatten(0, 1).float(),
        inputs["labels"].flatten(),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )


def multitask_loss(
    answer_loss: Any,
    model: Any,
    batch: dict[str, Any],
    weight: float,
    label_smoothing: float = 0.0,
) -> tuple[Any, Any | None]:
    """(total, CE_rationale or None): (1 - weight) * `answer_loss` + weight * the token
    cross-entropy of the batch's rationale rows (module doc), the second term absent when the
    batch has none. `answer_loss` is the answer rows' loss, computed by the caller (plain CE,
    or CE plus the soft-label term)."""
    rows = rationale_inputs(batch)
    if rows is None:
        return (1 - weight) * answer_loss, None
    rationale = token_cross_entropy(model, rows, label_smoothing)
    return (1 - weight) * answer_loss + weight * rationale, rationale

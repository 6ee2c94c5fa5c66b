"""Soft-label distillation over a closed label set, and the student's own label distribution.

The student's score of label l for an input x is the log-probability of l's whole token
sequence (its tokens, then the end token), teacher-forced:

    s_l(x) = sum_t log p(y_t = l_t | l_<t, x)

and its distribution over the label set at temperature T is softmax(s / T). Training adds

    soft_label_weight * T^2 * KL(teacher_T || student_T)

to the token cross-entropy of the target string, where teacher_T = softmax(log p_teacher / T)
(labels the teacher gives 0 stay 0, and add nothing to the KL); T^2 keeps the gradient's scale
as T changes (Hinton et al. 2015). The KL is averaged over the rows of the batch that carry a
distribution.

Cost: the encoder runs once; the decoder runs once over the batch's targets and each soft row's
L label sequences together (one forward and backward of B + K*L rows, K rows with a
distribution): (1 + L) times the decoder rows of plain imitation, each as short as a label, and
nothing more when the weight is 0. On a classification task, whose targets are a few tokens and
inputs tens of tokens, the encoder is most of a step and the extra rows a fraction of it; not
timed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from students.data import IGNORE_INDEX


@dataclass(frozen=True)
class SoftLabels:
    """The label set a run's soft labels range over, tokenised like targets, and the settings."""

    labels: tuple[str, ...]
    label_ids: tuple[tuple[int, ...], ...]  # each label's target ids, end token included
    weight: float
    temperature: float


def label_token_ids(
    tokenizer: Any, labels: Sequence[str], eos_id: int, max_len: int | None = None
) -> tuple[tuple[int, ...], ...]:
    """Each label's ids exactly as a target string of that label is tokenised (students.data
    `tokenize_pairs`: no start token, end token appended), cut like targets to `max_len`."""
    ids = tokenizer(list(labels), add_special_tokens=False)["input_ids"]
    out = []
    for seq in ids:
        seq = [*seq, eos_id]
        if max_len is not None and len(seq) > max_len:
            seq = seq[: max_len - 1] + seq[-1:]
        out.append(tuple(seq))
    return tuple(out)


def pad_ids(seqs: Sequence[Sequence[int]], width: int) -> Any:
    """(len(seqs), width) long tensor, right-padded with IGNORE_INDEX."""
    import torch

    out = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def sequence_log_probs(logits: Any, labels: Any) -> Any:
    """Sum of the log-probabilities of each row's label tokens (IGNORE_INDEX skipped).

    logits (N, T, V), labels (N, T) -> (N,)
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    keep = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, T)
    return (picked * keep).sum(-1)


def distill_kl(scores: Any, teacher: Any, temperature: float) -> Any:
    """T^2 * mean over rows of KL(softmax(log teacher / T) || softmax(scores / T)).

    scores (K, L) student label scores; teacher (K, L) probabilities (rows sum to 1).
    """
    import torch

    log_q = torch.log_softmax(scores.float() / temperature, dim=-1)
    log_p = torch.log(teacher.float()) / temperature  # -inf where the teacher gives 0
    p = torch.softmax(log_p, dim=-1)
    kl = (torch.xlogy(p, p) - p * log_q).sum(-1)  # 0 * log 0 = 0
    return temperature**2 * kl.mean()


def label_scores(
    model: Any,
    encoder: Any,
    input_ids: Any,
    attention_mask: Any,
    label_ids: Sequence[Sequence[int]],
) -> Any:
    """The student's score of every label for every input: (B, L) sums of log-probabilities.

    One encoder pass; one decoder pass over the B * L (input, label) rows.
    """
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask)[0]  # (B, S, H)
    n = len(label_ids)
    cand = pad_ids(label_ids, max(len(x) for x in label_ids)).to(input_ids.device)  # (L, T)
    rows = cand.repeat(input_ids.shape[0], 1)  # (B * L, T): input 0's labels, then input 1's
    out = model(
        encoder_outputs=(hidden.repeat_interleave(n, 0),),
        attention_mask=attention_mask.repeat_interleave(n, 0),
        labels=rows,
    )
    return sequence_log_probs(out.logits, rows).view(-1, n)


def soft_label_loss(
    model: Any,
    encoder: Any,
    batch: dict[str, Any],
    soft: SoftLabels,
    label_smoothing: float = 0.0,
) -> tuple[Any, Any, Any]:
    """(total, token cross-entropy, distillation term) of one batch (module doc).

    The encoder runs once; its states are repeated for the label rows, and one decoder pass
    scores the targets and every soft row's labels together.
    """
    import torch
    import torch.nn.functional as F

    ids, mask, targets = batch["input_ids"], batch["attention_mask"], batch["labels"]
    rows = batch["soft_mask"].nonzero().squeeze(-1)  # (K,) rows with a distribution
    k, n, b = rows.numel(), len(soft.label_ids), ids.shape[0]
    hidden = encoder(input_ids=ids, attention_mask=mask)[0]  # (B, S, H)
    cand = pad_ids(soft.label_ids, max(len(x) for x in soft.label_ids)).to(ids.device)
    width = max(targets.shape[1], cand.shape[1])
    dec = torch.cat([_widen(targets, width), _widen(cand, width).repeat(k, 1)])  # (B + K*L, W)
    out = model(
        encoder_outputs=(torch.cat([hidden, hidden[rows].repeat_interleave(n, 0)]),),
        attention_mask=torch.cat([mask, mask[rows].repeat_interleave(n, 0)]),
        labels=dec,
    )
    logits = out.logits  # (B + K*L, W, V)
    ce = F.cross_entropy(
        logits[:b].flatten(0, 1).float(),
        dec[:b].flatten(),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )
    if k == 0:
        return ce, ce, ce.new_zeros(())
    scores = sequence_log_probs(logits[b:], dec[b:]).view(k, n)  # (K, L)
    kl = distill_kl(scores, batch["label_probs"][rows], soft.temperature)
    return ce + soft.weight * kl, ce, kl


def _widen(labels: Any, width: int) -> Any:
    """Right-pad (N, T) label ids with IGNORE_INDEX to (N, width)."""
    import torch.nn.functional as F

    return F.pad(labels, (0, width - labels.shape[1]), value=IGNORE_INDEX)


__all__ = [
    "SoftLabels",
    "distill_kl",
    "label_scores",
    "label_token_ids",
    "sequence_log_probs",
    "soft_label_loss",
]

"""An exponential moving average of the student's weights (Polyak averaging).

Why: with a few hundred teacher labels, the weights after any one epoch carry that epoch's
noise, and the best epoch is picked on a small validation split; an average over the last
hundred-odd optimizer steps is smoother and often generalises better. torch's own
`AveragedModel` keeps the copy (and its update count, which checkpoints save and resume
restores); only the decay schedule is ours.
"""

from __future__ import annotations

from typing import Any


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay used for the update after `updates` earlier ones: min(decay, (1 + n) / (10 + n)).

    The warm-up keeps the first steps' weights (a fresh cross-attention, far from where
    training goes) from dominating a short run: the average follows the model closely at
    first and settles at `decay` (about 1 / (1 - decay) steps of memory) later."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


def make_ema(model: Any, decay: float) -> Any:
    """A `torch.optim.swa_utils.AveragedModel` of `model` that moves each parameter by
    (1 - d) toward the model's, d = `ema_decay_at(decay, n)`. Buffers are not averaged
    (the student's are constant position and token-type ids)."""
    from torch.optim.swa_utils import AveragedModel

    def avg_fn(averaged: Any, current: Any, num_averaged: Any) -> Any:
        d = ema_decay_at(decay, int(num_averaged))
        return averaged + (1.0 - d) * (current - averaged)

    ema = AveragedModel(model, avg_fn=avg_fn)
    ema.eval()
    return ema

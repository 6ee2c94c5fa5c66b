"""Temperature annealing: low temperature while the pool is small, higher as it fills.

Early on, a cool teacher writes examples close to the demonstrations (on-task, well-formed);
once the pool holds many of those, diversity matters more than safety, so the temperature rises
toward `end` as the accepted count approaches the target (Prompt2Model's annealing).
"""

from __future__ import annotations

import math


def temperature_at(
    accepted: int, target: int, start: float, end: float, kind: str = "linear"
) -> float:
    """Temperature for the next request given `accepted` of `target` examples so far.

    `linear`: start + (end - start) * p with p = accepted / target clipped to [0, 1];
    `cosine`: the same ends, slow at both ends (p' = (1 - cos(pi * p)) / 2);
    `constant`: always `start`. Rounded to 4 decimals so that request bodies (and so the request
    cache keys) do not depend on float noise.
    """
    if target <= 0:
        raise ValueError(f"target: must be > 0 (got {target})")
    p = min(max(accepted / target, 0.0), 1.0)
    if kind == "linear":
        frac = p
    elif kind == "cosine":
        frac = (1.0 - math.cos(math.pi * p)) / 2.0
    elif kind == "constant":
        frac = 0.0
    else:
        raise ValueError(f"schedule: unknown kind {kind!r} (use linear, cosine or constant)")
    return round(start + (end - start) * frac, 4)

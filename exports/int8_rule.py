"""The int8 quality gate's decision rule: a pure function of counts, exact at any sample size.

Each gate input is scored as *possibly worse* under int8 when int8's greedy output differs from
fp32's and either there is no reference (worst case: every change is a loss; int8-vs-fp32
agreement needs no labels, so the gate can run on training inputs too) or fp32 matched the
reference. An input where both miss the reference, or where only int8 hits it, cannot lower
exact match. The share of possibly-worse inputs therefore bounds from above the exact-match drop
int8 causes on these inputs.

int8 ships only when the one-sided 95% exact binomial (Clopper-Pearson) upper bound on that
share is at most `max_drop` (in points): non-inferiority, decided with the sample size in view.
Too few inputs give a wide bound and keep fp32 (fail closed): with no possibly-worse input the
bound is 1 - 0.05**(1/n), so 5 points need at least 59 inputs; one flip in 29 inputs (the
3.45-point "drop" that once discarded a good int8 model) has a bound of 15.3 points, and one
in 300 of 1.6 points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

CONFIDENCE = 0.95


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (stable for n in the thousands)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a rate seen k times in n.

    The p at which seeing k or fewer has probability 1 - confidence; found by bisection
    (the CDF falls monotonically in p). 1.0 when n == 0: no evidence bounds nothing.
    """
    if not 0 <= k <= n:
        raise ValueError(f"k: must be in [0, n] (got k={k}, n={n})")
    if n == 0 or k == n:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if binom_cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def rows_needed(max_drop: float, confidence: float = CONFIDENCE) -> int:
    """Fewest inputs with no possibly-worse one that can pass a `max_drop`-point gate."""
    share = max_drop / 100.0
    if share <= 0.0:
        return 0  # unreachable: a zero tolerance never passes
    if share >= 1.0:
        return 1
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-share))


def possibly_worse(fp32: str, int8: str, reference: str | None) -> bool:
    """Could int8's output on this input lower exact match? (see the module docstring)."""
    if int8.strip() == fp32.strip():
        return False
    return reference is None or fp32.strip() == reference.strip()


@dataclass(frozen=True)
class GateDecision:
    """The rule's numbers, as written to export_report.json."""

    n: int
    possibly_worse: int
    upper_bound_points: float
    max_drop_points: float
    rows_needed_if_none_worse: int
    passed: bool
    rule: str = (
        "int8 passes when the one-sided 95% exact binomial upper bound on the share of inputs "
        "where int8 may be worse than fp32 (output changed, and fp32 matched the reference or "
        "there is none) is at most max_quality_drop points"
    )

    def as_dict(self) -> dict:
        return asdict(self)


def decide(
    fp32: list[str], int8: list[str], references: list[str | None], max_drop: float
) -> GateDecision:
    """Apply the rule to paired outputs (references may be None: inputs without labels)."""
    if not len(fp32) == len(int8) == len(references):
        raise ValueError("fp32, int8 and references must have one entry per input")
    n = len(fp32)
    worse = sum(possibly_worse(a, b, r) for a, b, r in zip(fp32, int8, references, strict=True))
    bound = 100.0 * upper_bound(worse, n)
    return GateDecision(
        n=n,
        possibly_worse=worse,
        upper_bound_points=round(bound, 3),
        max_drop_points=max_drop,
        rows_needed_if_none_worse=rows_needed(max_drop),
        passed=n > 0 and bound <= max_drop,
    )

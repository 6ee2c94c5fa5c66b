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

Free-text tasks are scored with chrF++, where "any change is a loss" is far too strict (a
date-resolution student changed 14% of its outputs under int8 and lost 1.1 chrF++ points on the
rows with references; the exact-match rule's bound was 15.9 points). For them the rule is
`decide_chrf`: the one-sided 95% paired-bootstrap upper bound on the corpus chrF++ drop from fp32
to int8, in points, must be at most `max_drop`. An input without a reference takes fp32's own
output as its reference (the worst case again: any change costs what it changes). `choose_metric`
picks the rule from the references: a closed label set (`common.metrics.is_label_set`, at most
`LABEL_SET_MAX` distinct references, each twice on average) is exact match, anything else chrF++.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from common.metrics import is_label_set

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
EM_RULE = (
    "int8 passes when the one-sided 95% exact binomial upper bound on the share of inputs "
    "where int8 may be worse than fp32 (output changed, and fp32 matched the reference or "
    "there is none) is at most max_quality_drop points"
)
CHRF_RULE = (
    "int8 passes when the one-sided 95% paired-bootstrap upper bound on the corpus chrF++ drop "
    "from fp32 to int8 (inputs without a reference scored against fp32's output) is at most "
    "max_quality_drop points, on at least rows_needed_if_none_worse inputs"
)


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
    metric: str = "exact_match"
    mean_drop_points: float | None = None  # chrF++ rule: the observed corpus drop
    rule: str = EM_RULE

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


def choose_metric(references: list[str | None], requested: str = "auto") -> str:
    """The rule's metric: `requested`, or for "auto" exact match on a closed label set.

    A classification task's references take a handful of values; a free-text task's are nearly
    all distinct. Without any reference "auto" keeps exact match, the stricter rule.
    """
    if requested != "auto":
        return requested
    return "exact_match" if is_label_set(references) else "chrf"


def chrf_drop_bound(
    fp32: list[str], int8: list[str], references: list[str], *, seed: int = 0
) -> tuple[float, float]:
    """(observed, one-sided 95% paired-bootstrap upper bound) corpus chrF++ drop, in points.

    Rows are resampled together for both precisions (paired), so the bound reflects only the
    inputs where int8 changed the output; the seed makes the verdict reproducible.
    """
    import numpy as np

    from common.metrics import chrf_from_statistics, chrf_metric, chrf_statistics

    metric = chrf_metric()
    a = np.asarray(chrf_statistics(fp32, references), dtype=np.int64)
    b = np.asarray(chrf_statistics(int8, references), dtype=np.int64)
    n = len(references)

    def drop(weights: np.ndarray) -> float:
        ta, tb = (weights @ a).tolist(), (weights @ b).tolist()
        return 100.0 * (chrf_from_statistics(ta, metric) - chrf_from_statistics(tb, metric))

    observed = drop(np.ones(n, dtype=np.int64))
    if (a == b).all():
        return observed, observed
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=BOOTSTRAP_RESAMPLES)
    drops = np.sort([drop(w) for w in counts])
    return observed, float(np.quantile(drops, CONFIDENCE))


def decide_chrf(
    fp32: list[str], int8: list[str], references: list[str | None], max_drop: float
) -> GateDecision:
    """The chrF++ rule on paired outputs; an input without a reference uses fp32's output."""
    if not len(fp32) == len(int8) == len(references):
        raise ValueError("fp32, int8 and references must have one entry per input")
    n = len(fp32)
    refs = [f if r is None else r for f, r in zip(fp32, references, strict=True)]
    observed, bound = chrf_drop_bound(fp32, int8, refs) if n else (0.0, 100.0)
    changed = sum(a.strip() != b.strip() for a, b in zip(fp32, int8, strict=True))
    needed = rows_needed(max_drop)
    return GateDecision(
        n=n,
        possibly_worse=changed,
        upper_bound_points=round(bound, 3),
        max_drop_points=max_drop,
        rows_needed_if_none_worse=needed,
        passed=n >= needed and bound <= max_drop,
        metric="chrf",
        mean_drop_points=round(observed, 3),
        rule=CHRF_RULE,
    )

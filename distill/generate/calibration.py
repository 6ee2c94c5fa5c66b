"""Contextual calibration of the teacher's labels ("Calibrate Before Use", Zhao et al. 2021).

A few-shot teacher favours some labels whatever the input says: the embedded 0.5B teacher
answered `search_creative_work` for 171 of 493 real SNIPS requests (78 are), and
`search_screening_event` for 8 (72 are). Part of that bias belongs to the prompt, not to the
input, and it can be measured: ask the same label prompt about inputs that say nothing
(`CONTENT_FREE_INPUTS`), read the teacher's distribution over the labels from the answer's
log-probabilities, and average it into `prior`. An example's distribution divided by `prior`
(renormalised) is the calibrated one, and its argmax the calibrated label.

Measured (benchmarks/results/label_quality_*.md): the teacher's labels matched gold for
72.8% -> 79.3% of the intent pool, 60.0% -> 60.3% of the sentiment pool, where it also took
the `neutral` label away (an input that says nothing is neutral). So the default, `auto`,
keeps the calibrated labels only where they are spread more evenly than the teacher's own
(`auto_applies`): that applies them on intent and not on sentiment.

Only rows whose `label_probs` came from log-probabilities are calibrated (vote shares are not
on the same scale). The splits hold the calibrated output and distribution, and
`examples.jsonl` keeps the teacher's own answers as they were accepted (the journal's replay
rebuilds it), so the two can be compared input by input. Pure functions here; the requests are
made in `run.py`, and their answers persist in `calibration.json` (`store.CALIBRATION`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from distill.generate.soft import LabelProbs

# Zhao et al. use "N/A", "[MASK]" and the empty string; "..." stands in for the empty string,
# which some chat templates and servers refuse as a user turn.
CONTENT_FREE_INPUTS = ("N/A", "[MASK]", "...")


def content_free_prior(dists: Sequence[LabelProbs | None]) -> LabelProbs | None:
    """The mean of the content-free answers' distributions (those that gave one); None when
    none did, or when some label has no mass at all (dividing by it is undefined)."""
    usable = [d for d in dists if d]
    if not usable:
        return None
    labels = list(usable[0])
    prior = {x: sum(d[x] for d in usable) / len(usable) for x in labels}
    return prior if all(p > 0 for p in prior.values()) else None


def calibrate(dist: LabelProbs, prior: LabelProbs) -> LabelProbs:
    """`dist` divided by `prior` label by label, renormalised (the label set's order kept)."""
    scaled = {x: p / prior[x] for x, p in dist.items()}
    total = sum(scaled.values())
    return {x: v / total for x, v in scaled.items()}


def argmax(dist: LabelProbs) -> str:
    """The most probable label; a tie goes to the label listed first in the set."""
    return max(dist, key=dist.__getitem__)


def apply_calibration(
    rows: Sequence[dict[str, Any]], prior: LabelProbs, skip: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows with calibrated `label_probs` and output, and what changed.

    `skip`: inputs whose distribution is not from log-probabilities (vote shares), left as
    they are.
    """
    out: list[dict[str, Any]] = []
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    changed = calibrated = 0
    for row in rows:
        before[row["output"]] += 1
        dist = row.get("label_probs")
        if not dist or row["input"] in skip:
            out.append(row)
            after[row["output"]] += 1
            continue
        new = calibrate(dist, prior)
        label = argmax(new)
        calibrated += 1
        changed += label != row["output"]
        out.append({**row, "output": label, "label_probs": new})
        after[label] += 1
    summary = {
        "calibrated": calibrated,
        "changed": changed,
        "per_label_before": dict(before.most_common()),
        "per_label_after": dict(after.most_common()),
    }
    return out, summary


def evenness(counts: Mapping[str, int], labels: Sequence[str]) -> float:
    """How evenly `counts` spread over `labels`: their entropy divided by log(len(labels)), 1.0
    when every label is as common, 0.0 when one label takes everything (Pielou's evenness)."""
    total = sum(counts.get(x, 0) for x in labels)
    if total == 0 or len(labels) < 2:
        return 0.0
    shares = [counts.get(x, 0) / total for x in labels]
    return sum(-p * math.log(p) for p in shares if p > 0) / math.log(len(labels))


def auto_applies(summary: Mapping[str, Any], labels: Sequence[str]) -> tuple[bool, float, float]:
    """`--label-calibration auto`'s rule on `apply_calibration`'s summary: apply when the
    calibrated labels are spread more evenly than the teacher's own. Returns (apply, evenness
    before, evenness after).

    Why this signal: calibration divides by the prior the prompt gives the labels. Where that
    prior is what skews the answers, the skewed labels are the favoured ones and dividing evens
    the mix (intent: 0.89 -> 0.98 evenness, labels +6.5 points against gold). Where the teacher
    rarely gives the labels the prior favours (sentiment's `neutral`, which an input that says
    nothing really is), the prior is not what skews the answers, and dividing takes those
    labels further away (0.65 -> 0.54; students -1.3 points). The rule needs no gold label; it
    would also even out a task whose true labels are skewed and whose prior favours the common
    ones, which no measurement here covers.
    """
    before = evenness(summary["per_label_before"], labels)
    after = evenness(summary["per_label_after"], labels)
    return after > before, before, after


def summary_line(block: dict[str, Any] | None) -> str | None:
    """One line for the console about the manifest's `calibration` block (None: nothing to
    say, no label set or calibration off)."""
    if not block or block["method"] == "none":
        return None
    name = "label calibration" + (" (auto)" if block["method"] == "auto" else "")
    if not block.get("applied"):
        return f"{name}: not applied ({block['why']})"
    prior = sorted(block["prior"].items(), key=lambda kv: -kv[1])
    shares = ", ".join(f"{k} {v:.2f}" for k, v in prior)
    even = (
        f"; evenness {block['evenness_before']:.2f} -> {block['evenness_after']:.2f}"
        if "evenness_after" in block
        else ""
    )
    return (
        f"{name}: {block['changed']} of {block['calibrated']} labels changed "
        f"(the teacher's prior from content-free inputs: {shares}{even})"
    )

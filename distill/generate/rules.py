"""What a teacher output must satisfy beyond the generic filters: a label set, a format, a date.

`resolve_rules` decides once per run, from the settings and the task, which of the checks of
`labels.py` and `formats.py` apply; `OutputRules.check` applies them to one output and returns
the output to keep (a label in the set's spelling) or the rejection reason. The resolved rules
are part of the run's fingerprint, so a change in what is derived never mixes data silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distill.generate import filters as F
from distill.generate.config import GenerateConfig
from distill.generate.formats import DateLayout, date_layout, derive_format, valid_date
from distill.generate.labels import LabelSet, infer_label_set, make_label_set


@dataclass(frozen=True)
class OutputRules:
    """The checks of one run; all None means: only the generic filters apply."""

    label_set: LabelSet | None = None
    pattern: re.Pattern[str] | None = None
    pattern_source: str | None = None  # "output_regex" or "demonstrations"
    date: DateLayout | None = None

    def check(self, output: str) -> tuple[str, str | None]:
        """(output to keep, None) or (output, rejection reason)."""
        out = output.strip()
        if self.label_set is not None:
            canonical = self.label_set.canonical(out)
            if canonical is None:
                return out, F.OUT_OF_LABEL_SET
            out = canonical
        if self.pattern is not None and self.pattern.fullmatch(out) is None:
            return out, F.REGEX if self.pattern_source == "output_regex" else F.FORMAT
        if self.date is not None and not valid_date(out, self.date):
            return out, F.INVALID_DATE
        return out, None

    def describe(self) -> dict[str, Any]:
        """The manifest's (and the fingerprint's) view of the rules."""
        labels = self.label_set
        return {
            "labels": list(labels.labels) if labels else None,
            "label_shares": [round(s, 6) for s in labels.shares] if labels else None,
            "labels_source": labels.source if labels else None,
            "output_format": self.pattern.pattern if self.pattern else None,
            "output_format_source": self.pattern_source,
            "date_layout": str(self.date) if self.date else None,
        }


def resolve_rules(
    cfg: GenerateConfig, instruction: str, demo_outputs: Sequence[str]
) -> OutputRules:
    """The checks that apply: the `labels` key, else an inferred set (`infer_labels`); then
    `output_regex`, else a shape derived from the demonstrations (`format_check`, and not
    when a label set already fixes every output); a date check where the instruction names
    a layout the demonstrations follow (`format_check`)."""
    label_set = None
    if cfg.labels:
        label_set = make_label_set(cfg.labels, cfg.label_weights, source="task")
    elif cfg.infer_labels:
        label_set = infer_label_set(instruction, demo_outputs)
    pattern, source = None, None
    if cfg.output_regex is not None:
        pattern, source = re.compile(cfg.output_regex), "output_regex"
    elif cfg.format_check and label_set is None:
        derived = derive_format([o.strip() for o in demo_outputs])
        pattern = re.compile(derived) if derived else None
        source = "demonstrations" if derived else None
    date = date_layout(instruction, demo_outputs) if cfg.format_check else None
    return OutputRules(label_set, pattern, source, date)

"""Closed label sets for classification tasks: detection, canonical spelling, balanced requests.

Why: on a four-label task written from three demonstrations, unconditioned synthesize prompts
gave 48% / 46% / 5% / 0.3% of the labels, and the student never predicted the two rare ones.
With a label set, every synthesize request asks for inputs of ONE label (`next_label` picks the
label furthest below its share), answers outside the set are rejected, and in-set answers are
rewritten to the set's spelling ("Positive." -> "positive") so that the vote and the student see
one string per class.

Where the set comes from: the task's `labels` key, or (when `infer_labels` is on) the
conservative rule of `infer_label_set`, which only fires when the instruction names the labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from distill.generate.vote import normalise_text

MAX_LABEL_WORDS = 3  # longer demonstration outputs are free text, never labels
MAX_LABELS = 50
_QUOTED = re.compile(r'"([^"\n]{1,40})"|“([^”\n]{1,40})”|(?<!\w)\'([^\'\n]{1,40})\'(?!\w)')
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_COMMA = re.compile(r"\s*[,;|]\s*")
_CONJ = re.compile(r"(?:^|\s)(?:or|and)\s+", re.IGNORECASE)
_EDGE = "\"'“”‘’`()[]{}*.!?:;"
_ASIDE = re.compile(r"\s*\([^()]*\)|\s*\[[^\[\]]*\]")  # "(no opinion, only facts)"


def label_key(text: str) -> str:
    """What two spellings of one label share: NFKC, case-folded, whitespace collapsed, and
    surrounding quotes and end punctuation removed ('"Positive."' -> 'positive')."""
    return normalise_text(text, lowercase=True).strip(_EDGE + " ").casefold()


@dataclass(frozen=True)
class LabelSet:
    """The allowed outputs, their target shares, and where the set came from."""

    labels: tuple[str, ...]
    weights: tuple[float, ...]
    source: str  # "task" (the `labels` key) or "inferred" (demonstrations + instruction)

    def __post_init__(self) -> None:
        keys = [label_key(x) for x in self.labels]
        if len(set(keys)) != len(keys):
            raise ValueError(f"labels: two labels differ only in case or spacing ({self.labels})")

    @property
    def shares(self) -> tuple[float, ...]:
        """Target share of each label (weights normalised to sum 1)."""
        total = sum(self.weights)
        return tuple(w / total for w in self.weights)

    def canonical(self, output: str) -> str | None:
        """The set's spelling of `output`, or None when it is no label of the set."""
        return self._by_key.get(label_key(output))

    @property
    def _by_key(self) -> dict[str, str]:
        cached = self.__dict__.get("_keys")
        if cached is None:
            cached = {label_key(x): x for x in self.labels}
            object.__setattr__(self, "_keys", cached)
        return cached


def make_label_set(
    labels: Sequence[str], weights: Sequence[float] | None = None, source: str = "task"
) -> LabelSet:
    """A LabelSet with equal weights unless `weights` (one per label) are given."""
    w = tuple(float(x) for x in weights) if weights else (1.0,) * len(labels)
    return LabelSet(tuple(labels), w, source)


def next_label(labels: LabelSet, counts: Mapping[str, float]) -> str:
    """The label furthest below its target share given `counts` (accepted + expected).

    Deficit round-robin: with equal counts it cycles through the labels in order; a label the
    teacher under-delivers (answers that drift to another label, duplicates) is asked for more
    often until its count catches up. Zero-weight labels are never asked for. Pure: the same
    counts always give the same label, which a journal replay relies on.
    """
    best, best_score = labels.labels[0], float("inf")
    for label, share in zip(labels.labels, labels.shares, strict=True):
        if share <= 0:
            continue
        score = counts.get(label, 0.0) / share
        if score < best_score:
            best, best_score = label, score
    return best


def over_share(labels: LabelSet, counts: Mapping[str, int], label: str, max_lead: int) -> bool:
    """True when one more example of `label` would put it more than `max_lead` examples ahead
    of the least-filled label, counted at equal shares (with weights 2:1, "ahead" means ahead
    of twice the other's count). Zero-weight labels are never capped nor waited for; a
    `max_lead` of 0 turns the cap off.

    Pure and independent of the run's target, so a journal replay with a larger target
    (an extended run) makes the same decisions as the run it extends.
    """
    shares = dict(zip(labels.labels, labels.shares, strict=True))
    if max_lead <= 0 or shares.get(label, 0.0) <= 0:
        return False
    active = [x for x in labels.labels if shares[x] > 0]
    floor = min(counts.get(x, 0) / shares[x] for x in active)
    lead = ((counts.get(label, 0) + 1) / shares[label] - floor) / len(active)
    return lead > max_lead + 1e-9


def infer_label_set(instruction: str, demo_outputs: Sequence[str]) -> LabelSet | None:
    """A closed label set read from the demonstrations and the instruction, or None.

    Conservative rule (a wrong set would reject every correct answer of a free-text task):
    1. every demonstration output is short (<= 3 words) and contains a letter, and
    2. the instruction names every distinct demonstration output, either
       a. inside a list in the instruction ("... as world, sports, business or sci/tech",
          '"yes" or "no"'): the set is that list, so labels no demonstration shows are included;
       b. or anywhere as whole words: the set is the distinct demonstration outputs;
    3. and the set has at least two labels.
    Spelling: a label shown by a demonstration keeps the demonstration's spelling; a label only
    the instruction names is lower-cased (capitalised) when every demonstration output is.
    """
    outs = [o.strip() for o in demo_outputs]
    if not outs or not all(_label_like(o) for o in outs):
        return None
    distinct = list(dict.fromkeys(outs).keys())
    keys = {label_key(o) for o in distinct}
    listed = _listed_labels(instruction, keys)
    if listed is None and all(_mentions(instruction, o) for o in distinct):
        listed = distinct
    if listed is None:
        return None
    labels = _spell(listed, distinct)
    if not 2 <= len(labels) <= MAX_LABELS:
        return None
    return make_label_set(labels, source="inferred")


def _label_like(text: str) -> bool:
    return 0 < len(text.split()) <= MAX_LABEL_WORDS and any(c.isalpha() for c in text)


def _mentions(instruction: str, label: str) -> bool:
    pattern = r"(?<!\w)" + re.escape(label_key(label)) + r"(?!\w)"
    return re.search(pattern, label_key(instruction)) is not None


def _listed_labels(instruction: str, keys: set[str]) -> list[str] | None:
    """The first list in the instruction (quoted items, or an enumeration) that holds every
    key in `keys`; None when there is none."""
    quoted = [m.group(m.lastindex or 0).strip() for m in _QUOTED.finditer(instruction)]
    quoted = [q for q in quoted if 0 < len(q.split()) <= MAX_LABEL_WORDS]
    if keys <= {label_key(q) for q in quoted}:
        return _dedup(quoted)
    # asides explain a label and may hold commas of their own: "positive, neutral (no opinion,
    # only facts) or ambivalent" is the list "positive, neutral or ambivalent"
    for sentence in _SENTENCE.split(_ASIDE.sub("", instruction)):
        for items in _enumerations(sentence.strip().rstrip(".!?"), keys):
            if keys <= {label_key(x) for x in items}:
                return _dedup(items)
    return None


def _enumerations(sentence: str, keys: set[str]) -> list[list[str]]:
    """Candidate lists "A, B, C or D" in a sentence, one per conjunction ("or", "and").

    The items before the conjunction are the comma-separated pieces walking back while they
    are short (<= 3 words); the earliest one and the item after the conjunction are trimmed to
    the known label they end (start) with, else to one word: "... the headline as world" ->
    "world", "or neutral and say why" -> "neutral".
    """
    pieces = [p.strip() for p in _COMMA.split(sentence)]
    out = []
    for j, piece in enumerate(pieces):
        for m in _CONJ.finditer(piece):
            before, after = piece[: m.start()].strip(), piece[m.end() :].strip()
            out.append(_candidate([*pieces[:j], before], after, keys))
    if len(pieces) >= 2:  # a bare comma list: "one of: positive, negative, neutral"
        out.append(_candidate(pieces[:-1], pieces[-1], keys))
    return [c for c in out if c]


def _candidate(run: list[str], after: str, keys: set[str]) -> list[str]:
    run = [p for p in run if p]
    if not run or not after:
        return []
    head: list[str] = []
    for k in range(len(run) - 1, -1, -1):
        words = run[k].split()
        if k > 0 and len(words) <= MAX_LABEL_WORDS:
            head.append(run[k])
            continue
        head.append(_trim(words, keys, from_end=True))
        break
    return [*reversed(head), _trim(after.split(), keys, from_end=False)]


def _trim(words: list[str], keys: set[str], *, from_end: bool) -> str:
    for n in range(min(MAX_LABEL_WORDS, len(words)), 0, -1):
        part = " ".join(words[-n:] if from_end else words[:n])
        if label_key(part) in keys:
            return part
    return words[-1] if from_end else words[0]


def _dedup(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(label_key(item), item.strip(_EDGE + " "))
    return list(seen.values())


def _spell(listed: list[str], demo_labels: list[str]) -> list[str]:
    shown = {label_key(d): d for d in demo_labels}
    if all(d == d.lower() for d in demo_labels):
        return [shown.get(label_key(x), x.lower()) for x in listed]
    if all(d[:1].isupper() for d in demo_labels):
        return [shown.get(label_key(x), x[:1].upper() + x[1:]) for x in listed]
    return [shown.get(label_key(x), x) for x in listed]

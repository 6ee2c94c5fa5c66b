"""The dataset card (RUN/data/README.md): the run's facts in the form the Hugging Face hub reads.

YAML front matter (`huggingface_hub.DatasetCard.load` parses it; the hub's viewer reads the
`configs` block to load the JSONL splits), then the manifest in prose and tables: teacher and
settings, counts accepted and rejected by reason, labels, yield and waste, cost, splits, and how
to load the data. Rewritten, atomically, whenever a generate session ends (also a stopped or
resumed one), from the manifest just written.

License: the task file's `license` key when it has one, else "unknown": synthetic data is
bound by the teacher's terms of use and by where the demonstrations came from, which this
tool cannot know.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from common.cards import CARD_FILE, front_matter, md_cell, size_category
from common.files import atomic_write_text
from distill.generate import store
from distill.generate.records import Manifest

# Without a label set, outputs are shown as a distribution only when they look like labels.
MAX_LABEL_LIKE_OUTPUTS = 20


def write_dataset_card(out_dir: Path, manifest: Manifest) -> Path:
    """Write `out_dir/README.md` atomically; returns its path."""
    path = Path(out_dir) / CARD_FILE
    atomic_write_text(path, dataset_card(out_dir, manifest))
    return path


def dataset_card(out_dir: Path, manifest: Manifest) -> str:
    """The card's text (front matter + Markdown) for the run in `out_dir`."""
    out_dir = Path(out_dir)
    sections = [
        _intro(manifest),
        _settings(manifest),
        _counts(manifest),
        _labels(out_dir, manifest),
        _soft_labels(manifest),
        _calibration(manifest),
        _rationales(manifest),
        _splits_and_cost(manifest),
        _loading(out_dir, manifest),
        _license(manifest),
    ]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(sections))  # one blank line between blocks
    return front_matter(card_data(manifest)) + "\n" + body


def card_data(manifest: Manifest) -> dict[str, Any]:
    """The front matter: the hub's dataset-card keys."""
    task, counts = manifest["task"], manifest["counts"]
    labelled = (manifest.get("rules") or {}).get("labels")
    splits = [
        {"split": name, "path": f"{name}.jsonl"}
        for name, n in manifest["splits"].items()
        if n  # an empty split file would fail the hub's loader
    ]
    return {
        "pretty_name": f"{task['name']} (synthetic, distilled from {_teacher(manifest)})",
        "license": task.get("license") or "unknown",
        "task_categories": ["text2text-generation", *(["text-classification"] if labelled else [])],
        "size_categories": [size_category(counts["accepted"])],
        "annotations_creators": ["machine-generated"],
        # label mode: the inputs are the user's own; otherwise the teacher wrote them too
        "language_creators": ["found" if manifest["mode"] == "label" else "machine-generated"],
        "source_datasets": ["original"],
        "tags": ["synthetic", "distillation", "distill"],
        "configs": [{"config_name": "default", "data_files": splits}] if splits else None,
    }


def _teacher(manifest: Manifest) -> str:
    teacher = manifest["teacher"]
    model, kind = teacher.get("model"), teacher.get("teacher")
    return f"{model} ({kind})" if model and kind else str(model or kind or "unknown")


def _intro(m: Manifest) -> str:
    status = "complete" if m["complete"] else f"incomplete (stopped: {m['stopped']})"
    return "\n".join(
        [
            f"# {m['task']['name']}: synthetic training data",
            "",
            "Written by `distill generate`: a teacher LLM "
            + ("labelled the given inputs" if m["mode"] == "label" else "wrote input/output pairs")
            + " for the instruction below; pairs were deduplicated (exactly and by MinHash), "
            "checked for leaks of the demonstrations and of excluded test inputs, and filtered.",
            "",
            f"> {m['task']['instruction']}",
            "",
            f"- status: {status}; {m['message']}",
            f"- settings fingerprint: `{m['fingerprint']}` (xxh3 of everything that decides the "
            "data: settings, rules, task, inputs, teacher)",
            "",
        ]
    )


def _settings(m: Manifest) -> str:
    s = m["settings"]
    temps = f"{s['temperature_start']} -> {s['temperature_end']} ({s['schedule']} schedule)"
    rows = [
        ("teacher", _teacher(m)),
        ("mode", m["mode"]),
        ("votes per input", m["votes"]),
        ("min agreement", s["min_agreement"]),
        ("pairs per request", s["pairs_per_request"]),
        ("synthesis temperature", temps),
        ("label temperature", s["label_temperature"]),
        ("few-shot", f"{s['few_shot_demos']} demonstrations + {s['few_shot_accepted']} accepted"),
        ("seed", s["seed"]),
        ("label set", ", ".join((m.get("rules") or {}).get("labels") or []) or "none"),
        ("output format", (m.get("rules") or {}).get("output_format") or "none"),
    ]
    return _table("Teacher and settings", ("setting", "value"), rows)


def _counts(m: Manifest) -> str:
    c = m["counts"]
    rows: list[tuple[Any, ...]] = [
        ("accepted", c["accepted"]),
        ("target", c["target"]),
        ("requests", c["requests"]),
        ("teacher pairs", c["teacher_pairs"]),
        ("rejected", c["rejected"]),
    ]
    rows += [(f"rejected: {reason}", n) for reason, n in c["rejected_by_reason"].items()]
    text = _table("Counts", ("count", "value"), rows)
    rates = [
        (name.replace("_", " "), "n/a (label mode)" if c.get(name) is None else c[name])
        for name in (
            "accepted_per_teacher_pair",
            "duplicate_rate",
            "near_duplicate_rate",
            "leak_rate",
        )
    ]
    text += _table("Yield and waste (per synthesized teacher pair)", ("rate", "value"), rates)
    if c.get("vote_agreement_histogram"):
        hist = c["vote_agreement_histogram"].items()
        text += _table("Vote agreement", ("agreement", "inputs"), hist)
    if c.get("inputs"):
        text += _table("Inputs (label mode)", ("inputs", "n"), c["inputs"].items())
    return text


def _labels(out_dir: Path, m: Manifest) -> str:
    per_label = m["counts"].get("per_label")
    if per_label:
        accepted = per_label["accepted"]
        rows = _shares(accepted)
        text = _table("Labels (accepted examples)", ("label", "examples", "share"), rows)
        extra = [(k.replace("_", " "), v) for k, v in per_label.items() if k != "accepted"]
        return text + _table("Label checks", ("check", "count"), extra)
    outputs = Counter(row["output"] for row in store.read_log(out_dir / store.EXAMPLES))
    if outputs and len(outputs) <= MAX_LABEL_LIKE_OUTPUTS:
        rows = _shares(dict(outputs.most_common()))
        return _table("Outputs (accepted examples)", ("output", "examples", "share"), rows)
    return (
        "## Outputs\n\n"
        f"Free text: {len(outputs)} distinct outputs among {sum(outputs.values())} examples.\n"
    )


def _rationales(m: Manifest) -> str:
    """How many examples carry the teacher's reasoning (chain of thought only)."""
    n = m["counts"].get("with_rationale")
    if n is None:
        return ""
    return (
        "## Rationales\n\n"
        f"{n} of {m['counts']['accepted']} examples carry a `rationale` field: the teacher's "
        "reasoning before its final answer (chain of thought). `distill train "
        "--rationale-weight W` trains on it as a second task; the student never emits it "
        '(docs/generate.md, "Chain of thought and rationales").\n\n'
    )


def _soft_labels(m: Manifest) -> str:
    """Where the examples' `label_probs` came from (nothing without a label set)."""
    soft = m.get("soft_labels")
    if not soft:
        return ""
    text = (
        "## Soft labels\n\n"
        "Examples with a `label_probs` field carry the teacher's probability of every label "
        f"(source: {soft['source'] or 'none'}; `top_logprobs` {soft['top_logprobs']}): read "
        "from the log-probabilities of the answer's first token, else the vote shares "
        '(docs/generate.md, "Soft labels").\n\n'
    )
    rows = [*soft["examples_by_source"].items()]
    rows.append(("answers without usable logprobs", soft["answers_without_usable_logprobs"]))
    return text + _table("Soft label sources", ("source", "examples"), rows)


def _calibration(m: Manifest) -> str:
    """What label calibration did to the outputs (nothing without a label set or with none)."""
    cal = m.get("calibration")
    if not cal or cal["method"] == "none":
        return ""
    if not cal.get("applied"):
        text = f"## Label calibration\n\nNot applied: {cal['why']}.\n\n"
        if "per_label_after" not in cal:
            return text
        text += (
            f"The splits hold the teacher's own labels; calibrated, {cal['changed']} of "
            f"{cal['calibrated']} would have changed:\n\n"
        )
        title = "Labels as the teacher gave them, and as calibration would have made them"
    else:
        prior = ", ".join(f"{k} {v:.3f}" for k, v in cal["prior"].items())
        text = (
            "## Label calibration\n\n"
            "The splits hold calibrated labels: each example's distribution divided by the "
            f"teacher's distribution for inputs that say nothing ({prior}), then the argmax; "
            f"{cal['changed']} of {cal['calibrated']} labels changed, and `examples.jsonl` keeps "
            'the teacher\'s own (docs/generate.md, "Label calibration").\n\n'
        )
        title = "Labels before and after calibration"
    before, after = cal["per_label_before"], cal["per_label_after"]
    rows = [(x, before.get(x, 0), after.get(x, 0)) for x in cal["prior"]]
    header = ("label", "teacher", "calibrated")
    return text + _table(title, header, rows)


def _shares(counts: dict[str, int]) -> list[tuple[Any, ...]]:
    total = sum(counts.values()) or 1
    return [(label, n, f"{100 * n / total:.1f}%") for label, n in counts.items()]


def _splits_and_cost(m: Manifest) -> str:
    splits = [(name, n, f"{name}.jsonl") for name, n in m["splits"].items()]
    text = _table("Splits", ("split", "rows", "file"), splits)
    tokens = m["tokens"]
    rows = [
        ("prompt tokens", tokens["prompt"]),
        ("completion tokens", tokens["completion"]),
        ("cost (USD)", m["cost_usd"]),
        ("sessions", len(m["sessions"])),
        ("wall time, last session (s)", m["wall_s"]),
    ]
    return text + _table("Cost", ("item", "value"), rows)


def _loading(out_dir: Path, m: Manifest) -> str:
    files = {name: f"{out_dir / name}.jsonl" for name, n in m["splits"].items() if n}
    return "\n".join(
        [
            "## Load it",
            "",
            "```python",
            "import datasets",
            "",
            f'ds = datasets.load_from_disk("{out_dir / "hf"}")  # DatasetDict: train, validation, test',
            f'ds = datasets.load_dataset("json", data_files={files!r})',
            "```",
            "",
            'Each row is `{"input": ..., "output": ...}` (with `"label_probs": {label: p}` where '
            'the teacher\'s distribution over the label set is known, and `"rationale"` where '
            "its reasoning was kept). `examples.jsonl` holds "
            "every accepted example, `rejected.jsonl` every rejection with its reason, `manifest.json` every "
            "number above.",
            "",
        ]
    )


def _license(m: Manifest) -> str:
    given = m["task"].get("license")
    if given:
        return f"## License\n\n`{given}`, as the task file says.\n"
    return (
        "## License\n\n"
        "`unknown`: the task file sets no `license`. Data a teacher wrote is bound by the "
        "teacher's terms of use and by the origin of the demonstrations; set `license = ...` "
        "in the task file once you know.\n"
    )


def _table(title: str, header: tuple[str, ...], rows: Any) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n"

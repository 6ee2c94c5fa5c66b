"""The model card (README.md) written next to a trained student.

YAML front matter the Hugging Face hub reads (`huggingface_hub.ModelCard.load`), then the task,
teacher, data, best-epoch metrics and settings. `distill run` later adds the student-vs-teacher
table (a marked section, common.cards.replace_section) once evaluation has run.
"""

from __future__ import annotations

import json
from typing import Any

from common.cards import front_matter
from common.meta import StudentMeta
from students.presets import base_model_id


def model_card(
    task: str, instruction: str, meta: StudentMeta, metrics: dict, card: dict[str, Any]
) -> str:
    """Markdown: task, teacher and data, metrics of the best epoch, settings, known limits."""
    best = metrics.get("best") or {}
    data = {
        "library_name": "transformers",
        "pipeline_tag": "text2text-generation",
        "license": card.get("license") or "unknown",
        "base_model": base_model_id(meta.student or metrics["student"]),
        "tags": ["seq2seq", "distillation", "distill"],
    }
    lines = [
        front_matter(data),
        f"# {task}: distilled seq2seq student",
        "",
        f"Instruction: {instruction}",
        "",
        f"- student: `{metrics['student']}` ({metrics['num_parameters']:,} parameters, {meta.model_type})",
        f"- teacher: {card.get('teacher', 'unknown')}",
        f"- training examples: {metrics['train_examples']} (of which {metrics['extra_examples']} from extra data)",
        f"- validation examples: {metrics['validation_examples']}",
        f"- epochs run: {metrics['epochs_run']}, best epoch: {metrics['best_epoch']}",
        f"- targets that cannot round-trip the tokenizer: {metrics['targets_not_roundtrip']}",
        f"- truncated: {metrics['lengths']['source_truncated']} sources, "
        f"{metrics['lengths']['target_truncated']} targets",
    ]
    lines += _rationale_lines(metrics)
    if meta.labels:
        lines.append(
            f"- answers one of {len(meta.labels)} labels (distill.json `labels`; greedy decoding "
            "chooses only among them): " + ", ".join(f"`{x}`" for x in meta.labels)
        )
    if meta.copy_input:
        share = (metrics.get("copy_decoding") or {}).get("span_share")
        lines.append(
            "- copies from its input (distill.json `copy_input`; greedy decoding emits only "
            "spans of the input's words)"
            + (f": {share:.0%} of its training outputs were spans" if share else "")
        )
    lines += [f"- {k}: {v}" for k, v in card.items() if k != "teacher"]
    lines += ["", "## Validation (best epoch)", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.4f} |" for k, v in best.items() if isinstance(v, float)]
    if meta.case_markers:
        lines += [
            "",
            "The tokenizer carries case and spacing as marker tokens (¤c, ¤x, ...), "
            "so decoding tokenizer.json gives exact text; accents are stripped.",
        ]
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(metrics["settings"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _rationale_lines(metrics: dict) -> list[str]:
    """Rationale distillation's weight, coverage and the prefix every runtime adds."""
    rationale = metrics.get("rationale")
    if not rationale:
        return []
    return [
        f"- rationale distillation: weight {rationale['weight']}, "
        f"{rationale['train_examples_with_rationale']} of {metrics['train_examples']} training "
        f"examples carried a rationale; inputs are read as `{rationale['answer_prefix']}` + "
        "source (distill.json `task_prefix`, added by every runtime), so the model answers "
        "and never writes a rationale"
    ]

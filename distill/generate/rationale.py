"""Rationales for chain-of-thought labelling: the demonstrations' and the teacher's answers'.

Why demonstrations need a rationale: label prompts show the demonstrations as chat turns, and the
small teacher answers exactly like the earlier turns. Shown bare outputs ("positive"), it
answered bare outputs under a "think step by step" instruction, so 6 of 6 sentiment inputs had
no "Answer:" line and were rejected; shown "<reasoning>\\nAnswer: positive" it reasoned first.
A demonstration's rationale comes from the task file (`rationale = "..."`), else the teacher
writes one for the known output (one greedy request per demonstration, the rationalisation step
of STaR, Zelikman et al. 2022), kept in RUN/data/demo_rationales.json so that a resumed or
extended run shows the teacher the same prompts and pays for them once.

The answers' rationales (the text before the final "Answer:" line) are stored with each
example for rationale distillation (Hsieh et al. 2023: students/train.py trains on them as a
second task, and never emits them at inference).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from distill.generate.vote import FINAL_ANSWER_RE, final_answer

if TYPE_CHECKING:
    from distill.task import Demonstration
    from teachers.client import Teacher

DEMO_RATIONALES = "demo_rationales.json"
RATIONALE_MAX_TOKENS = 160

RATIONALISE = (
    "Task: {instruction}\n\nInput: {input}\nThe correct output is: {output}\n\n"
    "Write the short step-by-step reasoning (two or three sentences) that leads from the input "
    "to this output. Write only the reasoning."
)


def split_rationale(text: str) -> tuple[str | None, str | None]:
    """(final answer, rationale) of a chain-of-thought answer.

    The rationale is the text before the last "Answer:" line, stripped; None when empty. An
    answer with no "Answer:" line is (None, None) unless it is one line, which is taken as a
    bare answer with no rationale (the small teacher sometimes skips the reasoning: losing the
    label too would waste a paid request).
    """
    matches = list(FINAL_ANSWER_RE.finditer(text))
    if not matches:
        bare = text.strip()
        return (bare, None) if bare and "\n" not in bare else (None, None)
    rationale = text[: matches[-1].start()].strip()
    return final_answer(text), rationale or None


def cot_demos(demos: Sequence[tuple[str, str]], rationales: Sequence[str]) -> list[tuple[str, str]]:
    """The demonstrations as chain-of-thought answers: "<rationale>\\nAnswer: <output>"."""
    return [
        (i, f"{r.strip()}\nAnswer: {o}" if r.strip() else f"Answer: {o}")
        for (i, o), r in zip(demos, rationales, strict=True)
    ]


def rationalise_messages(instruction: str, demo: Demonstration) -> list[dict[str, str]]:
    """The request asking the teacher why a demonstration's output is right."""
    text = RATIONALISE.format(instruction=instruction, input=demo.input, output=demo.output)
    return [{"role": "user", "content": text}]


def clean_rationale(text: str) -> str:
    """A teacher-written demonstration rationale without any "Answer:" line it added."""
    if FINAL_ANSWER_RE.search(text):
        return split_rationale(text)[1] or ""
    return text.strip()


def saved_rationales(path: Path, demos: Sequence[Demonstration]) -> list[str] | None:
    """The demonstrations' rationales saved by an earlier session, if they are for these demos."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    if [(r["input"], r["output"]) for r in saved] != [(d.input, d.output) for d in demos]:
        return None
    return [r["rationale"] for r in saved]


def known_rationales(demos: Sequence[Demonstration], out_dir: Path) -> list[str] | None:
    """Each demonstration's rationale without asking the teacher (the task file's, else the
    one saved in `out_dir`), or None when one is unknown."""
    saved = saved_rationales(out_dir / DEMO_RATIONALES, demos)
    out = [d.rationale or (saved[i] if saved else "") for i, d in enumerate(demos)]
    return out if all(out) else None


async def demo_rationales(
    teacher: Teacher, instruction: str, demos: Sequence[Demonstration], out_dir: Path
) -> list[str]:
    """Each demonstration's rationale: the task file's, else saved, else written by the teacher
    (greedy; through the request cache and the run's accounting), then saved atomically."""
    from common.files import atomic_write_text
    from teachers.errors import BudgetExceeded, RequestFailed

    path = out_dir / DEMO_RATIONALES
    saved = saved_rationales(path, demos)
    if saved is not None:
        return [d.rationale or s for d, s in zip(demos, saved, strict=True)]
    out, complete = [], True
    for demo in demos:
        if demo.rationale:
            out.append(demo.rationale)
            continue
        try:
            res = await teacher.chat(
                rationalise_messages(instruction, demo),
                temperature=0.0,
                max_tokens=RATIONALE_MAX_TOKENS,
                seed=0,
            )
        except (RequestFailed, BudgetExceeded):  # shown as a bare "Answer: <output>" this time
            out.append("")
            complete = False
            continue
        out.append(clean_rationale(res.texts[0] or ""))
    if not complete:  # not saved: the next session asks again (the cache keeps what was paid)
        return out
    rows = [
        {"input": d.input, "output": d.output, "rationale": r}
        for d, r in zip(demos, out, strict=True)
    ]
    atomic_write_text(path, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    return out

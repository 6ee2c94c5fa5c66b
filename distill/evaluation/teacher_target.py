"""Score a teacher LLM on the test set, prompted few-shot with the task's own demonstrations.

The prompt is what a user of the LLM alone would write: the instruction as the system message,
each demonstration as a user/assistant turn, then the test input. Decoding is greedy
(temperature 0) so the score is reproducible. No request cache: latency and cost must be real.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from distill.evaluation.config import EvalConfig
from distill.evaluation.targets import Predictions
from distill.task import TaskSpec

SYSTEM_SUFFIX = "Answer with the output only, in the format of the examples."


def few_shot_messages(task: TaskSpec, text: str) -> list[dict[str, str]]:
    """Chat messages: instruction, then demonstrations as turns, then the input to answer."""
    messages = [{"role": "system", "content": f"{task.instruction}\n{SYSTEM_SUFFIX}"}]
    for demo in task.demonstrations:
        messages.append({"role": "user", "content": demo.input})
        messages.append({"role": "assistant", "content": demo.output})
    messages.append({"role": "user", "content": text})
    return messages


def clean_answer(text: str, single_line: bool) -> str:
    """Strip the reply; for single-line tasks keep only its first non-empty line.

    Small chat models often add an explanation after the answer; the references of a
    single-line task never contain a newline, so anything after one cannot be part of it.
    """
    text = text.strip()
    if single_line:
        text = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return text


async def _predict_async(
    teacher_cfg: Any, task: TaskSpec, inputs: list[str], cfg: EvalConfig, single_line: bool
) -> Predictions:
    """The first `latency_samples` inputs one at a time (their wall times are the latency a
    user serving one request sees: service time, no queue), then the rest `max_in_flight` at
    once (throughput). Every input is asked once: the timed answers are scored too."""
    from teachers import open_teacher
    from teachers.errors import RequestFailed

    texts = [""] * len(inputs)
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(teacher_cfg.max_in_flight)

    async def one(i: int, teacher: Any) -> float:
        nonlocal failures
        async with gate:
            t0 = time.perf_counter()
            try:
                res = await teacher.chat(
                    few_shot_messages(task, inputs[i]),
                    temperature=0.0,
                    max_tokens=cfg.max_new_tokens,
                    seed=cfg.seed,
                )
                texts[i] = clean_answer(res.texts[0], single_line)
            except RequestFailed:
                failures += 1  # scored as an empty (wrong) answer, counted in the report
            return time.perf_counter() - t0

    k = min(cfg.latency_samples, len(inputs))
    async with open_teacher(teacher_cfg, cache_path=None) as teacher:
        start = time.perf_counter()
        for i in range(k):  # concurrency 1: no request waits behind another
            latencies.append(await one(i, teacher))
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        await asyncio.gather(*(one(i, teacher) for i in range(k, len(inputs))))
        concurrent = time.perf_counter() - start
        usage = teacher.accounting.snapshot()
        name = teacher.model_name
    # Throughput from the concurrent pass alone (its inputs over its wall time), expressed as
    # the wall time all inputs would take at that rate; all sequential when nothing is left.
    rest = len(inputs) - k
    wall = concurrent * len(inputs) / rest if rest and concurrent > 0 else sequential
    extra = {
        "model_name": name,
        "failures": failures,
        "usage": usage,
        "latency_concurrency": 1,
        "throughput_concurrency": teacher_cfg.max_in_flight,
    }
    return Predictions("teacher", texts, latencies, wall, None, extra)


def predict_teacher(
    teacher_cfg: Any, task: TaskSpec, inputs: list[str], cfg: EvalConfig, single_line: bool
) -> Predictions:
    """Latency at concurrency 1 on a sample, then throughput at `max_in_flight`."""
    return asyncio.run(_predict_async(teacher_cfg, task, inputs, cfg, single_line))

"""Score a teacher LLM on the test set, prompted few-shot with the task's own demonstrations.

The prompt is what a user of the LLM alone would write: the instruction as the system message,
each demonstration as a user/assistant turn, then the test input. Decoding is greedy
(temperature 0) so the score is reproducible. No request cache: latency and cost must be real.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from distill.evaluation.config import TEACHER_MAX_NEW_TOKENS, EvalConfig
from distill.evaluation.targets import Predictions
from distill.task import TaskSpec

if TYPE_CHECKING:
    from distill.generate.labels import LabelSet
    from teachers.client import Teacher
    from teachers.config import TeacherConfig

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


def predict_teacher(
    teacher_cfg: TeacherConfig,
    task: TaskSpec,
    inputs: list[str],
    cfg: EvalConfig,
    single_line: bool,
    labels: LabelSet | None = None,
) -> Predictions:
    """Latency at concurrency 1 on a sample, then throughput at `max_in_flight`.

    With `labels` and `cfg.teacher_top_logprobs`, every request asks for log-probabilities
    and `Predictions.label_probs` holds each answer's distribution over the labels
    (distill.generate.soft: read at the answer's first token).
    """
    run = _TeacherRun(teacher_cfg, task, inputs, cfg, single_line, labels)
    return asyncio.run(run.predict())


@dataclass
class _TeacherRun:
    """The teacher's answers to every input, each asked once; failures scored as empty answers.

    The first `latency_samples` inputs go one at a time: their wall times are the latency a
    user serving one request sees (service time, no queue). The rest run `max_in_flight` at
    once and give the throughput.
    """

    teacher_cfg: TeacherConfig
    task: TaskSpec
    inputs: list[str]
    cfg: EvalConfig
    single_line: bool  # the references are one line: keep the answer's first line only
    labels: LabelSet | None = None
    failures: int = 0

    def __post_init__(self) -> None:
        self.top_logprobs = self.cfg.teacher_top_logprobs if self.labels is not None else 0
        self.label_probs: list[dict[str, float] | None] = [None] * len(self.inputs)

    async def predict(self) -> Predictions:
        from teachers import open_teacher

        n = len(self.inputs)
        k = min(self.cfg.latency_samples, n)
        texts, latencies = [""] * n, [0.0] * n
        gate = asyncio.Semaphore(self.teacher_cfg.max_in_flight)
        async with open_teacher(self.teacher_cfg, cache_path=None) as teacher:
            start = time.perf_counter()
            for i in range(k):  # concurrency 1: no request waits behind another
                await self._one(i, teacher, gate, texts, latencies)
            sequential = time.perf_counter() - start
            start = time.perf_counter()
            await asyncio.gather(
                *(self._one(i, teacher, gate, texts, latencies) for i in range(k, n))
            )
            concurrent = time.perf_counter() - start
            usage = teacher.accounting.snapshot()
            name = teacher.model_name
        # Throughput from the concurrent pass alone, expressed as the wall time all inputs
        # would take at that rate; all sequential when nothing is left after the sample.
        wall = concurrent * n / (n - k) if n > k and concurrent > 0 else sequential
        extra = {
            "model_name": name,
            "failures": self.failures,
            "usage": usage,
            "latency_concurrency": 1,
            "throughput_concurrency": self.teacher_cfg.max_in_flight,
        }
        probs = self.label_probs if self.top_logprobs else None
        return Predictions("teacher", texts, latencies[:k], wall, None, extra, probs)

    async def _one(
        self,
        i: int,
        teacher: Teacher,
        gate: asyncio.Semaphore,
        texts: list[str],
        latencies: list[float],
    ) -> None:
        """Answer input `i` into texts[i], its latency into latencies[i]."""
        from teachers.errors import RequestFailed

        async with gate:
            t0 = time.perf_counter()
            try:
                res = await teacher.chat(
                    few_shot_messages(self.task, self.inputs[i]),
                    temperature=0.0,
                    max_tokens=self.cfg.max_new_tokens or TEACHER_MAX_NEW_TOKENS,
                    seed=self.cfg.seed,
                    top_logprobs=self.top_logprobs,
                )
                texts[i] = clean_answer(res.texts[0], self.single_line)
                if self.top_logprobs and res.logprobs and res.logprobs[0]:
                    self.label_probs[i] = self._distribution(
                        res.texts[0], texts[i], res.logprobs[0]
                    )
            except RequestFailed:
                self.failures += 1  # scored as an empty (wrong) answer, counted in the report
            latencies[i] = time.perf_counter() - t0

    def _distribution(self, raw: str, answer: str, tokens: list) -> dict[str, float] | None:
        """The answer's distribution over the labels from its tokens' log-probabilities."""
        from distill.generate.soft import label_probs_from_logprobs

        assert self.labels is not None
        return label_probs_from_logprobs(tokens, raw, answer, self.labels, last=False)

"""Settings of `distill eval`; every field is a flag and a key of task.toml's [eval]."""

from __future__ import annotations

from dataclasses import dataclass, field

# Built-in metric names (kept here, import-light, so validation needs no numpy or sacrebleu).
BUILTIN_METRICS = ("em", "em_squad", "em_nospace", "chrf", "bertscore", "accuracy", "macro_f1")
# A teacher's answer limit when `max_new_tokens` is unset (a student has its own, distill.json's).
TEACHER_MAX_NEW_TOKENS = 64


@dataclass
class EvalConfig:
    """How predictions are produced and scored."""

    metrics: list[str] = field(
        default_factory=lambda: ["em", "chrf"],
        metadata={
            "help": "comma-separated metrics: "
            + ", ".join(BUILTIN_METRICS)
            + ", a shipped evaluate module (distill_chrf, ...) or any evaluate hub name (online)",
            "metavar": "M1,M2",
        },
    )
    # None, not a number: a student then decodes to the limit it was trained, validated, gated
    # and is served with (distill.json's max_new_tokens, its longest training target). A fixed
    # 64 let a temporal student that loops run 47 tokens past what `distill serve` would return.
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "longest prediction, in tokens (default: a student's own limit from its "
            f"distill.json, {TEACHER_MAX_NEW_TOKENS} for a teacher)"
        },
    )
    batch_size: int = field(default=16, metadata={"help": "inputs per batch (students)"})
    num_beams: int = field(default=1, metadata={"help": "beam width for students (1 = greedy)"})
    latency_samples: int = field(
        default=50,
        metadata={
            "help": "inputs timed one at a time (batch 1, or one teacher request in flight) "
            "for latency p50/p95"
        },
    )
    # Not `label_decoding`: that is train's flag (whether distill.json keeps the label set),
    # and `distill run` has one flag per name.
    free_decoding: bool = field(
        default=False,
        metadata={
            "help": "students decode freely even when their distill.json has a label set "
            "(default: greedy answers only its labels)"
        },
    )
    student_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads of a student (torch or onnxruntime; default: their choice)"},
    )
    # Not `precision`: `distill run` has one flag per name, and train's `precision` is a
    # compute dtype (fp32/bf16/fp16) while this picks which exported graphs load.
    onnx_precision: str = field(
        default="auto",
        metadata={
            "help": "ONNX graphs to run: auto (what the export gate chose), int8, fp32",
            "choices": ["auto", "int8", "fp32"],
        },
    )
    bootstrap_samples: int = field(
        default=1000,
        metadata={"help": "bootstrap resamples for the 95 percent intervals (0 = none)"},
    )
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    bertscore_model: str | None = field(
        default=None,
        metadata={"help": "local encoder dir for BERTScore (default: packaged all-MiniLM-L6-v2)"},
    )
    bertscore_layers: int | None = field(
        default=None, metadata={"help": "encoder layer BERTScore reads (default: the last)"}
    )
    calibration: bool = field(
        default=True,
        metadata={
            "help": "with a label set (the task's `labels`, or one inferred from it), report the "
            "expected calibration error of each student's softmax over its label-sequence "
            "scores (one decoder pass per label token per input)"
        },
    )
    teacher_top_logprobs: int = field(
        default=0,
        metadata={
            "help": "teacher targets: ask for the top K log-probabilities of the answer tokens "
            "(at most 20) and report the teacher's calibration over the label set too "
            "(0: do not ask; a server that ignores the request gets no ECE)"
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "score only the first N examples of --data"}
    )

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("metrics: name at least one metric (got an empty list)")
        for name, value in (
            ("max_new_tokens", self.max_new_tokens),
            ("batch_size", self.batch_size),
            ("num_beams", self.num_beams),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0 (got {value})")
        if self.latency_samples < 0:
            raise ValueError(f"latency_samples: must be >= 0 (got {self.latency_samples})")
        if self.bootstrap_samples < 0:
            raise ValueError(f"bootstrap_samples: must be >= 0 (got {self.bootstrap_samples})")
        if self.student_threads is not None and self.student_threads <= 0:
            raise ValueError(f"student_threads: must be > 0 (got {self.student_threads})")
        if self.onnx_precision not in ("auto", "int8", "fp32"):
            raise ValueError(
                f"onnx_precision: must be auto, int8 or fp32 (got {self.onnx_precision!r})"
            )
        if not 0 <= self.teacher_top_logprobs <= 20:
            raise ValueError(
                f"teacher_top_logprobs: must be in [0, 20] (got {self.teacher_top_logprobs})"
            )
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit: must be > 0 (got {self.limit})")
        if self.bertscore_layers is not None and self.bertscore_layers <= 0:
            raise ValueError(f"bertscore_layers: must be > 0 (got {self.bertscore_layers})")

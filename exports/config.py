"""Settings of `distill export`; every field is a flag and a key of task.toml's [export]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportConfig:
    """How the student is exported, quantised and checked."""

    quantize: str = field(
        default="int8", metadata={"help": "weight quantisation", "choices": ["int8", "none"]}
    )
    # per_channel since 2026-12-06 (README, "int8 scales"): on three address students it scored
    # +2.7, +1.3 and +1.0 points over per_tensor on the real test set and agreed with fp32 on
    # 2 points more inputs (as on sentiment and temporal before), at 1.00x-1.15x the latency.
    int8_scales: str = field(
        default="per_channel",
        metadata={
            "help": "int8 weight scales: per_channel (the default: one scale per output "
            "channel, closest to fp32), per_tensor (up to ~15%% faster, changes more answers) "
            "or auto (per_tensor, and per_channel when per_tensor fails the quality gate); "
            "fp32 ships when the int8 fails the gate",
            "choices": ["auto", "per_tensor", "per_channel"],
        },
    )
    keep_fp32: list[str] = field(
        default_factory=list,
        metadata={
            "help": "comma-separated op types or module-name substrings left in fp32, e.g. "
            "'DenseReluDense.wo' (T5 feed-forward outputs) or 'Gather'",
            "metavar": "NAMES",
        },
    )
    optimize: bool = field(
        default=True,
        metadata={"help": "run the offline onnxruntime graph-optimisation pass on int8 graphs"},
    )
    max_quality_drop: float = field(
        default=5.0,
        metadata={
            "help": "quality gate: int8 ships only if the 95 percent upper bound on the share of "
            "inputs where it may be worse than fp32 (exact binomial) is at most this many "
            "points; else the int8 graphs are removed and fp32 is kept"
        },
    )
    max_heldout: int = field(
        default=200,
        metadata={
            "help": "inputs the quality gate compares: held-out pairs first, topped up with "
            "training pairs (int8 and fp32 are compared on the same references)"
        },
    )
    gate_metric: str = field(
        default="auto",
        metadata={
            "help": "what the int8 gate bounds: exact_match (a share of changed answers, exact "
            "binomial), chrf (corpus chrF++ drop, paired bootstrap) or auto (exact_match when "
            "the gate's references form a label set of at most 20 values, else chrf)",
            "choices": ["auto", "exact_match", "chrf"],
        },
    )
    gate_batch_size: int = field(
        default=16, metadata={"help": "batch size of the quality-gate runs"}
    )

    def __post_init__(self) -> None:
        if self.quantize not in ("int8", "none"):
            raise ValueError(f"quantize: must be 'int8' or 'none' (got {self.quantize!r})")
        if self.int8_scales not in ("auto", "per_tensor", "per_channel"):
            raise ValueError(
                f"int8_scales: must be auto, per_tensor or per_channel (got {self.int8_scales!r})"
            )
        if self.gate_metric not in ("auto", "exact_match", "chrf"):
            raise ValueError(
                f"gate_metric: must be auto, exact_match or chrf (got {self.gate_metric!r})"
            )
        if self.max_quality_drop < 0:
            raise ValueError(f"max_quality_drop: must be >= 0 (got {self.max_quality_drop})")
        if self.max_heldout < 0:
            raise ValueError(f"max_heldout: must be >= 0 (got {self.max_heldout})")
        if self.gate_batch_size < 1:
            raise ValueError(f"gate_batch_size: must be >= 1 (got {self.gate_batch_size})")
        if not all(isinstance(x, str) and x for x in self.keep_fp32):
            raise ValueError(
                f"keep_fp32: must be a list of non-empty names (got {self.keep_fp32!r})"
            )


@dataclass
class ServeConfig:
    """How `distill serve` listens, batches and limits requests; every field is a flag."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to bind"})
    port: int = field(default=8000, metadata={"help": "port (0: any free port)"})
    threads: int | None = field(
        default=None, metadata={"help": "onnxruntime threads (default: all cores)"}
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "graphs to load; auto = int8 if it passed the export gate",
            "choices": ["auto", "int8", "fp32"],
        },
    )
    max_batch: int = field(default=16, metadata={"help": "inputs per micro-batch"})
    max_wait_ms: float = field(
        default=5.0, metadata={"help": "how long a request waits for others to batch with"}
    )
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "request body limit in bytes"})
    max_inputs: int = field(default=64, metadata={"help": "inputs per request"})
    max_input_chars: int = field(default=4000, metadata={"help": "characters per input"})
    max_new_tokens: int = field(
        default=256, metadata={"help": "largest max_new_tokens a request may ask for"}
    )
    max_beams: int = field(default=8, metadata={"help": "largest num_beams a request may ask for"})

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: must be 0-65535 (got {self.port})")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads: must be >= 1 (got {self.threads})")
        if self.precision not in ("auto", "int8", "fp32"):
            raise ValueError(f"precision: must be auto, int8 or fp32 (got {self.precision!r})")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms: must be >= 0 (got {self.max_wait_ms})")
        for name in ("max_batch", "max_body_bytes", "max_inputs", "max_input_chars",
                     "max_new_tokens", "max_beams"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be positive (got {getattr(self, name)})")

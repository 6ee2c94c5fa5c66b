"""Settings of `distill export`; every field is a flag and a key of task.toml's [export]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportConfig:
    """How the student is exported, quantised and checked."""

    quantize: str = field(
        default="int8", metadata={"help": "weight quantisation", "choices": ["int8", "none"]}
    )
    per_channel: bool = field(
        default=False,
        metadata={
            "help": "int8 scales per output channel instead of per tensor (slower to run, "
            "sometimes more accurate)"
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
            "training inputs (int8-vs-fp32 agreement needs no labels)"
        },
    )
    gate_batch_size: int = field(
        default=16, metadata={"help": "batch size of the quality-gate runs"}
    )

    def __post_init__(self) -> None:
        if self.quantize not in ("int8", "none"):
            raise ValueError(f"quantize: must be 'int8' or 'none' (got {self.quantize!r})")
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

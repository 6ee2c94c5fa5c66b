"""Settings of `distill export`; every field is a flag and a key of task.toml's [export]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportConfig:
    """How the student is exported and quantised."""

    quantize: str = field(
        default="int8", metadata={"help": "weight quantisation", "choices": ["int8", "none"]}
    )

    def __post_init__(self) -> None:
        if self.quantize not in ("int8", "none"):
            raise ValueError(f"quantize: must be 'int8' or 'none' (got {self.quantize!r})")

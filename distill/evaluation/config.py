"""Settings of `distill eval`; every field is a flag and a key of task.toml's [eval]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    """How predictions are produced and scored."""

    max_new_tokens: int = field(default=64, metadata={"help": "longest prediction, in tokens"})
    batch_size: int = field(default=16, metadata={"help": "inputs per batch"})

    def __post_init__(self) -> None:
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens: must be > 0 (got {self.max_new_tokens})")

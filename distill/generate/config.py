"""Settings of `distill generate`; every field is a flag and a key of task.toml's [generate]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GenerateConfig:
    """How the teacher is asked for data, and how much."""

    inputs: str | None = field(
        default=None,
        metadata={"help": "JSONL of unlabelled inputs (field 'input'): label mode"},
    )
    num_examples: int = field(default=100, metadata={"help": "accepted examples to produce"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        if self.num_examples <= 0:
            raise ValueError(f"num_examples: must be > 0 (got {self.num_examples})")

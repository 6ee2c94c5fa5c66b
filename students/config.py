"""Settings of `distill train`; every field is a flag and a key of task.toml's [train]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """How the student is built and fine-tuned."""

    student: str = field(
        default="embedded",
        metadata={"help": "preset name (embedded, flan-t5-small, ...), hub id or local path"},
    )
    epochs: int = field(default=3, metadata={"help": "training epochs"})
    lr: float | None = field(
        default=None, metadata={"help": "learning rate (default: the preset's measured value)"}
    )
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs: must be > 0 (got {self.epochs})")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr: must be > 0 (got {self.lr})")

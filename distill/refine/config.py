"""Settings of the active rounds; every field is a flag of `distill refine` / `distill run` and
a key of task.toml's [refine] table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RefineConfig:
    """How many rounds, which inputs they probe, what the teacher writes, how the student
    retrains, and when to stop."""

    rounds: int | None = field(
        default=None,
        metadata={
            "help": "active rounds after training (default: 1 for `distill refine`, 0 (none) "
            "for `distill run`)"
        },
    )
    pool_inputs: str | None = field(
        default=None,
        metadata={
            "help": "JSONL of unlabelled inputs (field 'input') the rounds probe the student "
            "with (default: generate's --inputs when it ran in label mode)",
            "metavar": "FILE.jsonl",
        },
    )
    pool_size: int = field(
        default=200, metadata={"help": "unused pool inputs the teacher labels in each round"}
    )
    seeds_per_request: int = field(
        default=3,
        metadata={
            "help": "disagreements shown as examples in each write-similar request (one request "
            "per this many disagreements)"
        },
    )
    similar_per_request: int = field(
        default=3, metadata={"help": "new examples asked for in each write-similar request"}
    )
    similar_max_tokens: int = field(
        default=512,
        metadata={
            "help": "max tokens of one write-similar answer: it holds similar_per_request "
            "examples, so generate's max_tokens (sized for one label) would cut it"
        },
    )
    round_epochs: int = field(
        default=2,
        metadata={"help": "training epochs of each round (warm start from the current model)"},
    )
    round_min_steps: int = field(
        default=0,
        metadata={"help": "floor on optimizer steps of each round's training (0: epochs only)"},
    )
    min_gain: float = field(
        default=0.5,
        metadata={
            "help": "stop once a round raises the validation metric (train's metric_for_best, "
            "in points: x100) by less than this"
        },
    )

    def __post_init__(self) -> None:
        if self.rounds is not None and self.rounds < 0:
            raise ValueError(f"rounds: must be >= 0 (got {self.rounds})")
        for name in (
            "pool_size",
            "seeds_per_request",
            "similar_per_request",
            "similar_max_tokens",
            "round_epochs",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0 (got {getattr(self, name)})")
        if self.round_min_steps < 0:
            raise ValueError(f"round_min_steps: must be >= 0 (got {self.round_min_steps})")
        if not 0 <= self.min_gain < float("inf"):
            raise ValueError(f"min_gain: must be a finite number >= 0 (got {self.min_gain})")

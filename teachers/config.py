"""Settings of the teacher client; every field is a flag of `generate`/`eval` and a key of [teacher]."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TeacherConfig:
    """Which LLM answers, and how hard we may push it."""

    teacher: str = field(
        default="embedded",
        metadata={"help": "'embedded', 'openai:MODEL', or an OpenAI-compatible base URL (http://host:port/v1)"},
    )
    model: str | None = field(
        default=None, metadata={"help": "model name for a base-URL teacher"}
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "environment variable that holds the API key"}
    )
    budget_usd: float | None = field(
        default=None, metadata={"help": "stop cleanly before spending more than this many dollars"}
    )
    max_in_flight: int = field(default=64, metadata={"help": "cap on concurrent requests"})

    def __post_init__(self) -> None:
        if self.max_in_flight <= 0:
            raise ValueError(f"max_in_flight: must be > 0 (got {self.max_in_flight})")
        if self.budget_usd is not None and self.budget_usd <= 0:
            raise ValueError(f"budget_usd: must be > 0 (got {self.budget_usd})")

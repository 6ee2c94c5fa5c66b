"""Settings of the teacher client; every field is a flag of `generate`/`eval` and a key of [teacher].

Import-light on purpose (stdlib only): `distill --help` and task validation import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EMBEDDED_MODELS = ("qwen", "smollm2")


def parse_teacher_spec(spec: str) -> tuple[str, str | None]:
    """Split a teacher spec into (kind, value): ('embedded', 'qwen'|'smollm2'), ('openai', MODEL),
    or ('url', BASE_URL). Raises ValueError naming `teacher` for anything else."""
    if spec == "embedded":
        return "embedded", "qwen"
    if spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in EMBEDDED_MODELS:
            raise ValueError(
                f"teacher: unknown embedded model {name!r}; available: {', '.join(EMBEDDED_MODELS)}"
            )
        return "embedded", name
    if spec.startswith("openai:"):
        model = spec.split(":", 1)[1].strip()
        if not model:
            raise ValueError("teacher: 'openai:' needs a model name, e.g. openai:gpt-4o-mini")
        return "openai", model
    if spec.startswith(("http://", "https://")):
        return "url", spec.rstrip("/")
    raise ValueError(
        f"teacher: expected 'embedded', 'embedded:smollm2', 'openai:MODEL' or an http(s):// base URL (got {spec!r})"
    )


@dataclass
class TeacherConfig:
    """Which LLM answers, and how hard we may push it."""

    teacher: str = field(
        default="embedded",
        metadata={
            "help": "'embedded' (offline Qwen2.5-Coder-0.5B), 'embedded:smollm2' (tiny, for tests), "
            "'openai:MODEL', or an OpenAI-compatible base URL (http://host:port/v1, needs --model)"
        },
    )
    model: str | None = field(default=None, metadata={"help": "model name for a base-URL teacher"})
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "environment variable that holds the API key"}
    )
    budget_usd: float | None = field(
        default=None,
        metadata={
            "help": "stop cleanly before spending more than this many dollars (in-flight requests count at max cost)"
        },
    )
    max_in_flight: int = field(
        default=64,
        metadata={"help": "cap on concurrent requests (embedded teacher: at most `parallel`)"},
    )
    adaptive: bool = field(
        default=True,
        metadata={
            "help": "adapt concurrency below the cap: halve on 429/timeouts, grow by one per window of successes"
        },
    )
    rpm: int | None = field(
        default=None,
        metadata={
            "help": "requests per minute limit (default: from x-ratelimit-* headers, else none)"
        },
    )
    tpm: int | None = field(
        default=None,
        metadata={
            "help": "tokens per minute limit, prompt + n x max_tokens charged per request (default: from headers)"
        },
    )
    timeout_s: float = field(
        default=120.0,
        metadata={
            "help": "seconds before one HTTP request is abandoned and retried (embedded teacher: at least 600)"
        },
    )
    max_retries: int = field(
        default=6,
        metadata={
            "help": "retries of 429/408/409/5xx/connection errors/timeouts before a request fails"
        },
    )
    backoff_s: float = field(
        default=0.5,
        metadata={
            "help": "first retry waits up to this many seconds (doubling, full jitter, capped at 30 s)"
        },
    )
    prices_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON or TOML file {model: {input, output, cached_input}} in USD per 1M tokens, extends the built-in table"
        },
    )
    cache: bool = field(
        default=True,
        metadata={"help": "reuse answers of identical requests from the request cache"},
    )
    threads: int | None = field(
        default=None, metadata={"help": "embedded teacher: CPU threads (default: all cores)"}
    )
    parallel: int = field(default=2, metadata={"help": "embedded teacher: parallel decoding slots"})
    ctx_size: int = field(
        default=4096, metadata={"help": "embedded teacher: context length per slot in tokens"}
    )

    def __post_init__(self) -> None:
        kind, _ = parse_teacher_spec(self.teacher)
        if kind == "url" and not self.model:
            raise ValueError(f"model: a base-URL teacher ({self.teacher}) needs a model name")
        for name in ("max_in_flight", "parallel", "ctx_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0 (got {getattr(self, name)})")
        for name in ("rpm", "tpm", "threads", "budget_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name}: must be > 0 (got {value})")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0 (got {self.timeout_s})")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s: must be >= 0 (got {self.backoff_s})")
        if self.max_retries < 0:
            raise ValueError(f"max_retries: must be >= 0 (got {self.max_retries})")

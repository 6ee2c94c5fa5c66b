"""Token and cost accounting, the price table, and the budget guard.

Prices are USD per 1M tokens. The built-in table holds list prices of common OpenAI models at the
time of writing (check your provider: they change); a JSON or TOML `prices_file` of the form
`{"my-model": {"input": 0.2, "output": 0.6, "cached_input": 0.1, "batch_input": 0.1,
"batch_output": 0.3}}` extends or overrides it (batch prices: the Batch API's; unset, the
synchronous price is charged).
Model names match exactly, else by the longest known prefix ("gpt-4o-mini-2024-07-18" ->
"gpt-4o-mini").

The budget counts every request in flight at its maximum cost (prompt upper bound + n x
max_tokens at the output price) and refuses to send a request that could take spend + in-flight
reservations past the budget, so the run stops before the budget is exceeded, not after.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from teachers.errors import BudgetExceeded


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens
    cached_input: float | None = None  # USD per 1M prompt tokens served from the provider's cache
    batch_input: float | None = None  # USD per 1M prompt tokens through the Batch API
    batch_output: float | None = None  # USD per 1M completion tokens through the Batch API

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            (prompt - cached) * self.input + cached * cached_rate + completion * self.output
        ) / 1e6

    def for_batch(self) -> Price:
        """The price of a request sent through the Batch API: the batch column where known,
        else the synchronous price (never an underestimate, so a budget stays safe)."""
        return Price(
            self.input if self.batch_input is None else self.batch_input,
            self.output if self.batch_output is None else self.batch_output,
            None if self.batch_input is None else self.batch_input,
        )


def _openai(input: float, output: float, cached: float | None = None) -> Price:
    """An OpenAI list price; the Batch API costs half of the synchronous price."""
    return Price(input, output, cached, input / 2, output / 2)


BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o-mini": _openai(0.15, 0.60, 0.075),
    "gpt-4o": _openai(2.50, 10.00, 1.25),
    "gpt-4.1-nano": _openai(0.10, 0.40, 0.025),
    "gpt-4.1-mini": _openai(0.40, 1.60, 0.10),
    "gpt-4.1": _openai(2.00, 8.00, 0.50),
    "gpt-5-nano": _openai(0.05, 0.40, 0.005),
    "gpt-5-mini": _openai(0.25, 2.00, 0.025),
    "gpt-5": _openai(1.25, 10.00, 0.125),
    "gpt-3.5-turbo": _openai(0.50, 1.50),
}
FREE = Price(0.0, 0.0)


def load_prices(path: str | Path | None) -> dict[str, Price]:
    """The built-in table extended by `path` (JSON or TOML). Errors name `prices_file`."""
    table = dict(BUILTIN_PRICES)
    if path is None:
        return table
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ValueError(f"prices_file: cannot read {path}: {exc}") from exc
    for model, entry in raw.items():
        try:
            table[model] = Price(
                float(entry["input"]),
                float(entry["output"]),
                _opt_float(entry.get("cached_input")),
                _opt_float(entry.get("batch_input")),
                _opt_float(entry.get("batch_output")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"prices_file: {path}: entry {model!r} needs numeric 'input' and 'output' ({exc})"
            ) from exc
    return table


def _opt_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def find_price(table: dict[str, Price], model: str) -> Price | None:
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    return table[max(prefixes, key=len)] if prefixes else None


class Accounting:
    """Counters of one teacher session, plus the budget guard. Single event loop: no locks."""

    def __init__(self, price: Price | None, budget_usd: float | None) -> None:
        self.price = price
        self.budget_usd = budget_usd
        self.requests = 0  # HTTP requests sent (including retries)
        self.retries = 0
        self.failures = 0  # requests given up (RequestFailed)
        self.rate_limited = 0  # 429 answers
        self.cache_hits = 0  # completions served from the request cache
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0  # prompt tokens the provider served from its prompt cache
        self.cost_usd = 0.0
        self.reserved_usd = 0.0  # maximum cost of requests in flight
        # what earlier sessions of the same run spent (set by a resumed `distill generate`
        # from its journal): the budget is the run's, not one session's
        self.spent_before_usd = 0.0
        self._started = time.monotonic()

    def max_cost(self, prompt_upper: int, max_completion: int) -> float:
        return self.price.cost(prompt_upper, max_completion) if self.price else 0.0

    def reserve(self, amount: float) -> None:
        """Claim `amount` for a request about to be sent, or raise BudgetExceeded."""
        if (
            self.budget_usd is not None
            and self.spent_before_usd + self.cost_usd + self.reserved_usd + amount > self.budget_usd
        ):
            before = (
                f"${self.spent_before_usd:.4f} in earlier sessions + "
                if self.spent_before_usd
                else ""
            )
            raise BudgetExceeded(
                f"budget_usd: sending another request could exceed ${self.budget_usd:.4f} "
                f"(spent {before}${self.cost_usd:.4f}, in flight up to ${self.reserved_usd:.4f}, "
                f"this one up to ${amount:.4f})"
            )
        self.reserved_usd += amount

    def release(self, amount: float) -> None:
        self.reserved_usd = max(0.0, self.reserved_usd - amount)

    def record_usage(self, prompt: int, completion: int, cached: int) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cached_tokens += cached
        if self.price is not None:
            self.cost_usd += self.price.cost(prompt, completion, cached)

    def snapshot(self) -> dict:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "rate_limited": self.rate_limited,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "priced": self.price is not None,
            "wall_s": round(time.monotonic() - self._started, 3),
        }

"""Batch requests: the OpenAI Batch API through the official `openai` SDK, and its JSONL format.

The same request file serves two paths:
- `BatchClient` uploads it (`files.create`), creates the batch (`batches.create`), polls it
  (`batches.retrieve`) and downloads the output and error files (`files.content`) from OpenAI
  or any server that implements `/v1/files` and `/v1/batches`;
- `vllm run-batch -i requests.jsonl -o results.jsonl` runs it offline on your own GPUs, and the
  results file is read back with `parse_results`.

A line's `custom_id` is the request cache key (teachers.cache.canonical_key), so an answer is
matched to its request, and to the cache, whatever order the results come back in.

Why the SDK here and aiohttp for streamed requests: these endpoints are a handful of calls per
run (multipart upload, file download, polling), where the SDK's typed models cost nothing and
track the API; the hot path of hundreds of chat requests in flight stays on bare aiohttp.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openai import AsyncOpenAI

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# Error codes of requests the batch never ran: they are resubmitted, not counted as failures.
NOT_RUN = frozenset({"batch_expired", "batch_cancelled"})


def batch_line(custom_id: str, body: dict) -> dict:
    """One line of a Batch API request file."""
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}


@dataclass(frozen=True)
class BatchAnswer:
    """One result line: the answer text, or an error (`not_run`: expired or cancelled)."""

    custom_id: str
    text: str | None
    error: str | None = None
    not_run: bool = False
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def parse_result(row: dict) -> BatchAnswer:
    """A line of an output or error file (OpenAI's format; `vllm run-batch` writes the same)."""
    cid = str(row.get("custom_id") or "")
    err = row.get("error")
    if err:
        code = str(err.get("code") or "") if isinstance(err, dict) else ""
        message = str(err.get("message") or err) if isinstance(err, dict) else str(err)
        return BatchAnswer(cid, None, f"{code}: {message}".strip(": "), code in NOT_RUN)
    response = row.get("response") or {}
    body = response.get("body") or {}
    status = int(response.get("status_code") or 0)
    choices = body.get("choices") if isinstance(body, dict) else None
    if status != 200 or not choices:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        return BatchAnswer(cid, None, f"{status}: {message or 'no choices'}")
    choice = choices[0]
    usage = body.get("usage") or {}
    return BatchAnswer(
        cid,
        (choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def parse_results(lines: Iterable[str]) -> dict[str, BatchAnswer]:
    """custom_id -> answer for the JSONL lines of result files (an answer beats an error)."""
    out: dict[str, BatchAnswer] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            answer = parse_result(json.loads(line))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"batch_results: line {n} is not a batch result ({exc})") from None
        if answer.custom_id and (answer.custom_id not in out or answer.text is not None):
            out[answer.custom_id] = answer
    return out


@dataclass(frozen=True)
class BatchStatus:
    """What `batches.retrieve` says about a batch."""

    id: str
    status: str
    completed: int
    failed: int
    total: int
    output_file_id: str | None
    error_file_id: str | None
    errors: str  # the batch-level errors (a failed validation), joined

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def _status(batch: Any) -> BatchStatus:
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    return BatchStatus(
        batch.id,
        batch.status,
        counts.completed if counts else 0,
        counts.failed if counts else 0,
        counts.total if counts else 0,
        batch.output_file_id,
        batch.error_file_id,
        "; ".join(f"{e.code}: {e.message}" for e in errors),
    )


class BatchClient:
    """files and batches of an OpenAI-compatible server, through the `openai` SDK on aiohttp."""

    def __init__(self, base_url: str, api_key: str | None, max_retries: int, timeout_s: float):
        from openai import AsyncOpenAI, DefaultAioHttpClient

        # A local server (vLLM) needs no key, but the SDK insists on one: any placeholder works.
        self._client: AsyncOpenAI = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "no-key",
            max_retries=max_retries,
            timeout=timeout_s,
            http_client=DefaultAioHttpClient(),
        )

    async def close(self) -> None:
        await self._client.close()

    async def upload(self, data: bytes, name: str) -> str:
        return (await self._client.files.create(file=(name, data), purpose="batch")).id

    async def create(self, input_file_id: str, metadata: dict[str, str]) -> str:
        batch = await self._client.batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata=metadata,
        )
        return batch.id

    async def retrieve(self, batch_id: str) -> BatchStatus:
        return _status(await self._client.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> BatchStatus:
        return _status(await self._client.batches.cancel(batch_id))

    async def content(self, file_id: str | None) -> list[str]:
        """The lines of an output or error file (none when the batch wrote no such file)."""
        if not file_id:
            return []
        response = await self._client.files.content(file_id)
        return response.text.splitlines()

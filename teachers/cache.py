"""Persistent, content-addressed request cache (SQLite in WAL mode).

One row per completion: the key is xxh3_128 of the canonical request (model, messages, sampling
parameters, seed, response format) plus the sample index, so `n` samples of one prompt are n
rows, and a rerun that asks for sample 2 alone finds it. The API key and the base URL are not
part of the request dict and never reach the file. WAL + one commit per answer: a crash loses
at most the answer being written; other processes may read and write the same file at once.

A request that asks for `top_logprobs` has them in its key (see `teachers.client.chat_request`),
so it never hits an answer stored without them; the row keeps them (column `logprobs`, JSON),
and a file written before the column existed gains it on open.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import xxhash


class TokenTop(TypedDict):
    """One answer token and its most likely alternatives: `top` holds [token, logprob] pairs,
    most likely first, as the server listed them (the chosen token is usually among them)."""

    token: str
    top: list[list]  # [[token: str, logprob: float], ...]


@dataclass(frozen=True)
class CacheEntry:
    """A stored completion: its text, and its tokens' log-probabilities when they were asked."""

    text: str
    # None: stored without asking for them; []: asked, and the server sent none
    logprobs: list[TokenTop] | None


def canonical_key(request: dict, sample_index: int) -> str:
    """Stable hex digest of a request (key order and whitespace do not matter)."""
    blob = json.dumps(
        {"request": request, "sample_index": sample_index}, sort_keys=True, separators=(",", ":")
    )
    return xxhash.xxh3_128_hexdigest(blob.encode("utf-8"))


# Seconds a connection waits for another one's lock before giving up.
BUSY_TIMEOUT_S = 30.0


class RequestCache:
    """Maps request keys to completion texts. Use from one event loop thread per instance."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._setup()

    def _setup(self) -> None:
        """WAL mode and the table, retried while another connection holds the lock.

        Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
        locked" at once instead of waiting on its busy handler when several connections open
        the same new file together (seen with 4 threads), so the wait is done here.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # durable at checkpoints; WAL keeps it consistent
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS completions ("
                    "key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, "
                    "finish_reason TEXT, completion_tokens INTEGER, created_julian REAL DEFAULT (julianday('now')), "
                    "logprobs TEXT)"
                )
                self._add_logprobs_column()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _add_logprobs_column(self) -> None:
        """A cache file from before the `logprobs` column gains it (NULL for its old rows)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
        if "logprobs" not in columns:
            try:
                self._db.execute("ALTER TABLE completions ADD COLUMN logprobs TEXT")
            except sqlite3.OperationalError as exc:  # another connection added it first
                if "duplicate column" not in str(exc):
                    raise

    def get(self, key: str) -> str | None:
        entry = self.get_entry(key)
        return None if entry is None else entry.text

    def get_entry(self, key: str) -> CacheEntry | None:
        """The stored text and log-probabilities of `key` (None: not cached)."""
        row = self._db.execute(
            "SELECT text, logprobs FROM completions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return CacheEntry(row[0], json.loads(row[1]) if row[1] is not None else None)

    def put(
        self,
        key: str,
        model: str,
        text: str,
        finish_reason: str | None,
        completion_tokens: int | None,
        logprobs: list[TokenTop] | None = None,
    ) -> None:
        blob = json.dumps(logprobs, ensure_ascii=False) if logprobs is not None else None
        self._db.execute(
            "INSERT OR REPLACE INTO completions (key, model, text, finish_reason, completion_tokens, logprobs) VALUES (?, ?, ?, ?, ?, ?)",
            (key, model, text, finish_reason, completion_tokens, blob),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()

"""Persistent, content-addressed request cache (SQLite in WAL mode).

One row per completion: the key is xxh3_128 of the canonical request (model, messages, sampling
parameters, seed, response format) plus the sample index, so `n` samples of one prompt are n
rows, and a rerun that asks for sample 2 alone finds it. The API key and the base URL are not
part of the request dict and never reach the file. WAL + one commit per answer: a crash loses
at most the answer being written; other processes may read and write the same file at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import xxhash


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
                    "finish_reason TEXT, completion_tokens INTEGER, created_julian REAL DEFAULT (julianday('now')))"
                )
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT text FROM completions WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(
        self,
        key: str,
        model: str,
        text: str,
        finish_reason: str | None,
        completion_tokens: int | None,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO completions (key, model, text, finish_reason, completion_tokens) VALUES (?, ?, ?, ?, ?)",
            (key, model, text, finish_reason, completion_tokens),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self._db.close()

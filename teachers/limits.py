"""Concurrency and rate limits for one event loop (no threads: no locks beyond asyncio's).

- `AdaptiveLimiter`: a semaphore whose size moves with AIMD (additive increase per window of
  successes, multiplicative decrease on 429/timeouts), capped at `max_in_flight`. No batch
  barrier: a finished request frees its slot for the next at once.
- `WindowLimiter`: at most `limit` units (requests or tokens) in any sliding window of
  `window_s` seconds. Why not a plain token bucket: a bucket of capacity C refilling at r/s lets
  C + r*W through in a window W, up to twice the limit a provider measures per minute. The
  sliding window never exceeds it, and charges can be corrected afterwards (usage known late).
"""

from __future__ import annotations

import asyncio
import collections
import time


class AdaptiveLimiter:
    """Caps requests in flight; the cap adapts between 1 and `max_limit` (AIMD)."""

    def __init__(self, max_limit: int, *, adaptive: bool = True) -> None:
        self.max_limit = max_limit
        self.limit = float(max_limit)
        self.adaptive = adaptive
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._last_decrease = float("-inf")

    async def acquire(self) -> None:
        if self.in_flight < int(self.limit) and not self._waiters:
            self._take()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us just as we were cancelled
            raise

    def _take(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self._take()
                fut.set_result(None)

    def on_success(self) -> None:
        """Additive increase: +1 slot after about `limit` successes."""
        if self.adaptive and self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
            self._wake()

    def on_overload(self, sent_at: float) -> None:
        """Multiplicative decrease, once per congestion event: a request sent before the last
        decrease saw the old limit, so its 429 is not news (like TCP's one cut per window)."""
        if self.adaptive and sent_at > self._last_decrease:
            self.limit = max(1.0, self.limit / 2.0)
            self._last_decrease = time.monotonic()


class WindowLimiter:
    """At most `limit` units in any `window_s` window; waiters are served first come first served.

    `margin_s` widens the window a little so that jitter between our send time and the server's
    arrival time cannot squeeze two windows' worth into one of the server's.
    """

    def __init__(self, limit: float, window_s: float, *, margin_s: float = 0.05) -> None:
        self.limit = float(limit)
        self.window_s = window_s + margin_s
        self._entries: collections.deque[list[float]] = collections.deque()  # [time, amount]
        self._total = 0.0
        self._lock = asyncio.Lock()

    def _purge(self, now: float) -> None:
        while self._entries and self._entries[0][0] <= now - self.window_s:
            self._total -= self._entries.popleft()[1]

    async def acquire(self, amount: float = 1.0) -> list[float]:
        """Wait until `amount` fits, record it and return the entry (for `adjust`)."""
        async with self._lock:  # FIFO: only the head waiter sleeps, no thundering herd
            while True:
                now = time.monotonic()
                self._purge(now)
                # An oversized charge may go alone into an empty window, or it would never go.
                if self._total + amount <= self.limit or not self._entries:
                    entry = [now, amount]
                    self._entries.append(entry)
                    self._total += amount
                    return entry
                await asyncio.sleep(max(self._entries[0][0] + self.window_s - now, 0.001))

    def adjust(self, entry: list[float], amount: float) -> None:
        """Correct a charge once the real amount is known (e.g. tokens from `usage`)."""
        if entry in self._entries:
            self._total += amount - entry[1]
        entry[1] = amount


class RateLimits:
    """Requests-per-minute and tokens-per-minute limits, each over one minute and one second
    (providers also enforce the per-minute limit in shorter slices)."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._req = _minute_and_second(rpm)
        self._tok = _minute_and_second(tpm)

    def seed(self, rpm: int | None, tpm: int | None) -> None:
        """Adopt limits a server announced (x-ratelimit-limit-*) where they are tighter."""
        if rpm and (self.rpm is None or rpm < self.rpm):
            self.rpm, self._req = rpm, _minute_and_second(rpm)
        if tpm and (self.tpm is None or tpm < self.tpm):
            self.tpm, self._tok = tpm, _minute_and_second(tpm)

    async def acquire(self, tokens: float) -> list[tuple[WindowLimiter, list[float]]]:
        charges = []
        for lim in self._req:
            charges.append((lim, await lim.acquire(1.0)))
        for lim in self._tok:
            charges.append((lim, await lim.acquire(tokens)))
        return charges

    def correct_tokens(
        self, charges: list[tuple[WindowLimiter, list[float]]], tokens: float
    ) -> None:
        for lim, entry in charges:
            if lim in self._tok:
                lim.adjust(entry, tokens)


def _minute_and_second(per_minute: int | None) -> list[WindowLimiter]:
    if not per_minute:
        return []
    return [WindowLimiter(per_minute, 60.0), WindowLimiter(max(1, per_minute // 60), 1.0)]

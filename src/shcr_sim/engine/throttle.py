"""Release throttle: a token bucket in messages per second, taken per batch."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``await take(n)`` waits until n tokens are available; rate None = unlimited.

    The bucket holds at most one second of tokens (or one batch), so a pause does
    not turn into a burst above the store's ingest limit.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.tokens = 0.0
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate is None or n <= 0:
            return
        capacity = max(self.rate, float(n))
        now = time.monotonic()
        self.tokens = min(capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < n:
            wait = (n - self.tokens) / self.rate
            await asyncio.sleep(wait)
            self.stamp = time.monotonic()
            self.tokens = n
        self.tokens -= n

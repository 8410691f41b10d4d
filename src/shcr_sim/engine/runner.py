"""The release loop for a running engine (MLLP listener, live demo).

Whatever puts messages in the queue (``DurableQueue.accept`` from the MLLP
listener, a file replay in another process), this loop takes them out: first
everything waiting in the live lane, then one bounded backload batch, so a
draining backload never starves live traffic. It sleeps briefly when idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .pipeline import Engine


async def release_forever(
    engine: Engine,
    stop: asyncio.Event,
    *,
    batch: int = 1000,
    idle_sleep: float = 0.2,
    hold_backload: Callable[[], bool] | None = None,
) -> None:
    """Release until ``stop`` is set. ``hold_backload()`` True keeps the backload lane
    waiting (e.g. while its extracts are still being enqueued)."""
    await engine.queue.recover()
    while not stop.is_set():
        moved = await engine.drain("live", batch)
        if hold_backload is None or not hold_backload():
            moved += await engine.release("backload", batch)
        if moved == 0:
            try:
                await asyncio.wait_for(stop.wait(), idle_sleep)
            except TimeoutError:
                pass

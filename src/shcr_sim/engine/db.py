"""Opening the engine's SQLite file: WAL, one writer, explicit transactions."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from shcr_sim.store.sqlite import connect  # one way to open the shared file: the store's

__all__ = ["connect", "fetch_in", "transaction"]


# One transaction at a time per connection: coroutines sharing a connection (the
# MLLP listener's accept and the release loop, say) would otherwise interleave
# their statements inside each other's BEGIN … COMMIT.
_LOCKS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception; serialised per connection."""
    lock = _LOCKS.get(conn)
    if lock is None:
        lock = _LOCKS[conn] = asyncio.Lock()
    async with lock:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


async def fetch_in(
    conn: aiosqlite.Connection, sql: str, values: Sequence[Any], chunk: int = 500
) -> list[Any]:
    """Run ``sql`` (with one ``{in}`` placeholder list) over values in chunks."""
    out: list[Any] = []
    for i in range(0, len(values), chunk):
        part = values[i : i + chunk]
        marks = ",".join("?" * len(part))
        async with conn.execute(sql.format(marks=marks), part) as cur:
            out.extend(await cur.fetchall())
    return out

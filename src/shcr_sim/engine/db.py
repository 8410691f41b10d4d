"""Opening the engine's SQLite file: WAL, one writer, explicit transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

# one way to open the shared file, and one lock per connection: the store's
from shcr_sim.store.sqlite import (
    connect,
    has_layout,
    is_table,
    migrate,
    open_reader,
    retry_locked,
    write_lock,
)

__all__ = ["connect", "fetch_in", "has_layout", "is_table", "migrate", "open_reader",
           "transaction"]


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception; serialised per connection
    (``store.sqlite.write_lock``: the store's own transactions on it take the same lock)."""
    async with write_lock(conn):
        await retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"))
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

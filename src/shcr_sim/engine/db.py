"""Opening the engine's SQLite file: WAL, one writer, explicit transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

# Checkpoint every ~64 MiB of WAL rather than 4 MiB: a batch writes several MiB, so
# the default copied the WAL back into the file (and synced it) on nearly every commit.
WAL_CHECKPOINT_PAGES = 16384


async def connect(db_path: str | Path, synchronous: str = "NORMAL") -> aiosqlite.Connection:
    """Autocommit connection (we issue BEGIN IMMEDIATE ourselves) in WAL mode.

    WAL + synchronous=NORMAL survives a killed process (every commit is in the WAL
    before ``commit`` returns); pass ``synchronous="FULL"`` to survive power loss too.
    """
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    await conn.execute("PRAGMA busy_timeout=60000")
    await conn.execute("PRAGMA temp_store=MEMORY")
    await conn.execute("PRAGMA cache_size=-65536")
    await conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    return conn


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
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

"""A transaction on a connection whose own read is still open waits, instead of failing.

With a read statement open on a connection (a coroutine between its ``execute`` and
its ``fetchall``) and another connection having written since, SQLite refuses
BEGIN IMMEDIATE at once with "database is locked" — the busy timeout does not
apply. The engine's queue and its store share one connection (release loop, store
outage switch, merges, meta), and in a live run a second process (the backload
replay) writes the same file: the run with every fault hit this about one run in
three.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shcr_sim.engine.db import transaction
from shcr_sim.store import SqliteStore, prepare
from shcr_sim.store.sqlite import connect


async def _stale_read(tmp_path: Path):  # noqa: ANN202
    conn = await connect(tmp_path / "x.db")
    other = await connect(tmp_path / "x.db")
    await conn.execute("CREATE TABLE t(x INTEGER)")
    await conn.executemany("INSERT INTO t VALUES(?)", [(i,) for i in range(50)])
    cur = await conn.execute("SELECT x FROM t")  # first row stepped: the snapshot is pinned
    await other.execute("INSERT INTO t VALUES(99)")  # someone else moves the database on
    return conn, other, cur


async def _finish_later(cur) -> int:  # noqa: ANN001
    await asyncio.sleep(0.05)
    rows = await cur.fetchall()
    await cur.close()
    return len(rows)


async def test_plain_begin_fails_at_once_while_a_read_is_open(tmp_path: Path) -> None:
    conn, other, cur = await _stale_read(tmp_path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await conn.execute("BEGIN IMMEDIATE")  # what the guard below is for
    finally:
        await cur.close()
        await conn.close()
        await other.close()


async def test_transaction_waits_for_the_open_read(tmp_path: Path) -> None:
    conn, other, cur = await _stale_read(tmp_path)
    reader = asyncio.create_task(_finish_later(cur))
    async with transaction(conn):
        await conn.execute("INSERT INTO t VALUES(1)")
    assert await reader == 50  # the read finished, on its own snapshot
    async with conn.execute("SELECT COUNT(*) FROM t") as c:
        assert (await c.fetchone())[0] == 52
    await conn.close()
    await other.close()


async def test_store_writes_wait_for_the_open_read(tmp_path: Path) -> None:
    conn, other, cur = await _stale_read(tmp_path)
    reader = asyncio.create_task(_finish_later(cur))
    store = await SqliteStore.on(conn)  # creates its tables on the shared connection
    assert await reader == 50
    reader = asyncio.create_task(_finish_later(await conn.execute("SELECT x FROM t")))
    await other.execute("INSERT INTO t VALUES(100)")
    await store.set_unavailable(0.0)  # an autocommit write on the shared connection
    assert await reader == 51
    assert await store.unavailable_for() == 0.0
    reader = asyncio.create_task(_finish_later(await conn.execute("SELECT x FROM t")))
    await other.execute("INSERT INTO t VALUES(101)")
    write = prepare({"resourceType": "Organization", "id": "o1", "name": "Trust"},
                    "0001", "2024-01-01", "PAS|RXX01|1")
    result = await store.apply_prepared([write])  # a whole batch on the shared connection
    assert result.created == 1
    assert await reader == 52
    assert (await store.current("Organization", "o1"))["name"] == "Trust"
    await conn.close()
    await other.close()

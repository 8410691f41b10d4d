"""The WAL is copied back into the database file by a thread of the writing process,
so the writer's COMMIT doesn't; the thread ends with the connection it serves."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import aiosqlite
import pytest

from shcr_sim.store import sqlite as store_sqlite


def _checkpointers() -> int:
    return sum(t.name == "wal-checkpoint" for t in threading.enumerate())


def _scaled_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread's thresholds at a test's scale: from 256 KiB of WAL file, polled every
    10 ms; writes of 2 MiB a second are heavy; otherwise every 50 ms."""
    monkeypatch.setattr(store_sqlite, "BACKGROUND_CHECKPOINT_BYTES", 256 << 10)
    monkeypatch.setattr(store_sqlite, "CHECKPOINT_POLL_S", 0.01)
    monkeypatch.setattr(store_sqlite, "HEAVY_BYTES_PER_S", 2 << 20)
    monkeypatch.setattr(store_sqlite, "QUIET_CHECKPOINT_S", 0.05)


async def _largest_wal_while_writing(conn: aiosqlite.Connection, wal: str) -> int:
    """Write ~6 MB, 100 kB a commit, pausing for the thread; the WAL file's largest size."""
    largest = 0
    for i in range(60):
        await conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
        largest = max(largest, os.path.getsize(wal))
        if i % 5 == 4:
            await asyncio.sleep(0.1)  # let the thread checkpoint
    return largest


async def test_wal_stays_small_while_the_writer_never_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scaled_down(monkeypatch)
    monkeypatch.setattr(store_sqlite, "WAL_KEPT_BYTES", 64 << 10)
    before = _checkpointers()
    db = tmp_path / "c.db"
    conn = await store_sqlite.connect(db)
    assert _checkpointers() == before + 1
    async with conn.execute("PRAGMA wal_autocheckpoint") as cur:
        row = await cur.fetchone()
    assert row is not None and row[0] * 8192 >= 256 << 20  # the writer's own: far above
    await conn.execute("CREATE TABLE t (b BLOB)")
    # without the thread the WAL would hold every frame written (~6 MB)
    assert await _largest_wal_while_writing(conn, str(db) + "-wal") < 4 << 20
    # once the thread has checkpointed what is left, the next commit restarts the WAL
    # and cuts a file beyond WAL_KEPT_BYTES back to it (the most the file keeps
    # between cycles)
    for _ in range(100):
        await conn.execute("INSERT INTO t VALUES (x'00')")
        if os.path.getsize(str(db) + "-wal") < 256 << 10:
            break
        await asyncio.sleep(0.05)
    assert os.path.getsize(str(db) + "-wal") < 256 << 10
    await conn.execute("DELETE FROM t WHERE length(b) = 1")
    async with conn.execute("SELECT COUNT(*), SUM(length(b)) FROM t") as cur:
        assert await cur.fetchone() == (60, 6_000_000)
    await conn.close()
    for _ in range(100):
        if _checkpointers() == before:
            break
        await asyncio.sleep(0.01)
    assert _checkpointers() == before


async def test_the_wal_file_is_reused_not_cut_back_and_regrown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the writer's own fallback (256 MiB) a restarted WAL keeps its file: the
    writer overwrites blocks it already has instead of the file system freeing and
    allocating them again at every cycle."""
    monkeypatch.setattr(store_sqlite, "BACKGROUND_CHECKPOINT_BYTES", 1 << 40)  # not here
    db = tmp_path / "c.db"
    wal = str(db) + "-wal"
    conn = await store_sqlite.connect(db)
    async with conn.execute("PRAGMA journal_size_limit") as cur:
        limit = (await cur.fetchone())[0]  # type: ignore[index]
    async with conn.execute("PRAGMA wal_autocheckpoint") as cur:
        fallback = (await cur.fetchone())[0] * 8192  # type: ignore[index]
    assert limit >= fallback >= 256 << 20
    await conn.execute("CREATE TABLE t (b BLOB)")
    for _ in range(100):  # ~10 MB of frames, beyond the 8 MiB the file was once cut to
        await conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
    grown = os.path.getsize(wal)
    assert grown > 9 << 20
    async with conn.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
        busy, frames, done = await cur.fetchone()  # type: ignore[misc]
    assert busy == 0 and frames == done  # all of it copied back: the next commit restarts
    sizes = []
    for _ in range(20):
        await conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
        sizes.append(os.path.getsize(wal))
    assert sizes == [grown] * 20  # neither cut back nor grown: the frames went in front
    await conn.close()


async def test_after_close_the_database_file_alone_holds_everything(tmp_path: Path) -> None:
    """The checkpoint thread closes first, so the writer's close is the last one: it
    copies the WAL back and deletes it (a copy of the .db file is the whole database)."""
    db = tmp_path / "c.db"
    conn = await store_sqlite.connect(db)
    await conn.execute("CREATE TABLE t (b BLOB)")
    await conn.execute("INSERT INTO t VALUES (?)", (b"x" * 50_000,))
    await conn.close()
    assert not Path(str(db) + "-wal").exists()
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    conn = await store_sqlite.connect(copy)
    async with conn.execute("SELECT length(b) FROM t") as cur:
        assert await cur.fetchone() == (50_000,)
    await conn.close()


async def test_one_thread_per_file_until_its_last_connection_closes(tmp_path: Path) -> None:
    """Two connections on one file (the live engine's queue and store) share one thread;
    closing the first leaves it running, closing the last stops it and folds the WAL."""
    before = _checkpointers()
    db = tmp_path / "c.db"
    first = await store_sqlite.connect(db)
    second = await store_sqlite.connect(tmp_path / "." / "c.db")  # the same file
    other = await store_sqlite.connect(tmp_path / "other.db")
    assert _checkpointers() == before + 2
    await first.execute("CREATE TABLE t (b BLOB)")
    await first.close()
    assert _checkpointers() == before + 2
    await second.execute("INSERT INTO t VALUES (?)", (b"y" * 20_000,))
    await second.close()
    assert _checkpointers() == before + 1
    assert not Path(str(db) + "-wal").exists()
    again = await store_sqlite.connect(db)  # a new thread for a file opened again
    assert _checkpointers() == before + 2
    await again.close()
    await other.close()
    assert _checkpointers() == before


async def test_a_database_opened_through_a_symlink_is_checkpointed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite puts the WAL beside the link's target; the thread looks for it there."""
    _scaled_down(monkeypatch)
    (tmp_path / "data").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "data" / "c.db"
    link = tmp_path / "links" / "c.db"
    link.symlink_to(target)
    conn = await store_sqlite.connect(link)
    await conn.execute("CREATE TABLE t (b BLOB)")
    assert Path(str(target) + "-wal").exists() and not Path(str(link) + "-wal").exists()
    # without the thread it would hold every frame written (~6 MB)
    assert await _largest_wal_while_writing(conn, str(target) + "-wal") < 4 << 20
    await conn.close()


async def test_a_trickle_of_writes_is_checkpointed_every_quiet_interval_not_every_poll(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the kept WAL file is large, its size says nothing; a live engine's small
    commits are checkpointed (two syncs each) every quiet interval, not at every poll."""
    _scaled_down(monkeypatch)
    monkeypatch.setattr(store_sqlite, "QUIET_CHECKPOINT_S", 0.25)
    rule = store_sqlite._checkpoint_due
    checkpoints: list[bool] = []

    def counted(*args: float) -> bool:
        due = rule(*args)  # type: ignore[arg-type]
        checkpoints.append(due)
        return due

    monkeypatch.setattr(store_sqlite, "_checkpoint_due", counted)
    db = tmp_path / "c.db"
    conn = await store_sqlite.connect(db)
    await conn.execute("CREATE TABLE t (b BLOB)")
    for _ in range(10):  # ~1 MB: the file is beyond the thread's threshold from now on
        await conn.execute("INSERT INTO t VALUES (?)", (os.urandom(100_000),))
    await asyncio.sleep(0.3)
    assert os.path.getsize(str(db) + "-wal") >= 256 << 10
    checkpoints.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < 1.5:  # a trickle: a small commit every 20 ms (< 1 MiB/s)
        await conn.execute("INSERT INTO t VALUES (x'00')")
        await asyncio.sleep(0.02)
    polls, done = len(checkpoints), sum(checkpoints)
    await conn.close()
    assert polls >= 40  # the thread kept polling
    assert 2 <= done <= 10  # about one every 0.25 s: still checkpointed, not at every poll


def test_the_rule_goes_by_the_rate_the_last_checkpoint_saw() -> None:
    due, quiet = store_sqlite._checkpoint_due, store_sqlite.QUIET_CHECKPOINT_S
    big, heavy = store_sqlite.BACKGROUND_CHECKPOINT_BYTES, store_sqlite.HEAVY_BYTES_PER_S
    assert not due(big - 1, True, 3600.0, 1e9)  # a small WAL file: never
    assert due(big, False, 0.2, heavy)  # heavy writes: at every poll
    assert due(big, True, 0.2, 0.0)  # the file grew: the WAL holds more than ever
    assert not due(big, False, quiet * 0.9, heavy * 0.9)  # a trickle: not yet
    assert due(big, False, quiet, 0.0)  # a trickle: after the quiet interval
    copied = store_sqlite._frames_copied
    assert copied((100, 40), (160, 160)) == 120  # the same WAL: what was left, and more
    assert copied((100, 100), (160, 160)) == 160  # caught up: restarted from its first frame
    assert copied((100, 100), (100, 100)) == 0  # a pause: nothing written, nothing copied
    assert copied((900, 900), (40, 40)) == 40
    assert copied((0, 0), (500, 480)) == 480  # a reader kept the last 20 back

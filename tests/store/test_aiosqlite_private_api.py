"""The store leans on two private aiosqlite names; an upgrade that drops them fails here.

``SqliteStore.apply_prepared`` runs a whole transaction in one hop to the
connection's thread with ``Connection._execute(fn, *args)``, and the function uses
the thread's ``sqlite3.Connection`` through ``Connection._conn``.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import aiosqlite

from shcr_sim.store import SqliteStore

PINNED = "tested with aiosqlite 0.22.1: keep it pinned below 0.23 until this is rewritten"


async def test_private_execute_and_conn_still_work(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        conn = store.conn
        assert isinstance(conn, aiosqlite.Connection)
        assert callable(getattr(conn, "_execute", None)), (
            f"aiosqlite {aiosqlite.__version__} has no Connection._execute: "
            f"SqliteStore.apply_prepared needs rewriting ({PINNED})")

        def on_its_thread(x: int) -> tuple[int, int]:
            db = conn._conn  # the thread-bound sqlite3 connection
            assert isinstance(db, sqlite3.Connection), (
                f"aiosqlite {aiosqlite.__version__}: Connection._conn is not a "
                f"sqlite3.Connection ({PINNED})")
            return threading.get_ident(), db.execute("SELECT ?", (x,)).fetchone()[0]

        thread, value = await conn._execute(on_its_thread, 7)
        assert value == 7
        assert thread != threading.get_ident()  # ran on the connection's thread, not ours
    finally:
        await store.close()

"""Commands that look at a database write nothing to it and start no checkpoint thread:
verify, the shared record and the dead letters read through ``query_only`` connections."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from engine_helpers import adt, cli, replay_json, write_messages, write_scenario

from shcr_sim.engine.deadletter import list_dead, show
from shcr_sim.engine.queue import DurableQueue
from shcr_sim.engine.verify import verify
from shcr_sim.store import SqliteStore, compress
from shcr_sim.store import sqlite as store_sqlite
from shcr_sim.store.base import NotAStore
from shcr_sim.store.record import load_record


def _replayed(tmp_path: Path) -> tuple[Path, Path]:
    scen = write_scenario(tmp_path / "s.toml")
    src = write_messages(tmp_path / "x/backload/adt.hl7", [
        adt("1", "20240101120000+0000", mtype="ADT^A01", family="OLDEST", visit="V1"),
        adt("2", "20240201120000+0000", mtype="ADT^A08", family="NEWER"),
    ])
    write_messages(src.parent / "stranger.hl7", [  # an unknown sender: one dead letter
        adt("9", "20240102120000+0000", fac="RZZ99")])
    db = tmp_path / "db.sqlite"
    replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(scen))
    return db, src.parents[1]


def _files(db: Path) -> dict[str, str]:
    """Every file of the database (a WAL or shared-memory file included) by its digest."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(db.parent.glob(db.name + "*"))}


async def test_reading_commands_leave_the_database_as_they_found_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, src = _replayed(tmp_path)
    before = _files(db)
    assert list(before) == [db.name]  # the replay folded its WAL back in on close
    threads: list[str] = []
    start = store_sqlite._checkpoint_in_background
    monkeypatch.setattr(store_sqlite, "_checkpoint_in_background",
                        lambda conn, path, sync: (threads.append(path), start(conn, path, sync)))
    result = await verify(db, [src], workers=0)
    assert result.ok and result.resources > 0
    dead, total = await list_dead(db)
    assert total == 1 and "unknown sender" in dead[0].reason
    assert (await show(db, dead[0].seq)) is not None
    store = await SqliteStore.open_for_reading(db)
    try:
        record = await load_record(store, "9990000018")
        assert record.patients
        with pytest.raises(aiosqlite.OperationalError, match="readonly"):
            await store.conn.execute("DELETE FROM resource")
    finally:
        await store.close()
    assert threads == []
    assert _files(db) == before


async def test_a_database_without_this_releases_dictionary_is_read_without_adding_it(
        tmp_path: Path) -> None:
    """A database written by an earlier release holds only that release's dictionary;
    reading it adds nothing, and the reader still unpacks what this release packs
    (verify's expected side)."""
    db, _src = _replayed(tmp_path)
    mine = compress.dictionary().dict_id()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM store_dictionary WHERE dict_id=?", (mine,))
        conn.execute("INSERT INTO store_dictionary VALUES(1, x'00')")  # another release's
    store = await SqliteStore.open_for_reading(db)
    try:
        body = b'{"resourceType":"Patient","id":"p"}'
        assert store.unpacker.json(compress.pack(body)) == body
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT dict_id FROM store_dictionary").fetchall() == [(1,)]


async def test_reading_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="database not found"):
        await SqliteStore.open_for_reading(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


async def test_a_file_without_a_store_or_queue_is_reported_not_written(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NotAStore, match="holds no record store"):
        await SqliteStore.open_for_reading(empty)
    with pytest.raises(NotAStore, match="holds no queue"):
        await DurableQueue.open_for_reading(empty)
    assert empty.stat().st_size == 0
    out = cli("record", "--db", str(empty), "9990000018", check=False)
    assert out.returncode == 2 and "holds no record store" in out.stderr
    assert empty.stat().st_size == 0

"""Each version's JSON is on disk once, and history still reads every version whole."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from shcr_sim.store import SqliteStore, Write, content_hash, prepare, strip_meta
from shcr_sim.store.base import NotAStore
from shcr_sim.store.compress import shipped_unpacker
from shcr_sim.store.sqlite import connect, connect_for_reading


def patient(family: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": family}], **extra}


async def test_history_reads_whole_versions_with_json_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    await s.apply([Write(patient("A"), "0001", "e1", "m1")])
    await s.apply([Write(patient("Old"), "0000", "e0", "m0")])  # history only
    await s.apply([Write(patient("B"), "0002", "e2", "m2"),  # current, then superseded
                   Write(patient("C"), "0003", "e3", "m3")])  # in the same batch
    hist = await s.history("Patient", "p1")
    assert [strip_meta(h.resource)["name"][0]["family"] for h in hist] == ["A", "Old", "B", "C"]
    assert [h.resource["meta"]["versionId"] for h in hist] == ["1", "2", "3", "4"]
    await s.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT version, json IS NULL FROM resource_history "
                            "WHERE rkey='Patient/p1' ORDER BY version").fetchall()
    assert rows == [(1, 0), (2, 0), (3, 0), (4, 1)]  # only the current one lives in resource


def test_prepared_hash_is_the_content_hash_and_other_meta_is_kept() -> None:
    res = patient("A", meta={"versionId": "9", "lastUpdated": "x", "profile": ["urn:p"]})
    p = prepare(res, "k", "e", "m")
    stored = json.loads(shipped_unpacker().json(p.body))
    assert p.hash == content_hash(res) and stored["meta"] == {"profile": ["urn:p"]}
    assert p.rkey == "Patient/p1" and p.idents == ()


async def test_other_meta_survives_the_store(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    await s.apply([Write(patient("A", meta={"profile": ["urn:p"]}), "0001", "e", "m1")])
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["meta"]["profile"] == ["urn:p"]
    assert cur["meta"]["versionId"] == "1"
    assert await s.counts_by_type() == {"Patient": 1}
    await s.close()


async def test_versions_made_current_in_separate_batches_all_stay_in_history(
        tmp_path: Path) -> None:
    """Each batch's new current version takes the next number: none overwrites another."""
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    for family, key, mid in [("A", "0001", "m1"), ("B", "0002", "m2"), ("C", "0003", "m3"),
                             ("Old", "0000", "m0")]:
        await s.apply([Write(patient(family), key, "e" + key, mid)])
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.current, h.message_id) for h in hist] == [
        (1, True, "m1"), (2, True, "m2"), (3, True, "m3"), (4, False, "m0")]
    assert [strip_meta(h.resource)["name"][0]["family"] for h in hist] == ["A", "B", "C", "Old"]
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["name"][0]["family"] == "C" and cur["meta"]["versionId"] == "3"
    await s.close()


OLD_LAYOUT = """
CREATE TABLE resource (rkey TEXT PRIMARY KEY, rtype TEXT NOT NULL, rid TEXT NOT NULL,
  version INTEGER NOT NULL, max_version INTEGER NOT NULL, last_updated TEXT NOT NULL,
  event_time TEXT NOT NULL, order_key TEXT NOT NULL, message_id TEXT NOT NULL,
  patient_key TEXT NOT NULL, hash TEXT NOT NULL, json BLOB NOT NULL);
CREATE TABLE resource_history (rkey TEXT NOT NULL, version INTEGER NOT NULL,
  made_current INTEGER NOT NULL, last_updated TEXT NOT NULL, event_time TEXT NOT NULL,
  order_key TEXT NOT NULL, message_id TEXT NOT NULL, hash TEXT NOT NULL, json BLOB,
  PRIMARY KEY (rkey, version));
"""


def _old_database(db: Path, current: tuple, history: list[tuple]) -> None:
    """A database in the older layout: one ``resource`` row and its history rows."""
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_LAYOUT)
        conn.execute("INSERT INTO resource VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", current)
        conn.executemany("INSERT INTO resource_history VALUES(?,?,?,?,?,?,?,?,?)", history)


def _body(family: str, version: int) -> str:
    return json.dumps({"meta": {"versionId": str(version), "lastUpdated": f"t{version}"},
                       "resourceType": "Patient", "id": "p1", "name": [{"family": family}]})


async def test_a_database_with_the_older_history_table_is_moved_over(tmp_path: Path) -> None:
    """Version 1 superseded, version 2 current (absorbed a newer same-content event since),
    version 3 an older event kept as history only."""
    db = tmp_path / "old.db"
    _old_database(db, ("Patient/p1", "Patient", "p1", 2, 3, "t2", "e5", "0005", "m5", "P1",
                       "h2", _body("B", 2)), [
        ("Patient/p1", 1, 1, "t1", "e1", "0001", "m1", "h1", _body("A", 1)),
        ("Patient/p1", 2, 1, "t2", "e2", "0002", "m2", "h2", None),
        ("Patient/p1", 3, 0, "t3", "e0", "0000", "m0", "h3", _body("Old", 3)),
    ])
    s = await SqliteStore.open(db)
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.current, h.event_time, h.order_key, h.message_id) for h in hist] == [
        (1, True, "e1", "0001", "m1"), (2, True, "e2", "0002", "m2"),
        (3, False, "e0", "0000", "m0")]
    assert [h.resource["name"][0]["family"] for h in hist] == ["A", "B", "Old"]
    # the moved database takes new versions as a new one would
    await s.apply([Write(patient("D"), "0009", "e9", "m9")])
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.message_id) for h in hist][-1] == (4, "m9")
    assert hist[1].resource["name"][0]["family"] == "B"
    await s.close()
    with sqlite3.connect(db) as conn:
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name='resource_history'")
        assert kind.fetchone() == ("view",)
    await (await SqliteStore.open(db)).close()  # opening again finds nothing to move


async def test_reading_an_older_layout_moves_it_over_first(tmp_path: Path) -> None:
    """Only a writer can move an older layout over, so a reader (verify, record) opens
    it as the writer would rather than read tables that are not there yet."""
    db = tmp_path / "old.db"
    _old_database(db, ("Patient/p1", "Patient", "p1", 1, 1, "t1", "e1", "0001", "m1", "P1",
                       "h1", _body("A", 1)), [
        ("Patient/p1", 1, 1, "t1", "e1", "0001", "m1", "h1", None)])
    s = await SqliteStore.open_for_reading(db)
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.current, h.resource["name"][0]["family"]) for h in hist] == [
        (1, True, "A")]
    await s.close()
    with sqlite3.connect(db) as conn:
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name='resource_history'")
        assert kind.fetchone() == ("view",)


async def test_what_follows_a_new_current_version_in_its_batch_is_kept(tmp_path: Path) -> None:
    """In one batch: a version made current, then an older event (history only) and a
    newer event with the same content. The row remembers both: the next version takes
    a fresh number, and an event between the two can't become current."""
    s = await SqliteStore.open(tmp_path / "s.db")
    await s.apply([Write(patient("X"), "0005", "e5", "m5"),
                   Write(patient("Old"), "0001", "e1", "m1"),
                   Write(patient("X"), "0007", "e7", "m7")])
    await s.apply([Write(patient("Y"), "0006", "e6", "m6")])  # older than 0007: history
    await s.apply([Write(patient("Z"), "0009", "e9", "m9")])
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.current, h.message_id) for h in hist] == [
        (1, True, "m5"), (2, False, "m1"), (3, False, "m6"), (4, True, "m9")]
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["name"][0]["family"] == "Z"
    await s.close()


async def test_moving_over_repairs_a_version_number_left_behind(tmp_path: Path) -> None:
    """The older layout could leave ``max_version`` behind and a superseded version
    under the current one's number: both versions survive, and new ones number on."""
    db = tmp_path / "old.db"
    _old_database(db, ("Patient/p1", "Patient", "p1", 2, 1, "t3", "e3", "0003", "m3", "P1",
                       "h3", _body("C", 2)), [
        ("Patient/p1", 1, 1, "t1", "e1", "0001", "m1", "h1", _body("A", 1)),
        ("Patient/p1", 2, 1, "t2", "e2", "0002", "m2", "h2", _body("B", 2)),  # stranded
    ])
    s = await SqliteStore.open(db)
    await s.apply([Write(patient("D"), "0004", "e4", "m4")])
    await s.apply([Write(patient("E"), "0005", "e5", "m5")])
    hist = await s.history("Patient", "p1")
    families = {h.message_id: h.resource["name"][0]["family"] for h in hist}
    assert families == {"m1": "A", "m2": "B", "m3": "C", "m4": "D", "m5": "E"}
    assert len({h.version for h in hist}) == 5
    assert [h.message_id for h in hist if h.current][-1] == "m5"
    await s.close()


@pytest.mark.parametrize("opening", ["writer", "reader"])
async def test_a_file_that_is_not_sqlite_is_not_a_store_and_its_connection_is_closed(
        tmp_path: Path, opening: str, connection_threads) -> None:
    """Left open, the failed connection's thread kept the process from exiting."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 200)
    connection_threads.mark()
    with pytest.raises(NotAStore, match="is not an SQLite database"):
        if opening == "writer":
            await connect(garbage)
        else:
            await connect_for_reading(garbage)
    assert not connection_threads.left_open()
    assert garbage.read_bytes() == b"not a database at all " * 200

"""DurableQueue: accept commits, de-duplicates, dead-letters with reasons, survives reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from engine_helpers import tally, tally_is_exact
from hypothesis import given, settings
from hypothesis import strategies as st

from shcr_sim.engine.queue import (
    TALLY_KEY,
    DurableQueue,
    Inbound,
    create_schema,
    set_states,
    tallied,
    unstage,
)


def adt(cid: str, nhs: str = "9990000018", app: str = "PAS", fac: str = "RXX01",
        evn: str = "20240101120000+0000", mtype: str = "ADT^A01") -> str:
    return "\r".join([
        f"MSH|^~\\&|{app}|{fac}|SHCR|SHCR|20240101120500+0000||{mtype}|{cid}|P|2.4",
        f"EVN|A01|{evn}",
        f"PID|1||{nhs}^^^NHS^NH~M123^^^{fac}^PI||Smith^Ann||19700101|F",
        "PV1|1|I",
    ])


async def test_accept_then_reopen_keeps_rows(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = await DurableQueue.open(db, senders=[("PAS", "RXX01")])
    out = await q.accept([Inbound(adt("1"), "live", "t"), Inbound(adt("2"), "backload", "f")])
    assert [a.status for a in out] == ["queued", "queued"]
    assert out[1].seq == out[0].seq + 1
    await q.close()
    q2 = await DurableQueue.open(db)
    assert q2.senders == {("PAS", "RXX01"): "Europe/London"}
    assert await q2.counts() == {"queued": 2}
    row = await q2.get(out[0].seq)
    assert row is not None and row.patient_key == "nhs:9990000018"
    assert row.message_type == "ADT^A01" and row.lane == "live"
    await q2.close()


async def test_duplicates_first_wins_and_are_counted(tmp_path: Path) -> None:
    q = await DurableQueue.open(tmp_path / "q.db")
    a = await q.accept([Inbound(adt("1")), Inbound(adt("1"))])
    b = await q.accept([Inbound(adt("1"))])
    assert [x.status for x in a + b] == ["queued", "duplicate", "duplicate"]
    assert f"queue entry {a[0].seq}" in b[0].reason
    assert await q.counts() == {"queued": 1, "duplicate": 2}
    await q.close()


async def test_bad_messages_dead_lettered_with_reason(tmp_path: Path) -> None:
    q = await DurableQueue.open(tmp_path / "q.db", senders=[("PAS", "RXX01")])
    no_pid = adt("3").replace("PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI", "PID|1||")
    out = await q.accept([
        Inbound("garbage \x00\xff bytes"),
        Inbound(adt("1", app="OTHER", fac="ZZZ")),
        Inbound(no_pid),
        Inbound(adt("4")),
        Inbound(adt("", evn="")),
    ])
    assert [x.status for x in out] == [
        "dead-lettered", "dead-lettered", "dead-lettered", "queued", "dead-lettered"]
    assert "MSH" in out[0].reason
    assert "unknown sender" in out[1].reason and "MSH-3/MSH-4" in out[1].reason
    assert "PID-3" in out[2].reason
    assert "MSH-10" in out[4].reason
    await q.close()


async def test_claim_orders_by_patient_then_event_time(tmp_path: Path) -> None:
    q = await DurableQueue.open(tmp_path / "q.db")
    await q.accept([
        Inbound(adt("3", evn="20240103000000+0000", mtype="ADT^A03"), "backload"),
        Inbound(adt("1", evn="20240101000000+0000", mtype="ADT^A01"), "backload"),
        Inbound(adt("2", evn="20240101000000+0000", mtype="ADT^A04"), "backload"),
    ])
    rows = await q.claim("backload", 10)
    assert [r.control_id for r in rows] == ["2", "1", "3"]  # A04 before A01 at the same time
    assert await q.claim("backload", 10) == []
    assert await q.recover() == 3
    await q.finish(applied=[r.seq for r in await q.claim("backload", 10)])
    assert await q.counts() == {"applied": 3}
    await q.close()


async def test_staged_rows_are_queued_and_seen_but_claimed_only_once_moved(
        tmp_path: Path) -> None:
    """A replay's backload waits in the stage in arrival order: queued, counted, read
    through the view and reconciled like any row, but claimed only after ``unstage``
    has moved it into claim order. Duplicates and dead letters are not staged."""
    from shcr_sim.engine.reconcile import reconcile

    db = tmp_path / "q.db"
    q = await DurableQueue.open(db, senders=[("PAS", "RXX01")])
    out = await q.accept([
        Inbound(adt("3", nhs="9990000026", evn="20240103000000+0000"), "backload", "f"),
        Inbound(adt("1", evn="20240102000000+0000"), "backload", "f"),
        Inbound(adt("1", evn="20240102000000+0000"), "backload", "f"),
        Inbound(adt("2", evn="20240101000000+0000"), "backload", "f"),
        Inbound(adt("4", app="XXX"), "backload", "f"),
    ], stage=True)
    assert [a.status for a in out] == ["queued", "queued", "duplicate", "queued",
                                       "dead-lettered"]
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT seq FROM queue_stage")] == [
            out[0].seq, out[1].seq, out[3].seq]
        assert {r[0] for r in conn.execute("SELECT state FROM queue_state")} == {
            "duplicate", "dead-lettered"}
    assert await q.counts() == {"queued": 3, "duplicate": 1, "dead-lettered": 1}
    assert await q.depth("backload") == 3 and await q.depth("live") == 0
    row = await q.get(out[0].seq)
    assert row is not None and row.state == "queued" and row.patient_key == "nhs:9990000026"
    assert [r.seq for r in await q.rows("queued")] == [out[0].seq, out[1].seq, out[3].seq]
    assert [r.seq for r in await q.rows("dead-lettered")] == [out[4].seq]
    recon = await reconcile(q.conn)
    t = recon.total
    assert (t.accepted, t.pending, t.duplicate, t.dead_lettered) == (5, 3, 1, 1)
    assert recon.tally_corrected == 0
    assert tally_is_exact(db)
    assert await q.claim("backload", 10) == []  # not before the move

    assert await q.unstage() == 3
    assert await q.unstage() == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM queue_stage").fetchone() == (0,)
        assert conn.execute("PRAGMA temp_store").fetchone() == (0,)  # a new connection's
    assert (await q.conn.execute_fetchall("PRAGMA temp_store")) == [(2,)]  # memory again
    assert tally_is_exact(db) and await q.counts() == {"queued": 3, "duplicate": 1,
                                                        "dead-lettered": 1}
    rows = await q.claim("backload", 10)
    assert [r.control_id for r in rows] == ["2", "1", "3"]  # by patient, then event
    await q.close()


async def test_the_move_builds_the_seq_index_again_only_when_the_stage_outnumbers_the_rest(
        tmp_path: Path) -> None:
    """A replay into a fresh database moves more rows than ``queue_state`` holds: the
    ``seq`` index is dropped and built again around the move. Into a fuller queue the
    rows are inserted through it. Either way the index is there, whole, afterwards."""
    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("1"), "live")])
    await q.accept([Inbound(adt(str(i), nhs="9990000026"), "backload") for i in range(2, 5)],
                   stage=True)
    await q.close()

    def move(db: Path) -> list[str]:
        with sqlite3.connect(db, isolation_level=None) as conn:
            said: list[str] = []
            conn.set_trace_callback(said.append)
            conn.execute("BEGIN")
            unstage(conn)
            conn.execute("COMMIT")
            conn.set_trace_callback(None)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            plan = " ".join(r[3] for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT state FROM queue_state WHERE seq = 2"))
            assert "queue_state_seq" in plan
            assert conn.execute("SELECT COUNT(*) FROM queue_stage").fetchone() == (0,)
        return [s for s in said if "INDEX" in s]

    assert move(db) == ["DROP INDEX queue_state_seq",
                        "CREATE UNIQUE INDEX queue_state_seq ON queue_state(seq)"]  # 3 > 1
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt(str(i), nhs="9990000034"), "backload") for i in range(5, 9)],
                   stage=True)
    await q.close()
    assert move(db) == []  # 4 staged, 4 there already
    q = await DurableQueue.open(db)
    assert tally_is_exact(db) and await q.counts() == {"queued": 8}
    assert [r.control_id for r in await q.claim("backload", 3)] == ["2", "3", "4"]
    await q.close()


async def test_a_stopped_replays_staged_rows_are_moved_when_the_queue_recovers(
        tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt(str(i), evn=f"2024010{9 - i}000000+0000"), "backload")
                    for i in range(3)], stage=True)
    await q.close()  # as if the replay had stopped while reading its files
    q = await DurableQueue.open(db)
    assert await q.recover() == 0  # nothing was released; the stage is moved over
    assert [r.control_id for r in await q.claim("backload", 10)] == ["2", "1", "0"]
    await q.close()


async def test_a_queue_view_from_before_the_stage_is_made_again_on_open(
        tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("1"), "backload")])
    await q.close()
    with sqlite3.connect(db) as conn:  # the view as the release before the stage made it
        conn.executescript("""DROP VIEW queue; DROP TABLE queue_stage;
          CREATE VIEW queue AS SELECT m.seq, m.lane, m.source, m.sender_app, m.sender_fac,
            m.control_id, m.dedup_key, m.message_type, m.patient_key, m.event_epoch,
            m.event_time, m.precedence, m.order_key, m.raw, s.state, s.reason, m.dup_of,
            m.received_at, s.updated_at FROM queue_msg m JOIN queue_state s ON s.seq = m.seq;""")
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("2", nhs="9990000026"), "backload")], stage=True)
    assert [r.control_id for r in await q.rows("queued")] == ["1", "2"]
    await q.close()


async def test_the_tally_follows_every_kind_of_state_change(tmp_path: Path) -> None:
    """Accept (queued, duplicate, dead letter), claim, recover, finish, requeue, any change
    through ``tallied`` (new trust and type, a deleted row): after each, the tally equals
    the rows' own count."""
    import sqlite3

    db = tmp_path / "q.db"
    q = await DurableQueue.open(db, senders=[("PAS", "RXX01"), ("LAB", "RYY02")])
    await q.accept([Inbound(adt("1"), "backload"), Inbound(adt("1"), "backload"),
                    Inbound(adt("2", nhs="9990000026", mtype="ADT^A08"), "live"),
                    Inbound(adt("3", app="LAB", fac="RYY02"), "backload"),
                    Inbound("garbage"), Inbound(adt("5", app="X", fac="ZZZ"), "live")])
    assert tally_is_exact(db) and tally(db)[("backload", "queued", "RXX01", "ADT^A01")] == 1
    assert await q.depth("backload") == 2 and await q.depth("live") == 1
    assert await q.waiting() == {"live": 1, "backload": 2}  # the tally's own depth
    rows = await q.claim("backload", 10)
    assert len(rows) == 2 and await q.depth("backload") == 2
    assert await q.waiting() == {"live": 1, "backload": 2}
    assert tally_is_exact(db)
    assert await q.recover() == 2
    assert tally_is_exact(db)
    rows = await q.claim("backload", 10) + await q.claim("live", 10)
    await q.finish(applied=[rows[0].seq], dead=[(rows[1].seq, "test"), (rows[2].seq, "test")])
    assert await q.depth() == 0 and await q.waiting() == {"live": 0, "backload": 0}
    assert tally_is_exact(db)
    assert await q.requeue([rows[1].seq]) == 1
    assert await q.depth("backload") == 1 and await q.waiting() == {"live": 0, "backload": 1}
    assert tally_is_exact(db)
    with sqlite3.connect(db, isolation_level=None) as conn:
        def change(d: sqlite3.Connection) -> None:  # trust and type re-read; a row deleted
            d.execute("UPDATE queue_state SET sender_fac='RYY02', message_type='ORU^R01', "
                      "state='applied' WHERE seq=?", (rows[1].seq,))
            d.execute("DELETE FROM queue_state WHERE seq=?", (rows[0].seq,))

        conn.execute("BEGIN IMMEDIATE")
        tallied(conn, [rows[0].seq, rows[1].seq], change)
        conn.execute("COMMIT")
    assert tally_is_exact(db) and tally(db)[("backload", "applied", "RYY02", "ORU^R01")] == 1
    assert await q.counts() == {"duplicate": 1, "dead-lettered": 3, "applied": 1}
    assert [r.seq for r in await q.rows("dead-lettered")] == sorted(
        [r.seq for r in await q.rows("dead-lettered")])
    assert len(await q.rows("dead-lettered")) == 3 and await q.depth() == 0
    await q.close()


async def test_dead_letter_labels_use_the_messages_own_delimiters(tmp_path: Path) -> None:
    q = await DurableQueue.open(tmp_path / "q.db", senders=[("PAS", "RXX01")])
    odd = "\r".join([
        "MSH#*~\\&#PAS*X#RXX01*Y#SHCR#SHCR#20240101120500+0000##ADT*A04*ADT_A01#c7*9#P#2.4",
        "EVN#A04#20240101120000+0000",
        "PID#1##",  # no patient identifier: dead-lettered at accept
    ])
    out = await q.accept([Inbound(odd)])
    assert out[0].status == "dead-lettered"
    row = await q.get(out[0].seq)
    assert row is not None
    assert (row.sender_app, row.sender_fac, row.control_id, row.message_type) == (
        "PAS", "RXX01", "c7", "ADT^A04")
    await q.close()


OLD_QUEUE = """
CREATE TABLE queue (seq INTEGER PRIMARY KEY, lane TEXT NOT NULL, source TEXT NOT NULL DEFAULT '',
  sender_app TEXT NOT NULL DEFAULT '', sender_fac TEXT NOT NULL DEFAULT '',
  control_id TEXT NOT NULL DEFAULT '', dedup_key TEXT, message_type TEXT NOT NULL DEFAULT '',
  patient_key TEXT NOT NULL DEFAULT '', event_epoch REAL, event_time TEXT NOT NULL DEFAULT '',
  precedence INTEGER NOT NULL DEFAULT 900, order_key TEXT NOT NULL DEFAULT '', raw TEXT NOT NULL,
  state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', dup_of INTEGER,
  received_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE UNIQUE INDEX queue_dedup ON queue(dedup_key) WHERE dup_of IS NULL AND dedup_key IS NOT NULL;
CREATE INDEX queue_ready ON queue(lane, patient_key, order_key) WHERE state = 'queued';
CREATE INDEX queue_released ON queue(state) WHERE state = 'released';
CREATE INDEX queue_patient ON queue(patient_key, order_key);
CREATE INDEX queue_state ON queue(state, sender_fac, message_type);
"""


async def test_a_queue_in_the_older_single_table_is_split_on_open(tmp_path: Path) -> None:
    """Message and state used to share one table; opening moves the states over, in
    claim order, and the ``queue`` view reads as the table did."""
    import sqlite3

    db = tmp_path / "old.db"
    rows = [  # seq, patient, order key, state, reason, dup_of
        (1, "nhs:A", "k1", "applied", "", None),
        (2, "nhs:B", "k2", "queued", "", None),
        (3, "nhs:A", "k3", "queued", "", None),
        (4, "nhs:C", "k4", "released", "", None),
        (5, "nhs:A", "k1", "duplicate", "MSH-10: duplicate of queue entry 1", 1),
        (6, "", "", "dead-lettered", "PID-3: no identifier", None),
    ]
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_QUEUE)
        conn.executemany(
            "INSERT INTO queue(seq, lane, sender_app, sender_fac, control_id, dedup_key, "
            "patient_key, order_key, raw, state, reason, dup_of, received_at, updated_at) "
            "VALUES(?, 'backload', 'PAS', 'RXX01', ?, ?, ?, ?, ?, ?, ?, ?, 1.0, 2.0)",
            [(s, f"c{s}", None if st == "dead-lettered" else f"PAS|RXX01|c{dup or s}", p, k,
              f"raw {s}", st, why, dup) for s, p, k, st, why, dup in rows])
    q = await DurableQueue.open(db)
    assert await q.counts() == {"applied": 1, "queued": 2, "released": 1, "duplicate": 1,
                                "dead-lettered": 1}
    assert await q.depth("backload") == 3
    dup = await q.get(5)
    assert dup is not None and dup.state == "duplicate" and dup.reason.startswith("MSH-10")
    assert await q.recover() == 1
    claimed = await q.claim("backload", 10)
    assert [(r.seq, r.patient_key, r.raw) for r in claimed] == [
        (3, "nhs:A", "raw 3"), (2, "nhs:B", "raw 2"), (4, "nhs:C", "raw 4")]
    await q.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT type FROM sqlite_master WHERE name='queue'").fetchone() == (
            "view",)
        cols = {r[1] for r in conn.execute("PRAGMA table_info(queue_msg)")}
        assert "state" not in cols and "raw" in cols
        assert conn.execute("SELECT state FROM queue WHERE seq=4").fetchone() == ("released",)
    await (await DurableQueue.open(db)).close()  # opening again finds nothing to split


async def test_a_queue_from_before_the_tally_is_counted_on_open(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("1")), Inbound(adt("1")), Inbound(adt("2", nhs="9990000026"))])
    await q.finish(applied=[r.seq for r in await q.claim("live", 1)])
    await q.close()
    with sqlite3.connect(db) as conn:  # as the release before the tally wrote it
        conn.execute("DROP TABLE queue_tally")
        conn.execute("CREATE INDEX queue_counts ON queue_state(state, sender_fac, message_type)")
    q = await DurableQueue.open(db)
    assert await q.counts() == {"applied": 1, "queued": 1, "duplicate": 1}
    await q.accept([Inbound(adt("3", nhs="9990000034"), "backload")])
    assert await q.depth("live") == 1 and await q.depth("backload") == 1
    await q.close()
    assert tally_is_exact(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='queue_counts'"
                            ).fetchone() is None


async def test_the_reconciliation_counts_the_rows_and_sets_the_tally_right(
        tmp_path: Path) -> None:
    """The proof is the state rows themselves; a tally made wrong outside the engine
    (the monitor's counts) is found, recounted and reported by the reconciliation."""
    import sqlite3

    from shcr_sim.engine.reconcile import reconcile

    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("1")), Inbound(adt("1")), Inbound(adt("2", nhs="9990000026")),
                    Inbound("garbage")])
    await q.finish(applied=[r.seq for r in await q.claim("live", 10)])
    with sqlite3.connect(db) as conn:
        groups = conn.execute("SELECT COUNT(*) FROM queue_tally").fetchone()[0]  # zeros too
        conn.execute("UPDATE queue_tally SET n = n + 7")
        conn.execute("INSERT INTO queue_tally VALUES('live', 'queued', 'RZZ99', 'ADT^A01', 3)")
    assert (await q.counts())["applied"] == 2 + 7  # the tally, as staged
    recon = await reconcile(q.conn)
    t = recon.total
    assert (t.accepted, t.applied, t.duplicate, t.dead_lettered, t.pending) == (4, 2, 1, 1, 0)
    assert recon.ok
    assert recon.tally_corrected == groups + 1
    assert await q.counts() == {"applied": 2, "duplicate": 1, "dead-lettered": 1}
    assert tally_is_exact(db)
    assert (await reconcile(q.conn)).tally_corrected == 0  # right now: nothing rewritten
    await q.close()


async def test_the_reconciliation_reads_without_the_write_lock(tmp_path: Path) -> None:
    """A right tally needs no write: another process keeps writing (the live engine beside
    ``shcr-sim run``'s backload replay) while the rows are counted."""
    import asyncio
    import sqlite3

    from shcr_sim.engine.reconcile import reconcile

    db = tmp_path / "q.db"
    q = await DurableQueue.open(db)
    await q.accept([Inbound(adt("1")), Inbound(adt("2", nhs="9990000026"))])
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock throughout
    try:
        recon = await asyncio.wait_for(reconcile(q.conn), 10)
        assert recon.total.pending == 2 and recon.tally_corrected == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    await q.close()


STATES = ("queued", "released", "applied", "dead-lettered", "duplicate")
_row = st.tuples(st.sampled_from(("live", "backload")), st.sampled_from(STATES),
                 st.sampled_from(("RXX01", "RYY02")), st.sampled_from(("ADT^A01", "ORU^R01")))
_step = st.tuples(st.sampled_from(STATES), st.lists(st.integers(1, 14), max_size=10),
                  st.none() | st.sampled_from(STATES), st.sampled_from((None, "one", "each")),
                  st.booleans(), st.sampled_from((None, "right", "stale")))


@given(st.lists(_row, min_size=1, max_size=12), st.lists(_step, max_size=8))
@settings(max_examples=200, deadline=None)
def test_set_states_keeps_the_tally_a_count_of_the_rows(rows: list, steps: list) -> None:
    """Any rows, any moves (seqs missing, repeated, already there, ``only_from`` or not,
    groups passed in or read, the rows' primary keys passed in, or keys one of which no
    longer names its row): the tally equals the rows' own count after every one."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    create_schema(db)
    for seq, (lane, state, fac, mtype) in enumerate(rows, 1):
        db.execute("INSERT INTO queue_state(lane, patient_key, order_key, seq, state, "
                   "sender_fac, message_type, updated_at) VALUES(?,?,?,?,?,?,?,0)",
                   (lane, f"p{seq % 3}", f"o{seq}", seq, state, fac, mtype))
    db.execute(f"INSERT INTO queue_tally SELECT {TALLY_KEY}, COUNT(*) FROM queue_state "
               f"GROUP BY {TALLY_KEY}")

    def counted() -> dict:
        return {tuple(r[:4]): r[4] for r in db.execute(
            f"SELECT {TALLY_KEY}, COUNT(*) FROM queue_state GROUP BY {TALLY_KEY}")}

    for state, seqs, only_from, reasons, pass_known, pass_keys in steps:
        # the plain rule, row by row: what each row's (state, reason) becomes
        model = dict((s, (st_, r)) for s, st_, r in db.execute(
            "SELECT seq, state, reason FROM queue_state"))
        expect = 0
        # one statement for the batch (each row once), or one a row when each has its reason
        for s in (seqs if reasons == "each" else sorted(set(seqs))):
            if s in model and (only_from is None or model[s][0] == only_from):
                expect += 1
                model[s] = (state, {None: model[s][1], "one": "one"}.get(reasons, f"r{s}"))
        known = None
        if pass_known:  # as the claim does: the rows' groups read in this transaction
            known = db.execute("SELECT seq, lane, state, sender_fac, message_type FROM "
                               "queue_state WHERE seq IN (SELECT value FROM json_each(?))",
                               (str(sorted(set(seqs))),)).fetchall()
        keys = None
        if pass_keys:  # as the engine does: the claimed rows' keys (a missing seq: made up)
            pk = {s: (lane, p, o, s) for lane, p, o, s in db.execute(
                "SELECT lane, patient_key, order_key, seq FROM queue_state")}
            keys = [pk.get(s, ("live", "p0", f"o{s}", s)) for s in seqs]
            if pass_keys == "stale" and keys:  # the largest re-keyed below the others
                top = keys.index(max(keys))
                keys[top] = (keys[top][0], "p", *keys[top][2:])
        db.execute("BEGIN IMMEDIATE")
        reason = [f"r{s}" for s in seqs] if reasons == "each" else reasons
        moved = set_states(db, state, seqs, reason=reason, only_from=only_from, known=known,
                           keys=keys)
        db.execute("COMMIT")
        assert moved == expect
        assert dict((s, (st_, r)) for s, st_, r in db.execute(
            "SELECT seq, state, reason FROM queue_state")) == model
        tallied_now = {tuple(r[:4]): r[4] for r in db.execute(
            f"SELECT {TALLY_KEY}, n FROM queue_tally WHERE n != 0")}
        assert tallied_now == counted()


def _queued_run(db: sqlite3.Connection) -> list[tuple]:
    """40 queued backload rows whose arrival order (seq) is not their key order, as in a
    replay of several trusts' files, with their tally; the keys of ten neighbours."""
    create_schema(db)
    for seq, patient in zip(range(1, 41), [f"p{(7 * i) % 40:02d}" for i in range(40)],
                            strict=True):
        db.execute("INSERT INTO queue_state(lane, patient_key, order_key, seq, state, "
                   "sender_fac, message_type, updated_at) VALUES('backload',?,?,?,'queued',"
                   "'RXX01','ADT^A01',0)", (patient, f"o{seq:03d}", seq))
    db.execute(f"INSERT INTO queue_tally SELECT {TALLY_KEY}, COUNT(*) FROM queue_state "
               f"GROUP BY {TALLY_KEY}")
    return db.execute("SELECT lane, patient_key, order_key, seq FROM queue_state "
                      "ORDER BY patient_key LIMIT 10 OFFSET 5").fetchall()


def _tally(db: sqlite3.Connection) -> dict:
    return {(r[1], r[0]): r[4] for r in db.execute(
        f"SELECT {TALLY_KEY}, n FROM queue_tally WHERE n != 0")}


def test_a_claimed_run_is_moved_as_a_run_of_the_primary_key() -> None:
    """Rows claimed as a run of the primary key, with their keys: read and moved as that
    run in one statement, not row by row through ``queue_state_seq``."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    run = _queued_run(db)
    seqs = [r[3] for r in run]
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    db.execute("BEGIN IMMEDIATE")
    assert set_states(db, "applied", seqs, reason="", keys=run) == 10
    db.execute("COMMIT")
    updates = [s for s in statements if s.startswith("UPDATE queue_state")]
    assert len(updates) == 1 and "+seq IN" in updates[0]  # the run, once
    assert not any("WHERE seq IN" in s for s in statements)
    assert sorted(r[0] for r in db.execute(
        "SELECT seq FROM queue_state WHERE state='applied'")) == sorted(seqs)
    assert _tally(db) == {("queued", "backload"): 30, ("applied", "backload"): 10}


@pytest.mark.parametrize("groups_known", [False, True])
def test_a_key_that_no_longer_names_its_row_still_moves_every_row(groups_known: bool) -> None:
    """The last key of a run no longer names its row (as after a re-key: another
    patient), which so lies outside the run the keys bound: the read through the run
    (groups not known) or the update (groups known) finds one row short, and every
    row moves by seq after all, the tally exact."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    run = _queued_run(db)
    seqs = [r[3] for r in run]
    lane, _, order, seq = run[-1]
    keys = [*run[:-1], (lane, run[-2][1], order, seq)]  # inside the run, not at its row
    known = db.execute("SELECT seq, lane, state, sender_fac, message_type FROM queue_state "
                       f"WHERE seq IN ({','.join(map(str, seqs))})").fetchall()
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    db.execute("BEGIN IMMEDIATE")
    moved = set_states(db, "released", seqs, keys=keys, known=known if groups_known else None)
    db.execute("COMMIT")
    assert moved == 10
    assert any("+seq IN" in s for s in statements)  # the run was tried …
    assert any(s.startswith("UPDATE") and "WHERE seq IN" in s for s in statements)  # … then seq
    assert sorted(r[0] for r in db.execute(
        "SELECT seq FROM queue_state WHERE state='released'")) == sorted(seqs)
    assert _tally(db) == {("queued", "backload"): 30, ("released", "backload"): 10}

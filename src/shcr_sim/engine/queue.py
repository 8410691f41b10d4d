"""The durable queue: every accepted message has a row on disk before it counts.

States (persisted): received → queued → released → applied / duplicate /
dead-lettered (with a reason). ``accept`` parses each message just far enough to
key it (sender, MSH-10, patient, event time), de-duplicates on (MSH-3, MSH-4,
MSH-10) — the first copy wins, later copies are kept as ``duplicate`` rows so they
are still counted — and commits the whole batch in one transaction. Only after
``accept`` returns may the MLLP listener send an AA.

``received`` and "keyed" happen inside one transaction: ``accept`` reads each
message's keys before it writes anything and inserts the row directly as
``queued``, ``duplicate`` or ``dead-lettered``. So ``received`` is never durably
observable on its own — a message is either not in the queue at all (not yet
accepted, no ACK sent) or already queued / duplicate / dead-lettered; no row ever
has state ``received``. The durable states are therefore queued → released →
applied / duplicate / dead-lettered, with ``released`` put back to ``queued`` by
``recover`` after a crash.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import aiosqlite
import orjson

from shcr_sim.hl7 import HL7Error

from .db import connect, fetch_in, has_layout, is_table, migrate, open_reader, transaction
from .keys import DEFAULT_TZ, KeysError, MessageKeys, parse_and_extract

T = TypeVar("T")
Lane = Literal["backload", "live"]
Status = Literal["queued", "duplicate", "dead-lettered"]
# a row's primary key in ``queue_state``: (lane, patient key, ordering key, seq)
StateKey = tuple[str, str, str, int]
LANES: tuple[Lane, ...] = ("live", "backload")
TERMINAL = ("applied", "duplicate", "dead-lettered")
# how a dead letter refused for its sender begins (reconcile counts them by it)
UNKNOWN_SENDER = "MSH-3/MSH-4: unknown sender"

# The message as it arrived (written once, in arrival order) and its state (written at
# every step, kept in claim order: lane, patient, event). A claimed batch is a run of
# neighbouring ``queue_state`` rows, so marking it released and then applied rewrites a
# few pages, not one page of the message table per message.
STATE_TABLE = """
CREATE TABLE IF NOT EXISTS queue_state (
  lane TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  order_key TEXT NOT NULL,
  seq INTEGER NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  sender_fac TEXT NOT NULL DEFAULT '',
  message_type TEXT NOT NULL DEFAULT '',
  updated_at REAL NOT NULL,
  PRIMARY KEY (lane, patient_key, order_key, seq)
) WITHOUT ROWID;
"""
# Messages per (lane, state, trust, message type), kept in the transaction of every
# change to ``queue_state`` (``set_states`` on the hot path, ``tallied`` for others).
# The monitor's counts read a few rows instead of an index entry per message (~50 ms a
# sample at 300,000 messages, growing with the queue), and no index entry moves at
# every step of every message: an index on state, trust and type cost the writer ~30
# µs a message at 300,000, keeping this table about a third of that, and triggers
# keeping it more than the index.
TALLY = """CREATE TABLE IF NOT EXISTS queue_tally (
  lane TEXT NOT NULL,
  state TEXT NOT NULL,
  sender_fac TEXT NOT NULL,
  message_type TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (lane, state, sender_fac, message_type)
) WITHOUT ROWID"""
TALLY_KEY = "lane, state, sender_fac, message_type"
_BUMP = ("INSERT INTO queue_tally VALUES(?,?,?,?,?) ON CONFLICT(lane, state, sender_fac, "
         "message_type) DO UPDATE SET n = n + excluded.n")
# A replay's backload, while its files are read: state rows in arrival order (``seq``),
# so accepting appends instead of inserting at a random patient key into
# ``queue_state`` and ``queue_ready``, trees far bigger than the page cache at a
# million messages. ``unstage`` moves them over in key order once the files are read
# (each leaf written about once), before any of them is claimed: the backload lane
# releases only then anyway. Staged rows are ``queued``, counted in the tally, and
# seen through the ``queue`` view like any other.
STAGE_TABLE = """
CREATE TABLE IF NOT EXISTS queue_stage (
  seq INTEGER PRIMARY KEY,
  lane TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  order_key TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  sender_fac TEXT NOT NULL DEFAULT '',
  message_type TEXT NOT NULL DEFAULT '',
  updated_at REAL NOT NULL
);
"""
_STATE_COLUMNS = ("lane, patient_key, order_key, seq, state, reason, sender_fac, message_type, "
                  "updated_at")
# one arm of the ``queue`` view: a UNION ALL of joins (not a join on a UNION ALL), so
# SQLite pushes a query's ``seq`` range or state into each arm and its indexes. The
# stage's arm is read from the stage out (CROSS JOIN fixes the order): it is empty
# but for a replay's ingest, and a search for dead letters would otherwise scan
# every message for staged ones.
_VIEW_ARM = """  SELECT m.seq, m.lane, m.source, m.sender_app, m.sender_fac, m.control_id,
         m.dedup_key, m.message_type, m.patient_key, m.event_epoch, m.event_time, m.precedence,
         m.order_key, m.raw, s.state, s.reason, m.dup_of, m.received_at, s.updated_at
  FROM {join}"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_msg (
  seq INTEGER PRIMARY KEY,
  lane TEXT NOT NULL,
  source TEXT NOT NULL DEFAULT '',
  sender_app TEXT NOT NULL DEFAULT '',
  sender_fac TEXT NOT NULL DEFAULT '',
  control_id TEXT NOT NULL DEFAULT '',
  dedup_key TEXT,
  message_type TEXT NOT NULL DEFAULT '',
  patient_key TEXT NOT NULL DEFAULT '',
  event_epoch REAL,
  event_time TEXT NOT NULL DEFAULT '',
  precedence INTEGER NOT NULL DEFAULT 900,
  order_key TEXT NOT NULL DEFAULT '',
  raw TEXT NOT NULL,
  dup_of INTEGER,
  received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS queue_dedup ON queue_msg(dedup_key)
  WHERE dup_of IS NULL AND dedup_key IS NOT NULL;
""" + STATE_TABLE + """
CREATE UNIQUE INDEX IF NOT EXISTS queue_state_seq ON queue_state(seq);
CREATE INDEX IF NOT EXISTS queue_ready ON queue_state(lane, patient_key, order_key)
  WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS queue_released ON queue_state(state) WHERE state = 'released';
CREATE INDEX IF NOT EXISTS queue_dead ON queue_state(seq) WHERE state = 'dead-lettered';
""" + TALLY + """;
""" + STAGE_TABLE + """
-- every message with its state, staged or not: what readers outside the hot path query
CREATE VIEW IF NOT EXISTS queue AS
""" + _VIEW_ARM.format(join="queue_msg m JOIN queue_state s ON s.seq = m.seq") + """
  UNION ALL
""" + _VIEW_ARM.format(join="queue_stage s CROSS JOIN queue_msg m ON m.seq = s.seq") + """;
CREATE TABLE IF NOT EXISTS engine_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbound_files (
  file_key TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  messages_done INTEGER NOT NULL DEFAULT 0,
  complete INTEGER NOT NULL DEFAULT 0,
  updated_at REAL NOT NULL
);
"""
# A database written before the split: one ``queue`` table held message and state.
SPLIT_QUEUE_TABLE = (
    "DROP INDEX IF EXISTS queue_ready",
    "DROP INDEX IF EXISTS queue_released",
    "DROP INDEX IF EXISTS queue_patient",
    "DROP INDEX IF EXISTS queue_state",
    "ALTER TABLE queue RENAME TO queue_msg",
    STATE_TABLE,
    "INSERT INTO queue_state(lane, patient_key, order_key, seq, state, reason, sender_fac, "
    "message_type, updated_at) SELECT lane, patient_key, order_key, seq, state, reason, "
    "sender_fac, message_type, updated_at FROM queue_msg",
    "ALTER TABLE queue_msg DROP COLUMN state",
    "ALTER TABLE queue_msg DROP COLUMN reason",
    "ALTER TABLE queue_msg DROP COLUMN updated_at",
)


# A database written before the tally: counted once, then kept by the engine.
ADD_TALLY = (
    TALLY,
    f"INSERT INTO queue_tally SELECT {TALLY_KEY}, COUNT(*) FROM queue_state "
    f"GROUP BY {TALLY_KEY}",
    "DROP INDEX IF EXISTS queue_counts",
)


def _view_without_stage(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT sql FROM sqlite_master WHERE type='view' AND name='queue'").fetchone()
    return row is not None and "queue_stage" not in row[0]


def create_schema(db: sqlite3.Connection) -> None:
    """The queue's tables, indexes and view, moving older layouts over first."""
    migrate(db, lambda d: is_table(d, "queue"), SPLIT_QUEUE_TABLE)
    migrate(db, lambda d: is_table(d, "queue_state") and not is_table(d, "queue_tally"),
            ADD_TALLY)
    # a view written before staging: made again below, with the staged rows in it
    migrate(db, _view_without_stage, ("DROP VIEW queue",))
    db.executescript(SCHEMA)


def unstage(db: sqlite3.Connection) -> int:
    """Move the staged state rows into ``queue_state`` in key order, in the caller's
    transaction; how many moved. Sorted on disk, not in memory (``temp_store``): a
    replay of ten million messages stages ten million rows.

    The rows reach ``queue_state_seq`` in random ``seq`` order, so when they outnumber
    the rows already there (a replay into a fresh database) that index is dropped and
    built again after the move, from one sort: about a third less time at two million
    rows, and no gain once the rows already there are as many."""
    staged = db.execute("SELECT COUNT(*) FROM queue_stage").fetchone()[0]
    if not staged:
        return 0
    # the tally counts staged rows and the rest alike; only the way of moving hangs on it
    there = db.execute("SELECT TOTAL(n) FROM queue_tally").fetchone()[0] - staged
    # the index's own CREATE statement, when it is to be built again after the move
    seq_index = db.execute(
        "SELECT sql FROM sqlite_master WHERE type='index' AND name='queue_state_seq'"
    ).fetchone() if staged > there else None
    db.execute("PRAGMA temp_store=FILE")
    try:
        if seq_index:
            db.execute("DROP INDEX queue_state_seq")
        moved = db.execute(
            f"INSERT INTO queue_state({_STATE_COLUMNS}) SELECT {_STATE_COLUMNS} FROM queue_stage "
            "ORDER BY lane, patient_key, order_key, seq").rowcount
        if seq_index:
            db.execute(seq_index[0])
    finally:
        db.execute("PRAGMA temp_store=MEMORY")
    db.execute("DELETE FROM queue_stage")
    return moved


def count_in_tally(db: sqlite3.Connection, groups: Iterable[tuple[str, str, str, str, int]]
                   ) -> None:
    """Add (lane, state, trust, type, n) to the tally, inside the caller's transaction."""
    db.executemany(_BUMP, groups)


def retally(db: sqlite3.Connection, rows: Mapping[tuple[str, str, str, str], int], *,
            correct: bool) -> int:
    """How many groups of the tally differ from ``rows`` (messages per lane, state, trust
    and type, counted from ``queue_state`` in the caller's transaction); with
    ``correct``, the tally is made to say ``rows``. The engine keeps the tally exact,
    but an edit of ``queue_state`` made outside it (by hand, in the sqlite3 shell) is
    not counted there."""
    kept = {tuple(r[:4]): r[4] for r in db.execute(f"SELECT {TALLY_KEY}, n FROM queue_tally")}
    wrong = sum(1 for k in kept.keys() | rows.keys() if kept.get(k, 0) != rows.get(k, 0))
    if wrong and correct:
        db.execute("DELETE FROM queue_tally")
        count_in_tally(db, [(*k, n) for k, n in rows.items() if n])
    return wrong


# the rows whose seq is in a JSON list (one parameter, however many rows)
_BY_SEQ = "seq IN (SELECT value FROM json_each(?))"


def _groups(db: sqlite3.Connection, seqs: Sequence[int]) -> list[tuple]:
    return db.execute(
        f"SELECT {TALLY_KEY}, COUNT(*) FROM queue_state WHERE {_BY_SEQ} GROUP BY {TALLY_KEY}",
        (orjson.dumps(list(seqs)).decode(),),
    ).fetchall()


def tallied(db: sqlite3.Connection, seqs: Sequence[int],
            change: Callable[[sqlite3.Connection], T]) -> T:
    """``change(db)`` to the rows ``seqs`` of ``queue_state``, in the caller's transaction,
    with the tally following whatever it changed (state, lane, trust or type): the
    rows are counted before and after, so the tally stays exact whatever ``change`` does.
    """
    before = _groups(db, seqs)
    result = change(db)
    count_in_tally(db, [(*g[:4], -g[4]) for g in before])
    count_in_tally(db, _groups(db, seqs))
    return result


# rows between two primary keys of one lane, those named among them (``+seq``: not found
# through ``queue_state_seq``)
_SPAN = ("lane=? AND (patient_key, order_key, seq) >= (?,?,?) "
         "AND (patient_key, order_key, seq) <= (?,?,?)")
_IN_SPAN = f"{_SPAN} AND +{_BY_SEQ}"
_SPAN_ROWS = f"SELECT COUNT(*) FROM (SELECT 1 FROM queue_state WHERE {_SPAN} LIMIT ?)"
_GROUPS = "SELECT seq, lane, state, sender_fac, message_type FROM queue_state WHERE "


def _span(db: sqlite3.Connection, keys: Sequence[StateKey]) -> tuple[Any, ...] | None:
    """The bounds of ``keys`` for ``_SPAN`` when they lie in one lane with few other rows
    between them (at most as many as they are), else None. A batch claimed from a
    replay's backload has none between; a live lane's claim, among the rows its
    patients already finished, often has many, and then costs this bounded count."""
    lo, hi = min(keys), max(keys)
    if lo[0] != hi[0]:
        return None
    bounds = (lo[0], *lo[1:], *hi[1:])
    most = 2 * len(keys)
    return bounds if db.execute(_SPAN_ROWS, (*bounds, most + 1)).fetchone()[0] <= most else None


def set_states(db: sqlite3.Connection, state: str, seqs: Sequence[int], *,
               reason: str | Sequence[str] | None = None, only_from: str | None = None,
               known: Iterable[tuple[int, str, str, str, str]] | None = None,
               keys: Sequence[StateKey] | None = None) -> int:
    """Put rows ``seqs`` of ``queue_state`` (those in state ``only_from``, if given) in
    ``state``, with ``reason`` (one for all, or one a row) if given, the tally kept;
    how many moved. Inside the caller's transaction.

    The hot path's step (release, apply): only the state moves, so the tally needs the
    rows' groups once, read before the update, not counted before and after as
    ``tallied`` does. ``known``: (seq, lane, state, trust, type) of the rows, already
    read in this transaction (the claim's own rows), so not read again.

    ``keys``: the rows' primary keys, when the caller holds them (the engine's claimed
    rows; used with one reason for all and no ``only_from``). A batch claimed from a
    replay's backload is a run of neighbouring rows in the primary key, so it is read
    and moved as that run (``_span``), instead of row by row through
    ``queue_state_seq``, where the rows lie at random: about half the time, measured
    at a million messages. Should a key no longer name its row (re-keyed since it was
    read), the rows are found by ``seq`` after all.
    """
    if not seqs:
        return 0
    listed = orjson.dumps(list(seqs)).decode()
    wanted = len(set(seqs))
    one_reason = reason is None or isinstance(reason, str)
    span = _span(db, keys) if keys and one_reason and only_from is None else None
    if known is None:
        if span is not None:
            known = db.execute(_GROUPS + _IN_SPAN, (*span, listed)).fetchall()
            if len(known) != wanted:
                span = known = None
        if known is None:
            known = db.execute(_GROUPS + _BY_SEQ, (listed,)).fetchall()
    now = time.time()  # when it commits (a store outage retries a finish later)
    sets = f"SET state='{state}', updated_at=?" + ("" if reason is None else ", reason=?")
    also, tail = ("", ()) if only_from is None else (" AND state=?", (only_from,))
    if one_reason:
        # one statement for the batch: ~40 % cheaper than a statement a row
        head = (now, *(() if reason is None else (reason,)))
        moved = -1 if span is None else db.execute(  # -1: the run not tried
            f"UPDATE queue_state {sets} WHERE {_IN_SPAN}", (*head, *span, listed)).rowcount
        if moved != wanted:  # (the same values again for rows already moved)
            moved = db.execute(f"UPDATE queue_state {sets} WHERE {_BY_SEQ}{also}",
                               (*head, listed, *tail)).rowcount
    else:
        moved = db.executemany(f"UPDATE queue_state {sets} WHERE seq=?{also}",
                               [(now, r, s, *tail) for s, r in zip(seqs, reason, strict=True)]
                               ).rowcount
    delta: dict[tuple[str, str, str, str], int] = {}
    for _seq, lane, was, fac, mtype in known:
        if was == state or (only_from is not None and was != only_from):
            continue
        delta[(lane, was, fac, mtype)] = delta.get((lane, was, fac, mtype), 0) - 1
        delta[(lane, state, fac, mtype)] = delta.get((lane, state, fac, mtype), 0) + 1
    count_in_tally(db, [(*k, n) for k, n in delta.items() if n])
    return moved


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as it arrived: raw ER7 text, its lane and where it came from."""

    raw: str
    lane: Lane = "live"
    source: str = ""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome of accepting one message (committed to disk)."""

    seq: int
    status: Status
    reason: str = ""


class QueueRow(NamedTuple):
    """One queue row as read back (a NamedTuple: built from each fetched row directly,
    thousands per claimed batch; a frozen dataclass's ``__init__`` costs ~5× more)."""

    seq: int
    lane: str
    source: str
    sender_app: str
    sender_fac: str
    control_id: str
    message_type: str
    patient_key: str
    event_epoch: float | None
    event_time: str
    order_key: str
    raw: str
    state: str
    reason: str

    @property
    def state_key(self) -> StateKey:
        """Its row's primary key in ``queue_state`` (``set_states(keys=…)``)."""
        return self.lane, self.patient_key, self.order_key, self.seq


ROW_COLUMNS = (
    "seq, lane, source, sender_app, sender_fac, control_id, message_type, patient_key, "
    "event_epoch, event_time, order_key, raw, state, reason"
)
# the same, from queue_msg m JOIN queue_state s (the claim reads the tables, not the view):
# the state row's own primary key too, which ``set_states`` finds the rows by
CLAIM_COLUMNS = ", ".join(("s." if c in ("state", "reason", "lane", "patient_key", "order_key")
                           else "m.") + c for c in ROW_COLUMNS.split(", "))
_ROW_WIDTH = len(ROW_COLUMNS.split(", "))

Sender = tuple[str, str]  # (MSH-3.1 sending application, MSH-4.1 sending facility / ODS)


def _header_guess(raw: str) -> tuple[str, str, str, str]:
    """Best-effort (app, facility, control id, type) of a message that failed to parse."""
    head = raw.lstrip("\ufeff\r\n \x0b")
    if not head.startswith("MSH") or len(head) < 4:
        return "", "", "", ""
    fields = head.split("\r", 1)[0].split("\n", 1)[0].split(head[3])
    fields.insert(1, head[3])
    comp = head[4] if len(head) > 4 and head[4] not in (head[3], "\r", "\n") else "^"

    def f(n: int) -> str:
        return fields[n].split(comp, 1)[0] if n < len(fields) else ""

    # the message's own delimiters (MSH-1, MSH-2); the type is labelled with "^"
    return f(3), f(4), f(10), "^".join(fields[9].split(comp)[:2]) if len(fields) > 9 else ""


def key_message(raw: str, senders: Mapping[Sender, str] | None) -> MessageKeys | str:
    """The message's keys, or the reason it must be dead-lettered.

    A plain function of (message, configured senders → time zone), so conversion
    workers can key a big batch while the queue writes the previous one.
    """
    try:
        msg, keys = parse_and_extract(raw, DEFAULT_TZ)
    except (HL7Error, KeysError) as exc:
        return str(exc)
    if senders is not None:
        sender = msg.sender
        tz = senders.get(sender)
        if tz is None:
            return (
                f"{UNKNOWN_SENDER} {sender[0]!r}/{sender[1]!r} "
                "(not a configured trust)"
            )
        if tz != DEFAULT_TZ:
            try:
                _, keys = parse_and_extract(raw, tz)
            except (HL7Error, KeysError) as exc:
                return str(exc)
    return keys


def finisher(
    applied: Iterable[int] = (), dead: Iterable[tuple[int, str]] = (),
    keys: Mapping[int, StateKey] | None = None,
) -> Callable[[sqlite3.Connection], None]:
    """The terminal-state updates for released rows, to run inside a transaction.

    The engine hands this to the store (``SqliteStore.apply_prepared(then=…)``), so
    a batch's resources and its messages' ``applied`` commit together. ``keys``: the
    rows' primary keys by seq, as claimed, for finding the applied rows (see
    ``set_states``; dead letters, each with its own reason, go by seq).
    """
    done = list(applied)
    failed = list(dead)
    done_keys = ([keys[s] for s in done] if keys is not None and all(s in keys for s in done)
                 else None)

    def record(db: sqlite3.Connection) -> None:
        set_states(db, "applied", done, reason="", keys=done_keys)
        set_states(db, "dead-lettered", [s for s, _ in failed], reason=[r for _, r in failed])

    return record


async def _move(conn: aiosqlite.Connection, seqs: Sequence[int],
                state: Literal["released", "queued"], only_from: str | None = None,
                known: Iterable[tuple[int, str, str, str, str]] | None = None,
                keys: Sequence[StateKey] | None = None) -> int:
    """Rows ``seqs`` (those in state ``only_from``, if given) put in ``state``, the tally
    kept, inside the caller's transaction; how many moved (see ``set_states``)."""
    if not seqs:
        return 0
    return await conn._execute(  # type: ignore[attr-defined]
        set_states, conn._conn, state, seqs, only_from=only_from,  # type: ignore[attr-defined]
        known=known, keys=keys)


class DurableQueue:
    """SQLite-backed queue shared by file inbound, the MLLP listener and the sequencer."""

    def __init__(self, conn: aiosqlite.Connection, senders: Mapping[Sender, str] | None) -> None:
        self.conn = conn
        self.senders: dict[Sender, str] | None = dict(senders) if senders is not None else None

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    async def open(
        cls,
        db_path: str | Path,
        *,
        senders: Mapping[Sender, str] | Iterable[Sender] | None = None,
        synchronous: str = "NORMAL",
    ) -> DurableQueue:
        """Open (creating if needed) the queue in ``db_path``.

        ``senders`` are the configured trusts, (MSH-3, MSH-4) → timezone name (or
        just the pairs). Messages from anyone else are dead-lettered at accept.
        When omitted, the senders saved by an earlier ``set_senders`` are used;
        when none were ever saved, every sender is accepted.
        """
        conn = await connect(db_path, synchronous)
        await conn._execute(create_schema, conn._conn)  # type: ignore[attr-defined]
        q = cls(conn, None)
        if senders is not None:
            await q.set_senders(senders)
        else:
            await q._use_saved_senders()
        return q

    @classmethod
    async def open_for_reading(cls, db_path: str | Path) -> DurableQueue:
        """The queue for reading only (``connect_for_reading``): the dead letters, a
        message. A queue in an older layout is opened as ``open`` does instead, which
        moves it over first; a file with no queue in it is an error, not written to."""
        opened = await open_reader(
            db_path, lambda db: True if has_layout(db, SCHEMA) else None,
            lambda db: is_table(db, "queue") or is_table(db, "queue_state"), "queue")
        if opened is None:
            return await cls.open(db_path)
        conn, _ = opened
        q = cls(conn, None)
        await q._use_saved_senders()
        return q

    async def _use_saved_senders(self) -> None:
        saved = await self.get_meta("senders")
        if saved is not None:
            self.senders = {(a, f): tz for a, f, tz in orjson.loads(saved)}

    async def close(self) -> None:
        await self.conn.close()

    async def set_senders(self, senders: Mapping[Sender, str] | Iterable[Sender]) -> None:
        if isinstance(senders, Mapping):
            resolved = {(a, f): tz or DEFAULT_TZ for (a, f), tz in senders.items()}
        else:
            resolved = {(a, f): DEFAULT_TZ for a, f in senders}
        self.senders = resolved
        await self.set_meta(
            "senders", orjson.dumps([[a, f, tz] for (a, f), tz in resolved.items()]).decode()
        )

    async def get_meta(self, key: str) -> str | None:
        async with self.conn.execute("SELECT value FROM engine_meta WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with transaction(self.conn) as conn:
            await conn.execute(
                "INSERT INTO engine_meta(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # -- accept --------------------------------------------------------------
    def _keys(self, raw: str) -> MessageKeys | str:
        """The message's keys, or the reason it must be dead-lettered."""
        return key_message(raw, self.senders)

    async def accept(
        self, items: Sequence[Inbound], *, file_progress: tuple[str, str, int, bool] | None = None,
        keyed: Sequence[MessageKeys | str] | None = None, stage: bool = False,
    ) -> list[Accepted]:
        """Queue a batch in one transaction; returns only once it is committed.

        ``file_progress`` = (file key, path, messages done, complete) is committed in
        the same transaction, so a resumed file replay neither loses nor re-reads.
        ``stage``: the queued rows wait in ``queue_stage`` until ``unstage`` (a replay's
        backload, claimed only once all of it is read); duplicates and dead letters
        go straight to ``queue_state``.
        """
        if not items and file_progress is None:
            return []
        if keyed is None or len(keyed) != len(items):  # ``keyed``: from key_message
            keyed = [self._keys(it.raw) for it in items]
        now = time.time()
        results: list[Accepted] = []
        async with transaction(self.conn) as conn:
            async with conn.execute("SELECT COALESCE(MAX(seq), 0) FROM queue_msg") as cur:
                row = await cur.fetchone()
            next_seq = (row[0] if row else 0) + 1
            # MSH-3|MSH-4|MSH-10 of each keyed message, made once (a property of the keys)
            dedups = [k.dedup_key if isinstance(k, MessageKeys) else "" for k in keyed]
            wanted = sorted({d for d in dedups if d})
            existing: dict[str, int] = dict(
                await fetch_in(
                    conn,
                    "SELECT dedup_key, seq FROM queue_msg WHERE dup_of IS NULL "
                    "AND dedup_key IN ({marks})",
                    wanted,
                )
            )
            rows: list[tuple] = []
            states: list[tuple] = []
            for item, k, dedup in zip(items, keyed, dedups, strict=True):
                seq = next_seq
                next_seq += 1
                if isinstance(k, str):
                    app, fac, cid, mtype = _header_guess(item.raw)
                    rows.append((seq, item.lane, item.source, app, fac, cid, None, mtype, "",
                                 None, "", 900, "", item.raw, None, now))
                    states.append((item.lane, "", "", seq, "dead-lettered", k, fac, mtype,
                                   now))
                    results.append(Accepted(seq, "dead-lettered", k))
                    continue
                first = existing.get(dedup)
                if first is None:
                    existing[dedup] = seq
                    state, reason, dup_of = "queued", "", None
                else:
                    state = "duplicate"
                    reason = f"MSH-10: duplicate of queue entry {first} ({dedup})"
                    dup_of = first
                rows.append(
                    (seq, item.lane, item.source, k.sender_app, k.sender_fac, k.control_id,
                     dedup, k.message_type, k.patient_key, k.event_epoch, k.event_time,
                     k.precedence, k.order_key, item.raw, dup_of, now)
                )
                states.append((item.lane, k.patient_key, k.order_key, seq, state, reason,
                               k.sender_fac, k.message_type, now))
                results.append(Accepted(seq, state, reason))  # type: ignore[arg-type]
            await conn.executemany(
                "INSERT INTO queue_msg(seq, lane, source, sender_app, sender_fac, control_id, "
                "dedup_key, message_type, patient_key, event_epoch, event_time, precedence, "
                "order_key, raw, dup_of, received_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            counted = Counter((st[0], st[4], st[6], st[7]) for st in states)
            if stage:  # the queued rows appended in arrival order; the rest as below
                staged = [st for st in states if st[4] == "queued"]
                states = [st for st in states if st[4] != "queued"]
                await conn.executemany(
                    f"INSERT INTO queue_stage({_STATE_COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?)",
                    staged)
            states.sort()  # in key order: neighbouring rows share pages
            await conn.executemany(
                f"INSERT INTO queue_state({_STATE_COLUMNS}) VALUES(?,?,?,?,?,?,?,?,?)", states)
            await conn._execute(count_in_tally, conn._conn,  # type: ignore[attr-defined]
                                [(*k, n) for k, n in counted.items()])
            if file_progress is not None:
                fkey, path, done, complete = file_progress
                await conn.execute(
                    "INSERT INTO inbound_files(file_key, path, messages_done, complete, "
                    "updated_at) VALUES(?,?,?,?,?) ON CONFLICT(file_key) DO UPDATE SET "
                    "messages_done=excluded.messages_done, complete=excluded.complete, "
                    "path=excluded.path, updated_at=excluded.updated_at",
                    (fkey, path, done, int(complete), now),
                )
        return results

    async def file_progress(self, file_key: str) -> tuple[int, bool]:
        """(messages already accepted, complete?) for a file, (0, False) if unseen."""
        async with self.conn.execute(
            "SELECT messages_done, complete FROM inbound_files WHERE file_key=?", (file_key,)
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), bool(row[1])) if row else (0, False)

    # -- release side (the sequencer) ----------------------------------------
    async def unstage(self) -> int:
        """Staged rows (``accept(stage=True)``) into ``queue_state``, where they can be
        claimed; how many moved."""
        async with transaction(self.conn) as conn:
            return await conn._execute(unstage, conn._conn)  # type: ignore[attr-defined]

    async def recover(self) -> int:
        """After a crash: rows released but not finished go back to queued, and rows
        staged by a replay that stopped while reading its files become claimable."""
        await self.unstage()
        async with transaction(self.conn) as conn:
            async with conn.execute(
                "SELECT seq FROM queue_state INDEXED BY queue_released WHERE state='released'"
            ) as cur:
                seqs = [r[0] for r in await cur.fetchall()]
            return await _move(conn, seqs, "queued")

    async def claim(self, lane: Lane, limit: int) -> list[QueueRow]:
        """Mark up to ``limit`` queued rows of a lane released, per patient in event order.

        Rows come ordered by (patient key, ordering key), so each patient's
        messages leave the queue in the order they happened.
        """
        async with transaction(self.conn) as conn:
            async with conn.execute(
                # and the tally's groups as the state row holds them (``set_states``)
                f"SELECT {CLAIM_COLUMNS}, s.sender_fac, s.message_type "
                "FROM queue_state s INDEXED BY queue_ready "
                "JOIN queue_msg m ON m.seq = s.seq WHERE s.state='queued' AND s.lane=? "
                "ORDER BY s.patient_key, s.order_key LIMIT ?",
                (lane, limit),
            ) as cur:
                fetched = await cur.fetchall()
            w = _ROW_WIDTH
            rows = [QueueRow._make(f[:w]) for f in fetched]
            await _move(conn, [r.seq for r in rows], "released",  # neighbouring rows
                        known=[(r.seq, lane, r.state, f[w], f[w + 1])
                               for r, f in zip(rows, fetched, strict=True)],
                        keys=[r.state_key for r in rows])
        return rows

    async def mark_released(self, seqs: Sequence[int]) -> None:
        """Send applied rows round again (a merge learned late redirects them)."""
        async with transaction(self.conn) as conn:
            await _move(conn, seqs, "released")

    async def finish(
        self, applied: Iterable[int] = (), dead: Iterable[tuple[int, str]] = ()
    ) -> None:
        """Record terminal states for released rows in one transaction."""
        record = finisher(applied, dead)
        async with transaction(self.conn) as conn:
            await conn._execute(record, conn._conn)  # type: ignore[attr-defined]

    async def depth(self, lane: Lane | None = None) -> int:
        """Messages waiting (queued or released but not finished).

        Counted from the rows themselves (what ``drain_live`` waits on), through the two
        partial indexes alone: a filter on ``lane`` through a state index would read
        every waiting row (about a second per 200,000). Staged rows are counted too.
        """
        where = " AND lane=?" if lane is not None else ""
        sql = (f"SELECT (SELECT COUNT(*) FROM queue_state INDEXED BY queue_ready "
               f"WHERE state='queued'{where}) + (SELECT COUNT(*) FROM queue_state "
               f"INDEXED BY queue_released WHERE state='released'{where}) + "
               f"(SELECT COUNT(*) FROM queue_stage WHERE true{where})")
        args: tuple = (lane, lane, lane) if lane is not None else ()
        async with self.conn.execute(sql, args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def waiting(self) -> dict[str, int]:
        """Messages waiting per lane (queued or released), from the tally: a few rows read
        whatever the backlog, for progress lines (``depth`` counts the rows themselves)."""
        async with self.conn.execute(
            "SELECT lane, SUM(n) FROM queue_tally WHERE state IN ('queued', 'released') "
            "GROUP BY lane"
        ) as cur:
            found = {lane: int(n) for lane, n in await cur.fetchall()}
        return {lane: found.get(lane, 0) for lane in LANES}

    async def counts(self) -> dict[str, int]:
        """Messages per state, from the tally."""
        async with self.conn.execute(
                "SELECT state, SUM(n) FROM queue_tally GROUP BY state HAVING SUM(n) > 0") as cur:
            return {s: int(n) for s, n in await cur.fetchall()}

    async def get(self, seq: int) -> QueueRow | None:
        async with self.conn.execute(
            f"SELECT {ROW_COLUMNS} FROM queue WHERE seq=?", (seq,)
        ) as cur:
            row = await cur.fetchone()
        return QueueRow(*row) if row else None

    async def rows(self, state: str, limit: int = 1000, offset: int = 0) -> list[QueueRow]:
        """Rows in a state, by ``seq``: dead letters through their own small index."""
        # the state as a literal when it is the partial index's own, which SQLite
        # uses only for a query that names it
        where = "state='dead-lettered'" if state == "dead-lettered" else "state=?"
        async with self.conn.execute(
            f"SELECT {ROW_COLUMNS} FROM queue WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            (limit, offset) if state == "dead-lettered" else (state, limit, offset),
        ) as cur:
            return [QueueRow(*r) for r in await cur.fetchall()]

    async def requeue(self, seqs: Sequence[int]) -> int:
        """Put dead-lettered rows back to released for a retry (see deadletter.retry)."""
        async with transaction(self.conn) as conn:
            return await _move(conn, seqs, "released", only_from="dead-lettered")

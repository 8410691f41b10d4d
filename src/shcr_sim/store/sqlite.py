"""aiosqlite record store: current versions, full history, patient/identifier indexes.

One batch = one transaction: current rows for the batch are read with chunked
``IN`` queries, decisions are made in Python, and everything is written back with
``executemany``. It can share the engine's database file (separate tables).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from . import compress
from .base import (
    ApplyResult,
    NotAStore,
    Prepared,
    Resource,
    StoreUnavailable,
    Version,
    Write,
    prepare_write,
)

# Every version that is not current: superseded ones, and older events' versions that
# never became current. The current version's history row is its ``resource`` row, so
# a new resource costs one row, not two.
PAST_TABLE = """
CREATE TABLE IF NOT EXISTS resource_past (
  rkey TEXT NOT NULL,
  version INTEGER NOT NULL,
  made_current INTEGER NOT NULL,
  last_updated TEXT NOT NULL,
  event_time TEXT NOT NULL,
  order_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  hash TEXT NOT NULL,
  json BLOB NOT NULL,  -- compress.pack(JSON without the store-owned meta); older: plain JSON
  PRIMARY KEY (rkey, version)
);
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
  rkey TEXT PRIMARY KEY,            -- "Type/id"
  rtype TEXT NOT NULL,
  rid TEXT NOT NULL,
  version INTEGER NOT NULL,         -- the current version's number
  max_version INTEGER NOT NULL,     -- highest version number written (history included)
  last_updated TEXT NOT NULL,       -- when the current version was written
  event_time TEXT NOT NULL,         -- the newest event applied (same content absorbed)
  order_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  hash TEXT NOT NULL,
  json BLOB NOT NULL,
  v_event_time TEXT NOT NULL,       -- the event that made the current version
  v_order_key TEXT NOT NULL,
  v_message_id TEXT NOT NULL
);
""" + PAST_TABLE + """
CREATE TABLE IF NOT EXISTS patient_index (
  patient_key TEXT NOT NULL, rkey TEXT NOT NULL, PRIMARY KEY (patient_key, rkey)
) WITHOUT ROWID;
-- Patients' identifiers (base.INDEXED_BY_IDENTIFIER)
CREATE TABLE IF NOT EXISTS identifier_index (
  ident TEXT NOT NULL, rkey TEXT NOT NULL, PRIMARY KEY (ident, rkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_control (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS store_dictionary (dict_id INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""
# Every version, one row each (json NULL for the current one: it is in ``resource``).
HISTORY_VIEW = """
CREATE VIEW IF NOT EXISTS resource_history AS
  SELECT rkey, version, made_current, last_updated, event_time, order_key, message_id,
         hash, json FROM resource_past
  UNION ALL
  SELECT rkey, version, 1, last_updated, v_event_time, v_order_key, v_message_id, hash,
         NULL FROM resource;
"""
# A database written before ``resource_past``: ``resource_history`` was a table holding
# every version, the current one with NULL json. Moved over in one transaction.
# That layout could also hold a ``max_version`` behind the versions written, and a
# superseded version under the current one's number (its json not NULL): the numbers
# are repaired and that version kept under a new one.
_CURRENT_ROW = ("(SELECT h.{col} FROM resource_history h WHERE h.rkey = resource.rkey"
                " AND h.version = resource.version AND h.json IS NULL)")
_STRANDED = ("FROM resource_history h JOIN resource r ON r.rkey = h.rkey"
             " WHERE h.version = r.version AND h.json IS NOT NULL")
MIGRATE_HISTORY_TABLE = (
    "ALTER TABLE resource ADD COLUMN v_event_time TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE resource ADD COLUMN v_order_key TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE resource ADD COLUMN v_message_id TEXT NOT NULL DEFAULT ''",
    "UPDATE resource SET "
    + ", ".join(f"v_{c} = COALESCE({_CURRENT_ROW.format(col=c)}, {c})"
                for c in ("event_time", "order_key", "message_id")),
    "UPDATE resource SET max_version = MAX(version, max_version, COALESCE("
    " (SELECT MAX(h.version) FROM resource_history h WHERE h.rkey = resource.rkey), 0))",
    "INSERT INTO resource_past SELECT h.* FROM resource_history h"
    " JOIN resource r ON r.rkey = h.rkey WHERE h.version != r.version AND h.json IS NOT NULL",
    "INSERT INTO resource_past SELECT h.rkey, r.max_version + 1, h.made_current,"
    f" h.last_updated, h.event_time, h.order_key, h.message_id, h.hash, h.json {_STRANDED}",
    f"UPDATE resource SET max_version = max_version + 1 WHERE rkey IN (SELECT h.rkey {_STRANDED})",
    "DROP TABLE resource_history",
)


def is_table(db: sqlite3.Connection, name: str) -> bool:
    """``name`` is a table (not a view, not missing): an older layout, before a split."""
    row = db.execute("SELECT type FROM sqlite_master WHERE name=?", (name,)).fetchone()
    return row is not None and row[0] == "table"


_CREATED = re.compile(r"CREATE (TABLE|VIEW) IF NOT EXISTS (\w+)")


def has_layout(db: sqlite3.Connection, *scripts: str) -> bool:
    """Every table and view ``scripts`` create is there, each as that kind of object
    (names and kinds only, not columns: a later layout change that only adds a column
    must be checked on its own). A reader may then use it without moving anything."""
    have = dict(db.execute("SELECT name, type FROM sqlite_master"))
    return all(have.get(name) == kind.lower()
               for script in scripts for kind, name in _CREATED.findall(script))


def migrate(db: sqlite3.Connection, old: Callable[[sqlite3.Connection], bool],
            statements: Sequence[str]) -> None:
    """Move an older layout over: ``statements`` in one transaction when ``old(db)``.

    Checked again under the write lock: another process opening the same file may
    have moved it over meanwhile.
    """
    if not old(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if old(db):
            for stmt in statements:
                db.execute(stmt)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _create_schema(db: sqlite3.Connection) -> dict[int, bytes]:
    """The store's tables and history view, moving an older layout over first; the
    compression dictionaries the database holds, this release's included."""
    migrate(db, lambda d: is_table(d, "resource_history"), (PAST_TABLE, *MIGRATE_HISTORY_TABLE))
    db.executescript(SCHEMA + HISTORY_VIEW)
    zdict = compress.dictionary()
    if db.execute("SELECT 1 FROM store_dictionary WHERE dict_id=?",
                  (zdict.dict_id(),)).fetchone() is None:
        db.execute("INSERT OR IGNORE INTO store_dictionary(dict_id, data) VALUES(?, ?)",
                   (zdict.dict_id(), zdict.as_bytes()))
    return dict(db.execute("SELECT dict_id, data FROM store_dictionary"))


def _read_dictionaries(db: sqlite3.Connection) -> dict[int, bytes] | None:
    """The dictionaries the database holds, and this release's (in memory only: a
    reader writes nothing); None for an older layout, which only a writer moves over."""
    if not has_layout(db, PAST_TABLE, SCHEMA, HISTORY_VIEW):
        return None
    zdict = compress.dictionary()  # the database's own bytes win, as in _create_schema
    return {zdict.dict_id(): zdict.as_bytes(),
            **dict(db.execute("SELECT dict_id, data FROM store_dictionary"))}


T = TypeVar("T")
UNAVAILABLE_SQL = "SELECT value FROM store_control WHERE key='unavailable_until'"


def _remaining(row: Any) -> float:
    """Seconds an ``unavailable_until`` row still has to run (0.0: available)."""
    return max(float(row[0]) - time.time(), 0.0) if row else 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# WAL checkpoints: a batch writes several MiB, so SQLite's default (every 4-8 MiB)
# copied the WAL back into the file, and synced it, on nearly every commit. A thread
# of the writing process checkpoints from 32 MiB on (below); the writer itself only
# at 4 × 8192 pages (256 MiB; 128 MiB in an older 4 KiB-page file), if that thread
# fell behind. Once checkpointed, the WAL restarts from its first frame, and its file
# is cut back only beyond 256 MiB: cut back to 8 MiB at every restart, it was regrown
# every cycle, and the file system's freeing, allocating and zeroing of those blocks
# was about a quarter of the kernel time of accepting messages. Kept whole, the
# file's size no longer says how much the WAL holds. Reading that from the WAL index
# would take a second descriptor on the -shm file, and closing it drops every POSIX
# lock this process holds on that file, SQLite's own included: tried, and a test's
# database came out malformed. So the thread goes by the rate its last checkpoint
# saw (``_checkpoint_due``): while a replay writes (tens to hundreds of MiB a second) it
# checkpoints at every poll, as before; a trickle of small commits, as a live
# engine's, every two seconds rather than at every poll (two syncs each: ten a
# second for a few frames, measured). A checkpoint only from every 32 MiB written
# never caught up with a replay, so its WAL never restarted: tried, and slower.
WAL_CHECKPOINT_PAGES = 8192
PAGE_SIZE = 8192
BACKGROUND_CHECKPOINT_BYTES = 32 << 20
WRITER_CHECKPOINT_PAGES = 4 * WAL_CHECKPOINT_PAGES  # the writer's own fallback
WAL_KEPT_BYTES = WRITER_CHECKPOINT_PAGES * PAGE_SIZE
CHECKPOINT_POLL_S = 0.2
HEAVY_BYTES_PER_S = 8 << 20
QUIET_CHECKPOINT_S = 2.0


def _checkpoint_due(wal_bytes: int, grew: bool, since_last_s: float,
                    bytes_per_s: float) -> bool:
    """Whether the thread checkpoints now: never while the WAL file is below 32 MiB;
    at every poll while the file grows (the WAL holds more than it ever did) or while
    the last checkpoint that copied anything saw heavy writes (a replay pauses between
    its batches); otherwise every ``QUIET_CHECKPOINT_S``."""
    if wal_bytes < BACKGROUND_CHECKPOINT_BYTES:
        return False
    return grew or bytes_per_s >= HEAVY_BYTES_PER_S or since_last_s >= QUIET_CHECKPOINT_S


def _frames_copied(before: tuple[int, int], after: tuple[int, int]) -> int:
    """Frames one checkpoint copied, from the (frames in the WAL, frames checkpointed)
    pairs ``PRAGMA wal_checkpoint`` returned before and after it. After a checkpoint
    that caught up, the next commit restarts the WAL from its first frame (unless a
    reader holds it back: then this counts too many, which only checkpoints sooner).
    The same pair twice: nothing was written in between (a pause), nothing copied."""
    (log0, done0), (log1, done1) = before, after
    if after == before:
        return 0
    if log1 < log0 or done0 >= log0:
        return max(done1, 0)
    return done1 - done0


def _checkpoint_while_open(path: str, synchronous: str, stop: threading.Event,
                           owners: weakref.WeakSet[aiosqlite.Connection]) -> None:
    """Copy the WAL back into the database file, off the writer's thread.

    A PASSIVE checkpoint never blocks the writer (it stops at what readers still
    need), and its file writes and syncs are I/O the writer no longer waits for in
    COMMIT: about 40 % of the commit time of a large replay. Runs until ``stop`` (the
    last connection it serves closing) or until those connections are all gone.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA synchronous={synchronous}")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]  # 4 KiB in older files
        wal = path + "-wal"
        last_at, last_size, rate, last_result = time.monotonic(), 0, 0.0, (0, 0)
        while not stop.wait(CHECKPOINT_POLL_S) and len(owners):
            since = time.monotonic() - last_at
            try:
                size = os.path.getsize(wal)
                if not _checkpoint_due(size, size > last_size, since, rate):
                    continue
                busy, log, done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except (OSError, sqlite3.Error):
                continue  # no WAL file yet, or busy: next time
            if busy or log < 0:  # another checkpoint ran (the writer's own): no count
                continue
            if copied := _frames_copied(last_result, (log, done)):  # not a pause's
                rate = copied * page_size / since
            last_at, last_size, last_result = time.monotonic(), size, (log, done)
    finally:
        db.close()


@dataclass
class _Checkpointer:
    """One checkpoint thread per database file and process, however many connections
    this process has open on it (the live engine's queue and store: two)."""

    thread: threading.Thread
    stop: threading.Event
    owners: weakref.WeakSet[aiosqlite.Connection]


_CHECKPOINTERS: dict[str, _Checkpointer] = {}
_CHECKPOINTERS_LOCK = threading.Lock()


def _checkpoint_in_background(conn: aiosqlite.Connection, path: str, synchronous: str) -> None:
    """Serve ``conn`` by the file's checkpoint thread (starting it if none runs), and stop
    that thread before the last connection it serves closes: the last connection to
    close copies the rest of the WAL back and deletes it, so the database file is
    whole on its own after a run."""
    key = os.path.realpath(path)
    with _CHECKPOINTERS_LOCK:
        cp = _CHECKPOINTERS.get(key)
        if cp is None or not cp.thread.is_alive() or cp.stop.is_set():
            owners: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
            stop = threading.Event()
            thread = threading.Thread(target=_checkpoint_while_open, daemon=True,
                                      name="wal-checkpoint",
                                      args=(key, synchronous, stop, owners))
            cp = _CHECKPOINTERS[key] = _Checkpointer(thread, stop, owners)
            owners.add(conn)
            thread.start()
        else:
            cp.owners.add(conn)
    close = conn.close

    async def stop_then_close() -> None:
        with _CHECKPOINTERS_LOCK:
            cp.owners.discard(conn)
            last = not len(cp.owners)
            if last:
                cp.stop.set()
                if _CHECKPOINTERS.get(key) is cp:
                    del _CHECKPOINTERS[key]
        if last:
            try:
                await asyncio.get_running_loop().run_in_executor(None, cp.thread.join)
            except RuntimeError:  # no executor any more (the loop is shutting down)
                cp.thread.join()
        await close()

    conn.close = stop_then_close  # type: ignore[method-assign]


async def connect(db_path: str | Path, synchronous: str = "NORMAL") -> aiosqlite.Connection:
    """Autocommit connection (callers issue BEGIN IMMEDIATE) in WAL mode.

    WAL + synchronous=NORMAL survives a killed process (every commit is in the WAL
    before ``commit`` returns); pass ``synchronous="FULL"`` to survive power loss too.
    The queue and the store share one file and open it the same way.
    """
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    # 8 KiB pages (a new file only): a resource's JSON is ~1 KiB and a batch commits
    # several MiB; half as many page frames to write to the WAL cut the commit time
    # (measured against 4 and 16 KiB on a replay batch)
    await _set_up(conn, db_path, (
        f"page_size={PAGE_SIZE}", "journal_mode=WAL", f"synchronous={synchronous}",
        "busy_timeout=60000", "temp_store=MEMORY",
        "cache_size=-65536",  # 64 MiB: current rows + indexes
        f"wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}", f"journal_size_limit={WAL_KEPT_BYTES}",
    ))
    _checkpoint_in_background(conn, str(path), synchronous)
    return conn


async def _set_up(conn: aiosqlite.Connection, db_path: str | Path,
                  pragmas: Sequence[str]) -> None:
    """Run ``pragmas`` on a new connection; on any failure close it before raising.

    Some of them read the file's header, so a file that is not an SQLite database
    fails here, as ``NotAStore``. Left open, aiosqlite's connection thread would keep
    the process from ever exiting.
    """
    try:
        for pragma in pragmas:
            await conn.execute(f"PRAGMA {pragma}")
    except BaseException as exc:
        await conn.close()
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise NotAStore(f"{db_path} is not an SQLite database") from None
        raise


async def connect_for_reading(db_path: str | Path) -> aiosqlite.Connection:
    """A connection that only reads, for commands that look at a database (``verify``,
    ``record``, the dead letters): ``query_only`` (no schema, rows or temp tables
    written) and no checkpoint thread (the writing process has its own). A missing
    file is not created. Like any SQLite connection on a WAL database it needs the
    directory writable for the WAL's files, and the last one to close folds a WAL
    left behind (by a killed writer) back into the database."""
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"database not found: {db_path}")
    conn = await aiosqlite.connect(path.resolve().as_uri() + "?mode=rw", uri=True,
                                   isolation_level=None)
    await _set_up(conn, db_path, ("query_only=ON", "busy_timeout=60000", "temp_store=MEMORY",
                                  "cache_size=-65536"))
    return conn


async def open_reader(db_path: str | Path, current: Callable[[sqlite3.Connection], T | None],
                      older: Callable[[sqlite3.Connection], bool], what: str,
                      ) -> tuple[aiosqlite.Connection, T] | None:
    """A reading connection and ``current(db)`` when it is not None (the layout is
    this release's); None when ``older(db)`` (only a writer's open can move that
    layout over: the caller opens as a writer); else ``NotAStore``, nothing written."""
    conn = await connect_for_reading(db_path)
    try:
        found = await conn._execute(current, conn._conn)  # type: ignore[attr-defined]
        if found is not None:
            return conn, found
        moved_over_by_a_writer = await conn._execute(older, conn._conn)  # type: ignore[attr-defined]
    except BaseException:
        await conn.close()
        raise
    await conn.close()
    if not moved_over_by_a_writer:
        raise NotAStore(f"{db_path} holds no {what}")
    return None


# One transaction at a time per connection: coroutines sharing a connection (the
# engine's queue and its store, the MLLP listener's accept and the release loop)
# would otherwise interleave their statements inside each other's BEGIN … COMMIT.
_WRITE_LOCKS: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def write_lock(conn: aiosqlite.Connection) -> asyncio.Lock:
    """The lock every transaction on ``conn`` holds from BEGIN to COMMIT."""
    lock = _WRITE_LOCKS.get(conn)
    if lock is None:
        lock = _WRITE_LOCKS[conn] = asyncio.Lock()
    return lock


# Runs inside the store's transaction, after its writes (``apply_prepared(then=…)``).
Then = Callable[[sqlite3.Connection], None]
LOCKED_WAIT_S = 60.0  # as long as busy_timeout


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "database is locked" in str(exc)


async def retry_locked(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt`` (a BEGIN, or a whole transaction that rolls back on failure),
    retrying with back-off while SQLite says "database is locked".

    The busy handler covers a writer on another connection, but not this case: a
    read statement still open on the *same* connection (a coroutine between its
    ``execute`` and its ``fetchall``) pins an old snapshot, and BEGIN IMMEDIATE
    then fails at once if another process has written since. Waiting here, off
    the connection's thread, lets that read finish.
    """
    delay, deadline = 0.002, time.monotonic() + LOCKED_WAIT_S
    while True:
        try:
            return await attempt()
        except sqlite3.OperationalError as exc:
            # wall time, not the sum of back-offs: each attempt may itself have
            # waited out the busy timeout behind another process's writer
            if not _locked(exc) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


class SqliteStore:
    """The aiosqlite back end of ``RecordStore``."""

    def __init__(self, conn: aiosqlite.Connection, dictionaries: dict[int, bytes], *,
                 owns_conn: bool = True) -> None:
        self.conn = conn
        self.owns_conn = owns_conn
        self.unpacker = compress.Unpacker(dictionaries)

    @classmethod
    async def open(cls, db_path: str | Path, synchronous: str = "NORMAL") -> SqliteStore:
        conn = await connect(db_path, synchronous)
        return cls(conn, await conn._execute(_create_schema, conn._conn))  # type: ignore[attr-defined]

    @classmethod
    async def open_for_reading(cls, db_path: str | Path) -> SqliteStore:
        """The store for reading only (``connect_for_reading``). A store in an older
        layout is opened as ``open`` does instead, which moves it over first; a file
        with no store in it is an error, not written to."""
        opened = await open_reader(db_path, _read_dictionaries,
                                   lambda db: is_table(db, "resource"), "record store")
        return cls(*opened) if opened is not None else await cls.open(db_path)

    @classmethod
    async def on(cls, conn: aiosqlite.Connection) -> SqliteStore:
        """The store in a database someone else has open (the engine's queue).

        Sharing the connection lets the engine commit the resources and the
        messages' terminal states in one transaction, and spares two connections
        to one file waiting on each other's write lock.
        """
        async with write_lock(conn):
            dictionaries = await retry_locked(lambda: conn._execute(
                _create_schema, conn._conn))  # type: ignore[attr-defined]
        return cls(conn, dictionaries, owns_conn=False)

    async def close(self) -> None:
        if self.owns_conn:
            await self.conn.close()

    async def set_unavailable(self, until: float) -> None:
        """Refuse writes until ``until`` (epoch seconds; 0: available again).

        The store-outage fault. The switch lives in the database, so every engine
        writing to this store (the live release, a backload replay in another
        process) is refused alike: ``apply`` raises ``StoreUnavailable``.
        """
        async with write_lock(self.conn):  # the connection may be the engine's, shared
            await retry_locked(lambda: self.conn.execute(
                "INSERT INTO store_control(key, value) VALUES('unavailable_until', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (until,),
            ))

    async def unavailable_for(self) -> float:
        """Seconds the store goes on refusing writes (0.0: available)."""
        async with self.conn.execute(UNAVAILABLE_SQL) as cur:
            return _remaining(await cur.fetchone())

    async def _fetch_in(self, sql: str, values: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(values), 500):
            part = values[i : i + 500]
            async with self.conn.execute(sql.format(marks=",".join("?" * len(part))), part) as c:
                out.extend(await c.fetchall())
        return out

    async def apply(self, writes: Sequence[Write]) -> ApplyResult:
        """Apply a batch in one transaction; see the module docstring of ``base``."""
        return await self.apply_prepared([prepare_write(w) for w in writes])

    async def apply_prepared(self, items: Sequence[Prepared],
                             then: Then | None = None) -> ApplyResult:
        """``apply`` for writes already keyed, hashed and serialised (by workers): each
        a ``Prepared`` or a plain tuple of its fields.

        ``then`` runs in the same transaction after the writes, on the connection's
        thread: the engine records its messages' terminal states there, so they
        commit together with the resources or not at all.
        """
        if not items and then is None:
            return ApplyResult()
        # the whole transaction in one hop to the connection's thread (aiosqlite's
        # ``_execute`` runs a function there); sqlite3 releases the GIL while it works
        async with write_lock(self.conn):
            return await retry_locked(lambda: self.conn._execute(
                self._apply_in_transaction, items, _now(), then))

    def _apply_in_transaction(self, items: Sequence[Prepared], now: str,
                              then: Then | None = None) -> ApplyResult:
        db: sqlite3.Connection = self.conn._conn  # type: ignore[attr-defined]
        db.execute("BEGIN IMMEDIATE")
        try:
            # no writes (a batch whose every message failed to convert): its dead
            # letters are recorded even while the store refuses writes
            if items and (left := _remaining(db.execute(UNAVAILABLE_SQL).fetchone())) > 0:
                raise StoreUnavailable(f"record store unavailable for another {left:.1f} s")
            result = self._apply_sync(items, now)
            if then is not None:
                then(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _apply_sync(self, items: Sequence[Prepared], now: str) -> ApplyResult:
        """The whole batch on the connection's own thread: reads, decisions, writes.

        The current version lives in ``resource`` only; when a newer version supersedes
        it, it moves to ``resource_past``. So every version is on disk once, and a new
        resource is one row, not two.
        """
        db: sqlite3.Connection = self.conn._conn  # type: ignore[attr-defined]
        result = ApplyResult()
        rkeys = sorted({p[0] for p in items})
        state: dict[str, list[Any]] = {}
        # (rkey, message id, content hash) of every version already stored
        seen: set[tuple[str, str, str]] = set()
        for i in range(0, len(rkeys), 500):
            part = rkeys[i : i + 500]
            for row in db.execute(
                "SELECT rkey, version, max_version, order_key, hash, event_time, message_id, "
                f"v_message_id FROM resource WHERE rkey IN ({','.join('?' * len(part))})", part
            ):
                # [version, max_version, order_key, hash, event_time, message_id, stored]
                state[row[0]] = [*row[1:7], True]
                seen.add((row[0], row[7], row[4]))
        existing = sorted(state)
        for i in range(0, len(existing), 500):
            part = existing[i : i + 500]
            seen.update(db.execute(
                "SELECT rkey, message_id, hash FROM resource_past "
                f"WHERE rkey IN ({','.join('?' * len(part))})", part
            ))
        known = {(r, h) for r, _m, h in seen}  # (rkey, content hash) already stored
        past: list[tuple] = []  # versions of this batch that end up not current
        moved: list[tuple[str]] = []  # stored current versions superseded here
        current: dict[str, tuple] = {}  # rkey → its resource row (the batch's newest)
        touched: set[str] = set()  # existing rows whose bookkeeping changed
        pindex: set[tuple[str, str]] = set()
        iindex: set[tuple[str, str]] = set()
        # unpacked by position: items are ``Prepared`` or, from a conversion worker,
        # plain tuples of the same fields (cheaper through the process pipe)
        for rkey, rtype, rid, h, body, idents, order_key, event_time, message_id, \
                patient_key in items:
            if (rkey, message_id, h) in seen:
                result.unchanged += 1
                continue
            cur = state.get(rkey)
            if cur is not None and h == cur[3]:
                result.unchanged += 1
                if order_key > cur[2]:  # same content, newer event
                    cur[2], cur[4], cur[5] = order_key, event_time, message_id
                    touched.add(rkey)
                continue
            make_current = cur is None or order_key >= cur[2]
            if not make_current and (rkey, h) in known:
                # an older event whose content is already in history (it was absorbed as
                # "same content" when first applied): re-applying it adds nothing
                result.unchanged += 1
                continue
            seen.add((rkey, message_id, h))
            known.add((rkey, h))
            version = (cur[1] if cur else 0) + 1
            if cur is None:
                result.created += 1
                cur = state[rkey] = [version, version, order_key, h, event_time,
                                     message_id, False]
            elif make_current:
                result.updated += 1
                was = current.get(rkey)
                if was is not None:  # superseded within this batch: straight to the past
                    past.append((rkey, was[2], 1, now, was[6], was[7], was[8], was[4], was[5]))
                elif cur[6]:
                    moved.append((rkey,))
            else:
                result.history_only += 1
                past.append((rkey, version, 0, now, event_time, order_key, message_id, h,
                             body))
            cur[1] = version
            touched.add(rkey)
            if make_current:
                cur[0], cur[2], cur[3], cur[4], cur[5] = (version, order_key, h, event_time,
                                                          message_id)
                # the version's own fields; the row's bookkeeping (max_version, the
                # newest event applied) is taken from ``state`` after the loop
                current[rkey] = (rtype, rid, version, patient_key, h, body, event_time,
                                 order_key, message_id)
                for ident in idents:
                    iindex.add((ident, rkey))
            if patient_key:
                pindex.add((patient_key, rkey))
        # plain INSERTs: what is already stored was skipped above, so a version number
        # taken twice would be a bug, not a replay
        if moved:  # before the current rows are overwritten
            db.executemany(
                "INSERT INTO resource_past(rkey, version, made_current, "
                "last_updated, event_time, order_key, message_id, hash, json) "
                "SELECT rkey, version, 1, last_updated, v_event_time, v_order_key, "
                "v_message_id, hash, json FROM resource WHERE rkey=?",
                moved,
            )
        if past:
            db.executemany(
                "INSERT INTO resource_past(rkey, version, made_current, "
                "last_updated, event_time, order_key, message_id, hash, json) "
                "VALUES(?,?,?,?,?,?,?,?,?)",
                past,
            )
        if current:
            db.executemany(
                "INSERT INTO resource(rkey, rtype, rid, version, max_version, last_updated, "
                "event_time, order_key, message_id, patient_key, hash, json, v_event_time, "
                "v_order_key, v_message_id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(rkey) DO UPDATE SET "
                "version=excluded.version, max_version=excluded.max_version, "
                "last_updated=excluded.last_updated, event_time=excluded.event_time, "
                "order_key=excluded.order_key, message_id=excluded.message_id, "
                "patient_key=CASE WHEN excluded.patient_key != '' "
                "THEN excluded.patient_key ELSE resource.patient_key END, "
                "hash=excluded.hash, json=excluded.json, v_event_time=excluded.v_event_time, "
                "v_order_key=excluded.v_order_key, v_message_id=excluded.v_message_id",
                [(rkey, rtype, rid, version, state[rkey][1], now, state[rkey][4], state[rkey][2],
                  state[rkey][5], patient_key, h, blob, v_event_time, v_order_key, v_message_id)
                 for rkey, (rtype, rid, version, patient_key, h, blob, v_event_time,
                            v_order_key, v_message_id) in current.items()],
            )
        touched.difference_update(current)  # their rows were written whole above
        if touched:
            db.executemany(
                "UPDATE resource SET max_version=?, order_key=?, event_time=?, message_id=? "
                "WHERE rkey=?",
                [(state[k][1], state[k][2], state[k][4], state[k][5], k)
                 for k in sorted(touched)],
            )
        if pindex:
            db.executemany(
                "INSERT OR IGNORE INTO patient_index(patient_key, rkey) VALUES(?,?)",
                sorted(pindex),
            )
        if iindex:
            db.executemany(
                "INSERT OR IGNORE INTO identifier_index(ident, rkey) VALUES(?,?)",
                sorted(iindex),
            )
        return result

    # -- reads -------------------------------------------------------------
    # Every read selects (json, version, last_updated): the stored JSON is compressed
    # and leaves out the store-owned meta, which the row's columns give back (a row
    # written by an earlier release is plain JSON, meta included, and read as is).
    async def current(self, rtype: str, rid: str) -> Resource | None:
        async with self.conn.execute(
            "SELECT json, version, last_updated FROM resource WHERE rkey=?", (f"{rtype}/{rid}",)
        ) as cur:
            row = await cur.fetchone()
        return self.unpacker.resource(*row) if row else None

    async def current_many(self, rkeys: Sequence[str]) -> dict[str, Resource]:
        rows = await self._fetch_in(
            "SELECT rkey, json, version, last_updated FROM resource WHERE rkey IN ({marks})",
            list(rkeys),
        )
        return {k: self.unpacker.resource(j, v, lu) for k, j, v, lu in rows}

    async def history(self, rtype: str, rid: str) -> list[Version]:
        async with self.conn.execute(
            "SELECT h.version, h.made_current, h.last_updated, h.event_time, h.order_key, "
            "h.message_id, COALESCE(h.json, r.json) FROM resource_history h "
            "LEFT JOIN resource r ON r.rkey = h.rkey WHERE h.rkey=? ORDER BY h.version",
            (f"{rtype}/{rid}",),
        ) as cur:
            rows = await cur.fetchall()
        return [Version(v, bool(c), lu, et, ok, mid, self.unpacker.resource(j, v, lu))
                for v, c, lu, et, ok, mid, j in rows]

    async def by_patient(self, patient_key: str) -> list[Resource]:
        async with self.conn.execute(
            "SELECT r.json, r.version, r.last_updated FROM patient_index p "
            "JOIN resource r ON r.rkey = p.rkey "
            "WHERE p.patient_key=? ORDER BY r.order_key, r.rkey",
            (patient_key,),
        ) as cur:
            return [self.unpacker.resource(*row) for row in await cur.fetchall()]

    async def patients_by_identifier(self, system: str, value: str) -> list[Resource]:
        # a database written before INDEXED_BY_IDENTIFIER also indexed other types
        async with self.conn.execute(
            "SELECT r.json, r.version, r.last_updated FROM identifier_index i "
            "JOIN resource r ON r.rkey = i.rkey WHERE i.ident=? "
            "AND i.rkey >= 'Patient/' AND i.rkey < 'Patient0' ORDER BY r.rkey",
            (f"{system}|{value}",),
        ) as cur:
            return [self.unpacker.resource(*row) for row in await cur.fetchall()]

    async def iter_current(self) -> AsyncIterator[Resource]:  # type: ignore[override]
        async with self.conn.execute(
            "SELECT json, version, last_updated FROM resource ORDER BY rkey"
        ) as cur:
            async for row in cur:
                yield self.unpacker.resource(*row)

    async def iter_stored(self) -> AsyncIterator[tuple[int, str, bytes | str]]:
        """Every current row as kept, in the table's own order (its rowid): (rowid,
        rkey, packed JSON). That order reads the file front to back; ``rkey`` order
        would be a random read per row once the table outgrows memory. Equal packed
        bytes mean equal content, so a comparison against ``compress.pack`` of the
        expected JSON needs no unpacking when they match."""
        async with self.conn.execute(
            "SELECT rowid, rkey, json FROM resource ORDER BY rowid"
        ) as cur:
            while rows := await cur.fetchmany(2000):
                for row in rows:
                    yield row

    async def count(self) -> int:
        async with self.conn.execute("SELECT COUNT(*) FROM resource") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def counts_by_type(self) -> dict[str, int]:
        async with self.conn.execute(
            # the primary-key index alone (rkey = "Type/id"): no index on rtype to maintain
            "SELECT substr(rkey, 1, instr(rkey, '/') - 1) AS t, COUNT(*) FROM resource "
            "GROUP BY t ORDER BY t"
        ) as cur:
            return {t: int(n) for t, n in await cur.fetchall()}

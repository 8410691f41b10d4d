"""``verify``: rebuild the expected record without the queue, the sequencer or the guard.

An independent check of journey integrity, in bounded memory:

1. Read every message of the files again and drop what the engine must drop
   (unreadable, unknown sender, no keys; a repeated (MSH-3, MSH-4, MSH-10): the
   first copy read wins). Each kept message goes to a temporary on-disk SQLite
   table with its patient key and its ordering fields — nothing is held in memory.
2. Merges (A40/A34) join patients: the merged-away record and the survivor form
   one group, processed together. The merges themselves (few) are kept in memory
   with their position in time, so a message converts with the merges in force at
   its event time.
3. One group at a time, its messages are sorted plainly by the documented rule —
   event time (to the millisecond), event-type precedence, MSH-7, sender, MSH-10 —
   converted and applied in that order to a dict: the last write wins. The group's
   expected resources are then written to disk and dropped from memory. Groups are
   independent, so worker processes convert them side by side. Shared reference
   data (an Organization written by many patients' messages) keeps the version
   from the latest event over all groups.
4. The store's current versions are compared with the expected ones, ignoring
   ``meta``: "differs", "missing" (expected, not in the store) and "unexpected".
   Each expected row is written with the store row its key names (looked up in
   the store's key index as it is written), so the comparison reads the store's
   table in its own order, front to back. In key order that was a random read per
   row, which at ten million messages (a store bigger than memory) took hours.

It does not use the store's ordering keys or its guard, so a store that was
tampered with (an older version made current, a resource deleted) shows up.
"""

from __future__ import annotations

import sqlite3
import tempfile
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import orjson
import zstandard

from shcr_sim.hl7 import HL7Error, Message, TimestampError, parse_ts
from shcr_sim.store import SqliteStore, strip_meta
from shcr_sim.store.compress import Unpacker, pack
from shcr_sim.store.sqlite import connect_for_reading

from .convert import Converted, Converter, TrustInfo
from .inbound import SourceFile, discover, iter_raw
from .keys import (
    DEFAULT_TZ,
    MERGE_TYPES,
    PRECEDENCE,
    KeysError,
    merged_away_keys,
    parse_and_extract,
)
from .workers import default_workers, spawn_pool

OTHER = 900
T = TypeVar("T")
CHUNK_MESSAGES = 2000  # messages per job sent to a worker (whole groups when converting)
PARALLEL_FROM_BYTES = 8 << 20  # below (~10,000 messages), starting workers costs more

SCHEMA = """
CREATE TABLE msg (
  n INTEGER PRIMARY KEY, dedup TEXT UNIQUE, patient TEXT NOT NULL, pos TEXT NOT NULL,
  mtype TEXT NOT NULL, event_time TEXT NOT NULL, raw BLOB NOT NULL  -- _squeeze(message)
);
CREATE TABLE grp (patient TEXT PRIMARY KEY, grp TEXT NOT NULL);
"""
EXPECTED_SCHEMA = """
CREATE TABLE expected (  -- srow: the store's row for rkey (its rowid), NULL when it has none
  srow INTEGER, rkey TEXT NOT NULL, pos TEXT NOT NULL, json BLOB NOT NULL
);
"""
# the store's row for each expected resource, found through its key index as written
INSERT_EXPECTED = ("INSERT INTO expected(srow, rkey, pos, json) VALUES("
                   "(SELECT rowid FROM store.resource WHERE rkey = ?1), ?1, ?2, ?3)")
# NULL srow (not in the store) first, then in the store's row order
WANTED = "SELECT srow, rkey, pos, json FROM expected ORDER BY srow, rkey, pos, rowid DESC"


@dataclass(slots=True)
class Difference:
    rkey: str
    kind: str  # "missing" | "unexpected" | "differs"
    paths: list[str] = field(default_factory=list)
    expected: Any = None
    actual: Any = None

    def to_json(self) -> dict:
        return {"resource": self.rkey, "kind": self.kind, "paths": self.paths}


@dataclass(slots=True)
class VerifyResult:
    messages: int
    patients: int
    resources: int
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ (first 20)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += diff_paths(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out[:20]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff_paths(x, y, f"{path}[{i}]")
        return out[:20]
    return [] if a == b else [path or "(root)"]


async def saved_trusts(db: Path) -> list[TrustInfo] | None:
    """The trusts a replay saved in this database; None when it saved none.

    A missing file is left missing (None), and no rows or schema are written to an
    existing one. A file that is not an SQLite database raises ``NotAStore``.
    """
    if not Path(db).is_file():
        return None
    conn = await connect_for_reading(db)
    try:
        return await _trusts_saved_in(conn)
    finally:
        await conn.close()


async def _trusts_saved_in(conn: aiosqlite.Connection) -> list[TrustInfo] | None:
    async with conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' "
                            "AND name='engine_meta'") as cur:
        if await cur.fetchone() is None:  # no engine wrote to this file
            return None
    async with conn.execute("SELECT value FROM engine_meta WHERE key='trusts'") as cur:
        row = await cur.fetchone()
    return [TrustInfo(*t) for t in orjson.loads(row[0])] if row else None


# -- the ordering rule, written out plainly ----------------------------------------
def _ms(text: str, tz: str) -> int | None:
    try:
        ts = parse_ts(text, tz)
    except TimestampError:
        return None
    return None if ts is None else round(ts.epoch * 1000)


def position(msg: Message, event_time: str, tz: str) -> str:
    """A sortable text for (event time ms, precedence, MSH-7 ms, MSH-3, MSH-4, MSH-10)."""
    event = _ms(event_time, tz)
    msh7 = _ms(msg.get("MSH-7.1"), tz)
    event = 0 if event is None else event
    msh7 = event if msh7 is None else msh7
    app, fac = msg.sender
    prec = PRECEDENCE.get(msg.message_type, OTHER)
    return "|".join([f"{event + 10**15:017d}", f"{prec:04d}", f"{msh7 + 10**15:017d}", app,
                     fac, msg.control_id])


class _Groups:
    """Union-find over patient keys joined by merges."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        root = k
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while k != root:
            self.parent[k], k = root, self.parent.get(k, k)
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
            self.parent.setdefault(min(ra, rb), min(ra, rb))


# merged-away Patient id → (positions of its merges, survivors), in position order
MergeIndex = dict[str, tuple[list[str], list[str]]]


class MergesAt(Mapping[str, str]):
    """Old Patient id → survivor, for the merges at or before one position.

    The plain rule: of an id's merges so far the latest one counts, and a survivor
    that was itself merged away leads on (at most 50 hops). Looked up per id, so a
    message costs a few bisections, not a walk over every merge of the run.
    """

    def __init__(self, index: MergeIndex, pos: str) -> None:
        self._index = index
        self._pos = pos

    def _direct(self, old: str) -> str | None:
        entry = self._index.get(old)
        if entry is None:
            return None
        ats, survivors = entry
        i = bisect_right(ats, self._pos)
        return survivors[i - 1] if i else None

    def __getitem__(self, old: str) -> str:
        target = self._direct(old)
        hops = 0
        while target is not None and (nxt := self._direct(target)) is not None and hops < 50:
            target, hops = nxt, hops + 1
        if target is None or target == old:
            raise KeyError(old)
        return target

    def __iter__(self) -> Iterator[str]:
        return (old for old in self._index if old in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # only ``merged or {}`` asks: cheap, and lookups decide
        return True


def merge_index(merges: Sequence[tuple[str, str, str]]) -> MergeIndex:
    """Each merged-away id's merges (position, survivor), in position order."""
    index: MergeIndex = {}
    for at, old, surv in sorted(merges):
        if old != surv:
            ats, survivors = index.setdefault(old, ([], []))
            ats.append(at)
            survivors.append(surv)
    return index


def merged_at(index: MergeIndex, first: str | None, pos: str) -> MergesAt | None:
    """The merges in force at ``pos`` (None before the first merge)."""
    return MergesAt(index, pos) if first is not None and first <= pos else None


# one message of a group: position, event time, dedup key, the squeezed message
GroupRow = tuple[str, str, str, bytes]


def _group_rows(conn: sqlite3.Connection) -> Iterator[list[GroupRow]]:
    """Each group's messages (pos, event_time, dedup, raw), sorted by position."""
    cur = conn.execute(
        "SELECT COALESCE(g.grp, m.patient) AS gk, m.pos, m.event_time, m.dedup, m.raw "
        "FROM msg m LEFT JOIN grp g ON g.patient = m.patient ORDER BY gk, m.pos, m.n")
    group: list[GroupRow] = []
    current = None
    for gk, pos, et, dedup, raw in cur:
        if gk != current and group:
            yield group
            group = []
        current = gk
        group.append((pos, et, dedup, raw))
    if group:
        yield group


async def verify(
    db: Path, dirs: Sequence[Path], live: Sequence[Path] = (),
    trusts: Sequence[TrustInfo] | None = None, workers: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> VerifyResult:
    """``workers``: conversion processes (None: one per core, as the engine, for input
    of ``PARALLEL_FROM_BYTES`` or more; 0: none). ``progress(phase, count)``: called as
    each pass goes ("read" and "converted" messages, every chunk of 2,000; "compared"
    resources, every 100,000 and at the end)."""
    tick = progress or (lambda phase, n: None)
    files = discover(list(dirs), list(live))
    if workers is None:
        big = sum(sf.path.stat().st_size for sf in files) >= PARALLEL_FROM_BYTES
        workers = default_workers() if big else 0
    # opened first: a missing file or one with no store in it is reported before the
    # hours of reading, and an older layout is moved over now
    store = await SqliteStore.open_for_reading(db)
    try:
        written = await _data_version(store)
        if trusts is None:  # through the store's own reading connection
            trusts = await _trusts_saved_in(store.conn)
        trust_list = list(trusts) if trusts is not None else None
        converter = Converter(trusts, "off")
        tzs = converter.timezones() if trusts is not None else None
        with tempfile.TemporaryDirectory(prefix="shcr-verify-") as tmp:
            conn = _temp_db(Path(tmp) / "messages.db", SCHEMA, DEDUP_CACHE)
            exp = _temp_db(Path(tmp) / "expected.db", EXPECTED_SCHEMA, APPEND_CACHE)
            try:
                with _pool(workers, _init_reader, tzs) as pool:
                    count = _read(conn, files, pool, tick)
                _set_cache(conn, GROUP_SORT_CACHE)  # pass 2 reads it front to back, sorted
                merges, groups = _merges(conn, converter)
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO grp(patient, grp) VALUES(?, ?)",
                                 [(k, groups.find(k)) for k in groups.parent])
                conn.execute("COMMIT")
                _attach_store(exp, db)
                with _pool(workers, _init_converter, trust_list, merges) as pool:
                    _expect(exp, _chunks(_group_rows(conn)), pool, tick)
                exp.execute("DETACH DATABASE store")
                patients = conn.execute("SELECT COUNT(DISTINCT patient) FROM msg").fetchone()[0]
                conn.close()
                (Path(tmp) / "messages.db").unlink()  # scratch disk back before the last sort
                await _still(store, written)
                _set_cache(exp, COMPARE_SORT_CACHE)
                resources, diffs = await _compare(exp, store, tick)
                await _still(store, written)
            finally:
                conn.close()
                exp.close()
    finally:
        await store.close()
    return VerifyResult(count, patients, resources, diffs)


class StoreChanged(RuntimeError):
    """The store was written to while ``verify`` ran: its comparison would be wrong."""


async def _data_version(store: SqliteStore) -> int:
    async with store.conn.execute("PRAGMA data_version") as cur:  # moves on others' commits
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _still(store: SqliteStore, written: int) -> None:
    if await _data_version(store) != written:
        raise StoreChanged("the record store was written to while verify ran (an engine "
                           "still running?); run verify again when nothing writes to it")


def _attach_store(exp: sqlite3.Connection, db: Path) -> None:
    """The store, read only, on the scratch connection: each expected row looks up its
    store row in the key index as it is written (random lookups: a cache for them)."""
    exp.execute("ATTACH DATABASE ? AS store", (Path(db).resolve().as_uri() + "?mode=ro",))
    exp.execute("PRAGMA store.cache_size=-65536")
    exp.execute("PRAGMA busy_timeout=60000")


# Page cache of a scratch database, in KiB; SQLite's sorter takes as much again while
# it sorts (sized when a sorting statement starts). Each pass gets what its access
# pattern needs, so the caches of the two scratch databases and the store's are not
# all at their largest at once (docs/performance.md, item 31: 760 → 511 MiB for the
# process tree of a 1 M `verify`).
DEDUP_CACHE = 131072  # pass 1: the de-duplication key's unique index, written at random
GROUP_SORT_CACHE = 65536  # pass 2 sorts the messages by group: a scan and a sort
APPEND_CACHE = 16384  # pass 2 appends the expected rows; no index to keep
COMPARE_SORT_CACHE = 131072  # the last pass sorts the expected rows into the store's order


def _set_cache(conn: sqlite3.Connection, kib: int) -> None:
    conn.execute(f"PRAGMA cache_size=-{kib}")


def _temp_db(path: Path, schema: str, cache_kib: int) -> sqlite3.Connection:
    # a URI, so that ATTACH takes one (the store, opened read only)
    conn = sqlite3.connect(path.resolve().as_uri(), uri=True, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    _set_cache(conn, cache_kib)
    conn.executescript(schema)
    return conn


@contextmanager
def _pool(workers: int, init: Callable[..., None], *args: Any) -> Iterator[Any]:
    """Worker processes running ``init(*args)``; or, when ``workers`` < 1, None: the
    work is done here, so ``init`` runs here (and what it set is cleared after)."""
    if workers < 1:
        init(*args)
        try:
            yield None
        finally:
            _clear_worker_state()
        return
    pool = spawn_pool(workers, init, *args)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(pool: Any, fn: Callable[..., T], jobs: Iterator[Any],
              in_flight: int = 4) -> Iterator[T]:
    """``fn(job)`` for each job, in the workers (a few at a time) or here; in job order."""
    if pool is None:
        yield from map(fn, jobs)
        return
    pending: deque[Future[T]] = deque()
    for job in jobs:
        pending.append(pool.submit(fn, job))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# -- pass 1: read ---------------------------------------------------------------------
_zones: dict[tuple[str, str], str] | None = None


def _init_reader(tzs: dict[tuple[str, str], str] | None) -> None:
    global _zones
    _zones = tzs


def _squeeze(raw: str) -> bytes:
    """A message as the temporary table keeps it: zstd, about half the size, so a
    ten-million message verify needs less scratch disk (the table, and its sort)."""
    return _SQUEEZE.compress(raw.encode())


def _unsqueeze(blob: bytes) -> str:
    return _UNSQUEEZE.decompress(blob).decode()


_SQUEEZE = zstandard.ZstdCompressor(level=1, write_checksum=False)
_UNSQUEEZE = zstandard.ZstdDecompressor()


def read_rows(raws: Sequence[str]) -> list[tuple[str, str, str, str, str, bytes]]:
    """The kept messages of ``raws`` as ``msg`` rows; the rest (the engine drops them) left out."""
    rows = []
    for raw in raws:
        try:
            msg, keys = parse_and_extract(raw)
            tz = DEFAULT_TZ
            if _zones is not None:
                found = _zones.get(msg.sender)
                if found is None:
                    continue  # unknown sender: refused by the engine
                tz = found
                if tz != DEFAULT_TZ:
                    msg, keys = parse_and_extract(raw, tz)
        except (HL7Error, KeysError):
            continue
        rows.append((keys.dedup_key, keys.patient_key, position(msg, keys.event_time, tz),
                     keys.message_type, keys.event_time, _squeeze(raw)))
    return rows


def _read(conn: sqlite3.Connection, files: Sequence[SourceFile], pool: Any,
          tick: Callable[[str, int], None]) -> int:
    """Pass 1: every readable message from a configured sender, first copy wins (the
    rows are inserted in file order, whoever parsed them)."""
    count = 0

    def batches() -> Iterator[list[str]]:
        nonlocal count
        batch: list[str] = []
        for sf in files:
            for raw in iter_raw(sf.path):
                count += 1
                batch.append(raw)
                if len(batch) >= CHUNK_MESSAGES:
                    yield batch
                    batch = []
        if batch:
            yield batch

    for rows in _in_order(pool, read_rows, batches()):
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO msg(dedup, patient, pos, mtype, event_time, "
                         "raw) VALUES(?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        tick("read", count)
    return count


def _merges(conn: sqlite3.Connection, converter: Converter
            ) -> tuple[list[tuple[str, str, str]], _Groups]:
    """Every merge (position, old Patient id, survivor) and the patient groups it joins."""
    marks = ",".join("?" * len(MERGE_TYPES))
    merges: list[tuple[str, str, str]] = []
    groups = _Groups()
    for patient, pos, et, dedup, squeezed in conn.execute(
        f"SELECT patient, pos, event_time, dedup, raw FROM msg WHERE mtype IN ({marks})",
        sorted(MERGE_TYPES),
    ):
        raw = _unsqueeze(squeezed)
        out = converter.convert(raw, dedup, pos, et, None)
        if not isinstance(out, Converted) or not out.merge:
            continue
        merges.append((pos, *out.merge))
        try:
            msg, _ = parse_and_extract(raw)
        except (HL7Error, KeysError):
            continue
        for other in merged_away_keys(msg):
            groups.join(patient, other)
    merges.sort()
    return merges, groups


# -- pass 2: expect -------------------------------------------------------------------
# a conversion worker's state: (converter, merge index, first merge position)
_worker: tuple[Converter, MergeIndex, str | None] | None = None


def _first(merges: Sequence[tuple[str, str, str]]) -> str | None:
    return min(merges)[0] if merges else None


def _init_converter(trusts: list[TrustInfo] | None, merges: list[tuple[str, str, str]]) -> None:
    global _worker
    _worker = (Converter(trusts, "off"), merge_index(merges), _first(merges))


def _clear_worker_state() -> None:
    """What ``_init_reader`` and ``_init_converter`` set, when they ran in this process."""
    global _zones, _worker
    _zones = _worker = None


def expect_groups(groups: Sequence[Sequence[GroupRow]]) -> list[tuple[str, str, bytes]]:
    """Each group's expected resources (rkey, position, packed JSON), last write wins."""
    assert _worker is not None, "worker not initialised"
    converter, index, first = _worker
    out: list[tuple[str, str, bytes]] = []
    for rows in groups:
        state: dict[str, tuple[str, dict]] = {}
        for pos, et, dedup, raw in rows:
            conv = converter.convert(_unsqueeze(raw), dedup, pos, et,
                                     merged_at(index, first, pos))
            if isinstance(conv, str):
                continue  # the engine dead-letters it
            for w in conv.writes:
                rkey = f"{w.resource['resourceType']}/{w.resource['id']}"
                state[rkey] = (pos, w.resource)  # plain: last write wins
        out += [(rkey, pos, pack(orjson.dumps(strip_meta(res), option=orjson.OPT_SORT_KEYS)))
                for rkey, (pos, res) in state.items()]
    return out


def _chunks(groups: Iterator[list[GroupRow]]) -> Iterator[list[list[GroupRow]]]:
    """Whole groups, about ``CHUNK_MESSAGES`` messages at a time."""
    chunk: list[list[GroupRow]] = []
    size = 0
    for rows in groups:
        chunk.append(rows)
        size += len(rows)
        if size >= CHUNK_MESSAGES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _expect(exp: sqlite3.Connection, chunks: Iterator[list[list[GroupRow]]], pool: Any,
            tick: Callable[[str, int], None]) -> None:
    """Pass 2: each group's messages in order, last write wins; written to disk.

    Groups are independent, so the workers convert them side by side, a few chunks
    in flight (memory stays bounded). Every group's resources are appended; a
    resource written by several groups keeps the latest position when compared.
    """
    done = 0

    def counted() -> Iterator[list[list[GroupRow]]]:
        nonlocal done
        for chunk in chunks:  # counted as handed out: at most a few chunks ahead
            done += sum(map(len, chunk))
            yield chunk

    for rows in _in_order(pool, expect_groups, counted()):
        exp.execute("BEGIN")
        exp.executemany(INSERT_EXPECTED, rows)
        exp.execute("COMMIT")
        tick("converted", done)


async def _compare(exp: sqlite3.Connection, store: SqliteStore,
                   tick: Callable[[str, int], None]) -> tuple[int, list[Difference]]:
    """The store's current rows against the expected ones, both in the store's row
    order: the number of expected resources, and the differences (in key order).

    Packed JSON compares as bytes when both sides were packed alike (the usual
    case); anything else is unpacked and compared as sorted JSON without meta.
    """
    diffs: list[Difference] = []
    wanted = _latest(exp.execute(WANTED))  # on a tie in position, the first written wins
    mine = store.unpacker
    count = ticked = 0

    def stored(blob: bytes | str) -> dict:
        return strip_meta(orjson.loads(mine.json(blob)))

    nxt = next(wanted, None)
    while nxt is not None and nxt[0] is None:  # not in the store when looked up
        diffs.append(_missing(mine, nxt))
        count, nxt = count + 1, next(wanted, None)
    async with aclosing(store.iter_stored()) as rows:
        async for row, rkey, blob in rows:
            if count >= ticked + 100_000:
                ticked = count
                tick("compared", count)
            while nxt is not None and nxt[0] < row:  # gone since (``_still`` says so)
                diffs.append(_missing(mine, nxt))
                count, nxt = count + 1, next(wanted, None)
            if nxt is None or nxt[0] != row or nxt[1] != rkey:
                diffs.append(Difference(rkey, "unexpected", actual=stored(blob)))
                continue
            want_blob = nxt[2]
            count, nxt = count + 1, next(wanted, None)
            if blob == want_blob:
                continue
            got = stored(blob)
            want_json = mine.json(want_blob)
            if orjson.dumps(got, option=orjson.OPT_SORT_KEYS) != want_json:
                want = orjson.loads(want_json)
                diffs.append(Difference(rkey, "differs", diff_paths(want, got), want, got))
    while nxt is not None:
        diffs.append(_missing(mine, nxt))
        count, nxt = count + 1, next(wanted, None)
    tick("compared", count)
    diffs.sort(key=lambda d: d.rkey)
    return count, diffs


def _latest(rows: Iterator[tuple[int | None, str, str, bytes]]
            ) -> Iterator[tuple[int | None, str, bytes]]:
    """(store row, rkey, packed JSON) per resource, from rows sorted by (store row,
    rkey, position): the version from the latest event (shared reference data written
    by several groups)."""
    last: tuple[int | None, str, str, bytes] | None = None
    for row in rows:
        if last is not None and (row[0], row[1]) != (last[0], last[1]):
            yield last[0], last[1], last[3]
        last = row
    if last is not None:
        yield last[0], last[1], last[3]


def _missing(mine: Unpacker, row: tuple[int | None, str, bytes]) -> Difference:
    return Difference(row[1], "missing", expected=orjson.loads(mine.json(row[2])))

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
   expected resources are then written to disk and dropped from memory. Shared
   reference data (an Organization written by many patients' messages) keeps the
   version from the latest event over all groups.
4. The store's current versions are compared with the expected ones, ignoring
   ``meta``: "differs", "missing" (expected, not in the store) and "unexpected".

It does not use the store's ordering keys or its guard, so a store that was
tampered with (an older version made current, a resource deleted) shows up.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shcr_sim.hl7 import HL7Error, Message, TimestampError, parse_ts
from shcr_sim.store import SqliteStore, strip_meta

from .convert import Converted, Converter, TrustInfo
from .inbound import discover, iter_raw
from .keys import (
    DEFAULT_TZ,
    MERGE_TYPES,
    PRECEDENCE,
    KeysError,
    merged_away_keys,
    parse_and_extract,
)

OTHER = 900

SCHEMA = """
CREATE TABLE msg (
  n INTEGER PRIMARY KEY, dedup TEXT UNIQUE, patient TEXT NOT NULL, pos TEXT NOT NULL,
  mtype TEXT NOT NULL, event_time TEXT NOT NULL, raw TEXT NOT NULL
);
CREATE TABLE grp (patient TEXT PRIMARY KEY, grp TEXT NOT NULL);
"""
EXPECTED_SCHEMA = """
CREATE TABLE expected (rkey TEXT PRIMARY KEY, pos TEXT NOT NULL, json BLOB NOT NULL,
                       seen INTEGER NOT NULL DEFAULT 0);
"""


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
    import aiosqlite

    async with aiosqlite.connect(str(db)) as conn:
        try:
            async with conn.execute("SELECT value FROM engine_meta WHERE key='trusts'") as cur:
                row = await cur.fetchone()
        except aiosqlite.OperationalError:
            return None
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


def _merged_at(merges: list[tuple[str, str, str]], pos: str) -> dict[str, str] | None:
    """Old Patient id → survivor for the merges that happened at or before ``pos``."""
    direct = {old: surv for at, old, surv in merges if at <= pos and old != surv}
    out = {}
    for old, target in direct.items():
        hops = 0
        while target in direct and hops < 50:
            target, hops = direct[target], hops + 1
        if target != old:
            out[old] = target
    return out or None


def _group_rows(conn: sqlite3.Connection) -> Iterator[list[tuple[str, str, str, str]]]:
    """Each group's messages (pos, event_time, dedup, raw), sorted by position."""
    cur = conn.execute(
        "SELECT COALESCE(g.grp, m.patient) AS gk, m.pos, m.event_time, m.dedup, m.raw "
        "FROM msg m LEFT JOIN grp g ON g.patient = m.patient ORDER BY gk, m.pos, m.n")
    group: list[tuple[str, str, str, str]] = []
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
    trusts: Sequence[TrustInfo] | None = None,
) -> VerifyResult:
    if trusts is None:
        trusts = await saved_trusts(db)
    converter = Converter(trusts, "off")
    tzs = converter.timezones() if trusts is not None else None
    with tempfile.TemporaryDirectory(prefix="shcr-verify-") as tmp:
        conn = _temp_db(Path(tmp) / "messages.db", SCHEMA)
        exp = _temp_db(Path(tmp) / "expected.db", EXPECTED_SCHEMA)
        try:
            count = _read(conn, dirs, live, tzs)
            merges, groups = _merges(conn, converter)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO grp(patient, grp) VALUES(?, ?)",
                             [(k, groups.find(k)) for k in groups.parent])
            conn.execute("COMMIT")
            _expect(conn, exp, converter, merges)
            patients = conn.execute("SELECT COUNT(DISTINCT patient) FROM msg").fetchone()[0]
            resources = exp.execute("SELECT COUNT(*) FROM expected").fetchone()[0]
            diffs = await _compare(exp, db)
        finally:
            conn.close()
            exp.close()
    return VerifyResult(count, patients, resources, diffs)


def _temp_db(path: Path, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(schema)
    return conn


def _read(conn: sqlite3.Connection, dirs: Sequence[Path], live: Sequence[Path],
          tzs: dict[tuple[str, str], str] | None) -> int:
    """Pass 1: every readable message from a configured sender, first copy wins."""
    count = 0
    batch: list[tuple] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO msg(dedup, patient, pos, mtype, event_time, "
                         "raw) VALUES(?,?,?,?,?,?)", batch)
        conn.execute("COMMIT")
        batch.clear()

    for sf in discover(list(dirs), list(live)):
        for raw in iter_raw(sf.path):
            count += 1
            try:
                msg, keys = parse_and_extract(raw)
                tz = DEFAULT_TZ
                if tzs is not None:
                    found = tzs.get(msg.sender)
                    if found is None:
                        continue  # unknown sender: refused by the engine
                    tz = found
                    if tz != DEFAULT_TZ:
                        msg, keys = parse_and_extract(raw, tz)
            except (HL7Error, KeysError):
                continue
            batch.append((keys.dedup_key, keys.patient_key, position(msg, keys.event_time, tz),
                          keys.message_type, keys.event_time, raw))
            if len(batch) >= 2000:
                flush()
    if batch:
        flush()
    return count


def _merges(conn: sqlite3.Connection, converter: Converter
            ) -> tuple[list[tuple[str, str, str]], _Groups]:
    """Every merge (position, old Patient id, survivor) and the patient groups it joins."""
    marks = ",".join("?" * len(MERGE_TYPES))
    merges: list[tuple[str, str, str]] = []
    groups = _Groups()
    for patient, pos, et, dedup, raw in conn.execute(
        f"SELECT patient, pos, event_time, dedup, raw FROM msg WHERE mtype IN ({marks})",
        sorted(MERGE_TYPES),
    ):
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


def _expect(conn: sqlite3.Connection, exp: sqlite3.Connection, converter: Converter,
            merges: list[tuple[str, str, str]]) -> None:
    """Pass 2: each group's messages in order, last write wins; written to disk."""
    pending: list[tuple[str, str, bytes]] = []
    for rows in _group_rows(conn):
        state: dict[str, tuple[str, dict]] = {}
        for pos, et, dedup, raw in rows:
            out = converter.convert(raw, dedup, pos, et, _merged_at(merges, pos))
            if isinstance(out, str):
                continue  # the engine dead-letters it
            for w in out.writes:
                rkey = f"{w.resource['resourceType']}/{w.resource['id']}"
                state[rkey] = (pos, strip_meta(w.resource))  # plain: last write wins
        for rkey, (pos, res) in state.items():
            pending.append((rkey, pos, orjson.dumps(res, option=orjson.OPT_SORT_KEYS)))
        if len(pending) >= 5000:
            _flush_expected(exp, pending)
    _flush_expected(exp, pending)


def _flush_expected(write: sqlite3.Connection, pending: list[tuple[str, str, bytes]]) -> None:
    """Store a group's resources; one written by several groups (shared reference data)
    keeps the version from the latest event."""
    write.execute("BEGIN")
    write.executemany(
        "INSERT INTO expected(rkey, pos, json) VALUES(?,?,?) ON CONFLICT(rkey) DO UPDATE "
        "SET pos=excluded.pos, json=excluded.json WHERE excluded.pos > expected.pos", pending)
    write.execute("COMMIT")
    pending.clear()


async def _compare(conn: sqlite3.Connection, db: Path) -> list[Difference]:
    diffs: list[Difference] = []
    store = await SqliteStore.open(db)
    seen: list[tuple[str]] = []
    try:
        async for res in store.iter_current():
            rkey = f"{res['resourceType']}/{res['id']}"
            got = strip_meta(res)
            row = conn.execute("SELECT json FROM expected WHERE rkey=?", (rkey,)).fetchone()
            if row is None:
                diffs.append(Difference(rkey, "unexpected", actual=got))
                continue
            seen.append((rkey,))
            if orjson.dumps(got, option=orjson.OPT_SORT_KEYS) != row[0]:
                want = orjson.loads(row[0])
                diffs.append(Difference(rkey, "differs", diff_paths(want, got), want, got))
            if len(seen) >= 5000:
                conn.executemany("UPDATE expected SET seen=1 WHERE rkey=?", seen)
                seen.clear()
        conn.executemany("UPDATE expected SET seen=1 WHERE rkey=?", seen)
    finally:
        await store.close()
    for rkey, blob in conn.execute("SELECT rkey, json FROM expected WHERE seen=0 ORDER BY rkey"):
        diffs.append(Difference(rkey, "missing", expected=orjson.loads(blob)))
    return diffs

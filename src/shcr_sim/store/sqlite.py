"""aiosqlite record store: current versions, full history, patient/identifier indexes.

One batch = one transaction: current rows for the batch are read with chunked
``IN`` queries, decisions are made in Python, and everything is written back with
``executemany``. It can share the engine's database file (separate tables).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from .base import ApplyResult, Resource, StoreUnavailable, Version, Write, content_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS resource (
  rkey TEXT PRIMARY KEY,            -- "Type/id"
  rtype TEXT NOT NULL,
  rid TEXT NOT NULL,
  version INTEGER NOT NULL,         -- the current version's number
  max_version INTEGER NOT NULL,     -- highest version number written (history included)
  last_updated TEXT NOT NULL,
  event_time TEXT NOT NULL,
  order_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  hash TEXT NOT NULL,
  json BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_type ON resource(rtype);
CREATE INDEX IF NOT EXISTS resource_patient ON resource(patient_key);
CREATE TABLE IF NOT EXISTS resource_history (
  rkey TEXT NOT NULL,
  version INTEGER NOT NULL,
  made_current INTEGER NOT NULL,
  last_updated TEXT NOT NULL,
  event_time TEXT NOT NULL,
  order_key TEXT NOT NULL,
  message_id TEXT NOT NULL,
  hash TEXT NOT NULL,
  json BLOB NOT NULL,
  PRIMARY KEY (rkey, version)
);
CREATE INDEX IF NOT EXISTS history_message ON resource_history(message_id);
CREATE TABLE IF NOT EXISTS patient_index (
  patient_key TEXT NOT NULL, rkey TEXT NOT NULL, PRIMARY KEY (patient_key, rkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identifier_index (
  ident TEXT NOT NULL, rkey TEXT NOT NULL, PRIMARY KEY (ident, rkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_control (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
UNAVAILABLE_SQL = "SELECT value FROM store_control WHERE key='unavailable_until'"


def _remaining(row: Any) -> float:
    """Seconds an ``unavailable_until`` row still has to run (0.0: available)."""
    return max(float(row[0]) - time.time(), 0.0) if row else 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identifiers(resource: Resource) -> list[str]:
    out = []
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            out.append(f"{ident.get('system', '')}|{ident['value']}")
    return out


class SqliteStore:
    """The aiosqlite back end of ``RecordStore``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, db_path: str | Path, synchronous: str = "NORMAL") -> SqliteStore:
        path = Path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous}")
        await conn.execute("PRAGMA busy_timeout=60000")
        await conn.executescript(SCHEMA)
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    async def set_unavailable(self, until: float) -> None:
        """Refuse writes until ``until`` (epoch seconds; 0: available again).

        The store-outage fault. The switch lives in the database, so every engine
        writing to this store (the live release, a backload replay in another
        process) is refused alike: ``apply`` raises ``StoreUnavailable``.
        """
        await self.conn.execute(
            "INSERT INTO store_control(key, value) VALUES('unavailable_until', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (until,),
        )

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
        result = ApplyResult()
        if not writes:
            return result
        now = _now()
        prepared = []
        for w in writes:
            r = w.resource
            rkey = f"{r['resourceType']}/{r['id']}"
            prepared.append((rkey, content_hash(r), w))
        rkeys = sorted({p[0] for p in prepared})
        msg_ids = sorted({p[2].message_id for p in prepared})
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            async with self.conn.execute(UNAVAILABLE_SQL) as cur:
                if (left := _remaining(await cur.fetchone())) > 0:
                    raise StoreUnavailable(f"record store unavailable for another {left:.1f} s")
            state: dict[str, dict[str, Any]] = {
                row[0]: {"version": row[1], "max_version": row[2], "order_key": row[3],
                         "hash": row[4], "event_time": row[5], "message_id": row[6]}
                for row in await self._fetch_in(
                    "SELECT rkey, version, max_version, order_key, hash, event_time, message_id "
                    "FROM resource WHERE rkey IN ({marks})",
                    rkeys,
                )
            }
            seen = {
                (row[0], row[1], row[2])
                for row in await self._fetch_in(
                    "SELECT rkey, message_id, hash FROM resource_history "
                    "WHERE message_id IN ({marks})",
                    msg_ids,
                )
            }
            history: list[tuple] = []
            current: dict[str, tuple] = {}
            touched: set[str] = set()  # existing rows whose bookkeeping changed
            pindex: set[tuple[str, str]] = set()
            iindex: set[tuple[str, str]] = set()
            for rkey, h, w in prepared:
                if (rkey, w.message_id, h) in seen:
                    result.unchanged += 1
                    continue
                cur = state.get(rkey)
                if cur is not None and h == cur["hash"]:
                    result.unchanged += 1
                    if w.order_key > cur["order_key"]:  # same content, newer event
                        cur.update(order_key=w.order_key, event_time=w.event_time,
                                   message_id=w.message_id)
                        touched.add(rkey)
                    continue
                seen.add((rkey, w.message_id, h))
                version = (cur["max_version"] if cur else 0) + 1
                make_current = cur is None or w.order_key >= cur["order_key"]
                res = dict(w.resource)
                meta = dict(res.get("meta") or {})
                meta["versionId"] = str(version)
                meta["lastUpdated"] = now
                res["meta"] = meta
                blob = orjson.dumps(res)
                history.append((rkey, version, int(make_current), now, w.event_time,
                                w.order_key, w.message_id, h, blob))
                if cur is None:
                    result.created += 1
                    cur = state[rkey] = {"version": version, "order_key": w.order_key,
                                         "hash": h}
                elif make_current:
                    result.updated += 1
                else:
                    result.history_only += 1
                cur["max_version"] = version
                touched.add(rkey)
                if make_current:
                    cur.update(version=version, order_key=w.order_key, hash=h,
                               event_time=w.event_time, message_id=w.message_id)
                    current[rkey] = (rkey, res["resourceType"], res["id"], version, version,
                                     now, w.event_time, w.order_key, w.message_id,
                                     w.patient_key, h, blob)
                    for ident in _identifiers(res):
                        iindex.add((ident, rkey))
                if w.patient_key:
                    pindex.add((w.patient_key, rkey))
            if history:
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO resource_history(rkey, version, made_current, "
                    "last_updated, event_time, order_key, message_id, hash, json) "
                    "VALUES(?,?,?,?,?,?,?,?,?)",
                    history,
                )
            if current:
                await self.conn.executemany(
                    "INSERT INTO resource(rkey, rtype, rid, version, max_version, last_updated, "
                    "event_time, order_key, message_id, patient_key, hash, json) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(rkey) DO UPDATE SET "
                    "version=excluded.version, last_updated=excluded.last_updated, "
                    "event_time=excluded.event_time, order_key=excluded.order_key, "
                    "message_id=excluded.message_id, "
                    "patient_key=CASE WHEN excluded.patient_key != '' "
                    "THEN excluded.patient_key ELSE resource.patient_key END, "
                    "hash=excluded.hash, json=excluded.json",
                    list(current.values()),
                )
            if touched:
                await self.conn.executemany(
                    "UPDATE resource SET max_version=?, order_key=?, event_time=?, message_id=? "
                    "WHERE rkey=?",
                    [(state[k]["max_version"], state[k]["order_key"], state[k]["event_time"],
                      state[k]["message_id"], k) for k in sorted(touched)],
                )
            if pindex:
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO patient_index(patient_key, rkey) VALUES(?,?)",
                    sorted(pindex),
                )
            if iindex:
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO identifier_index(ident, rkey) VALUES(?,?)",
                    sorted(iindex),
                )
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")
        return result

    # -- reads -------------------------------------------------------------
    async def current(self, rtype: str, rid: str) -> Resource | None:
        async with self.conn.execute(
            "SELECT json FROM resource WHERE rkey=?", (f"{rtype}/{rid}",)
        ) as cur:
            row = await cur.fetchone()
        return orjson.loads(row[0]) if row else None

    async def current_many(self, rkeys: Sequence[str]) -> dict[str, Resource]:
        rows = await self._fetch_in(
            "SELECT rkey, json FROM resource WHERE rkey IN ({marks})", list(rkeys)
        )
        return {k: orjson.loads(j) for k, j in rows}

    async def history(self, rtype: str, rid: str) -> list[Version]:
        async with self.conn.execute(
            "SELECT version, made_current, last_updated, event_time, order_key, message_id, "
            "json FROM resource_history WHERE rkey=? ORDER BY version",
            (f"{rtype}/{rid}",),
        ) as cur:
            rows = await cur.fetchall()
        return [Version(v, bool(c), lu, et, ok, mid, orjson.loads(j))
                for v, c, lu, et, ok, mid, j in rows]

    async def by_patient(self, patient_key: str) -> list[Resource]:
        async with self.conn.execute(
            "SELECT r.json FROM patient_index p JOIN resource r ON r.rkey = p.rkey "
            "WHERE p.patient_key=? ORDER BY r.order_key, r.rkey",
            (patient_key,),
        ) as cur:
            return [orjson.loads(j) for (j,) in await cur.fetchall()]

    async def by_identifier(self, system: str, value: str) -> list[Resource]:
        async with self.conn.execute(
            "SELECT r.json FROM identifier_index i JOIN resource r ON r.rkey = i.rkey "
            "WHERE i.ident=? ORDER BY r.rkey",
            (f"{system}|{value}",),
        ) as cur:
            return [orjson.loads(j) for (j,) in await cur.fetchall()]

    async def iter_current(self) -> AsyncIterator[Resource]:  # type: ignore[override]
        async with self.conn.execute("SELECT json FROM resource ORDER BY rkey") as cur:
            async for (j,) in cur:
                yield orjson.loads(j)

    async def count(self) -> int:
        async with self.conn.execute("SELECT COUNT(*) FROM resource") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def counts_by_type(self) -> dict[str, int]:
        async with self.conn.execute(
            "SELECT rtype, COUNT(*) FROM resource GROUP BY rtype ORDER BY rtype"
        ) as cur:
            return {t: int(n) for t, n in await cur.fetchall()}

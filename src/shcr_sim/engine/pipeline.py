"""The engine's release path: queue → sequencer → convert → store, in batches.

``Engine.release(lane, n)`` claims up to n queued messages of one lane (per
patient, in event order), converts them with the sending trust's mapping (merges
applied from their event time on), writes the resources to the store in one
transaction and records each message's terminal state. A failing message is
dead-lettered with its reason; the rest of the batch carries on.

Crash safety: a batch is marked ``released`` before conversion; if the process
dies before ``finish``, ``recover`` puts it back to ``queued`` and the store's
idempotent writes make the second application a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from shcr_sim.store import ApplyResult, SqliteStore, Write

from .convert import Converted, Converter, MergeMap, TrustInfo
from .keys import MERGE_TYPES
from .queue import DurableQueue, Lane, QueueRow
from .throttle import TokenBucket

MERGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS merges (
  seq INTEGER PRIMARY KEY, order_key TEXT NOT NULL, old_id TEXT, survivor_id TEXT
);
"""


@dataclass(slots=True)
class ReleaseStats:
    released: int = 0
    applied: int = 0
    dead: int = 0
    store: ApplyResult = field(default_factory=ApplyResult)


def trusts_from_scenario(scenario: object) -> list[TrustInfo]:
    """TrustInfo for each trust of a ``feeds.scenario.Scenario``."""
    return [
        TrustInfo(t.sending_application, t.ods, t.flavour, t.name)  # type: ignore[attr-defined]
        for t in scenario.trusts  # type: ignore[attr-defined]
    ]


class Engine:
    """Queue + store + converter sharing one SQLite file."""

    def __init__(
        self, queue: DurableQueue, store: SqliteStore, converter: Converter, rate: float | None
    ) -> None:
        self.queue = queue
        self.store = store
        self.converter = converter
        self.bucket = TokenBucket(rate)
        self.merges = MergeMap()
        self.stats = ReleaseStats()
        self._merge_scan_seq = 0

    @classmethod
    async def open(
        cls,
        db_path: str | Path,
        trusts: Sequence[TrustInfo] | None = None,
        *,
        validate: str = "off",
        rate: float | None = None,
    ) -> Engine:
        """Open the engine's database. ``trusts`` are remembered in the database, so
        later commands (``deadletter retry``, an MLLP listener) use the same ones."""
        queue = await DurableQueue.open(db_path)
        await queue.conn.executescript(MERGES_SCHEMA)
        if trusts is not None:
            await queue.set_meta(
                "trusts", orjson.dumps([[t.app, t.ods, t.flavour, t.name] for t in trusts]).decode()
            )
        else:
            saved = await queue.get_meta("trusts")
            if saved is not None:
                trusts = [TrustInfo(*t) for t in orjson.loads(saved)]
        converter = Converter(trusts, validate)
        if trusts is not None:
            await queue.set_senders(converter.timezones())
        store = await SqliteStore.open(db_path)
        engine = cls(queue, store, converter, rate)
        async with queue.conn.execute(
            "SELECT order_key, old_id, survivor_id FROM merges WHERE old_id IS NOT NULL"
        ) as cur:
            engine.merges = MergeMap([tuple(r) for r in await cur.fetchall()])  # type: ignore[misc]
        async with queue.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM merges") as cur:
            row = await cur.fetchone()
        engine._merge_scan_seq = int(row[0]) if row else 0
        return engine

    async def close(self) -> None:
        await self.store.close()
        await self.queue.close()

    async def refresh_merges(self) -> None:
        """Learn the merges (A40/A34) accepted since the last look, before releasing."""
        marks = ",".join("?" * len(MERGE_TYPES))
        async with self.queue.conn.execute(
            "SELECT seq, raw, sender_app, sender_fac, control_id, order_key, event_time "
            f"FROM queue WHERE seq > ? AND message_type IN ({marks}) "
            "AND state IN ('queued', 'released', 'applied') ORDER BY seq",
            (self._merge_scan_seq, *sorted(MERGE_TYPES)),
        ) as cur:
            rows = await cur.fetchall()
        async with self.queue.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM queue") as cur:
            top = await cur.fetchone()
        found = []
        for seq, raw, app, fac, cid, order_key, event_time in rows:
            out = self.converter.convert(raw, f"{app}|{fac}|{cid}", order_key, event_time, None)
            merge = out.merge if isinstance(out, Converted) else None
            if merge:
                self.merges.add(order_key, merge[0], merge[1])
            found.append((seq, order_key, *(merge or (None, None))))
        if found:
            await self.queue.conn.executemany(
                "INSERT OR IGNORE INTO merges(seq, order_key, old_id, survivor_id) "
                "VALUES(?,?,?,?)",
                found,
            )
        self._merge_scan_seq = max(self._merge_scan_seq, int(top[0]) if top else 0)

    def convert_rows(
        self, rows: Iterable[QueueRow]
    ) -> tuple[list[Write], list[int], list[tuple[int, str]]]:
        writes: list[Write] = []
        ok: list[int] = []
        dead: list[tuple[int, str]] = []
        for r in rows:
            out = self.converter.convert(
                r.raw, f"{r.sender_app}|{r.sender_fac}|{r.control_id}", r.order_key,
                r.event_time, self.merges.at(r.order_key), r.seq,
            )
            if isinstance(out, str):
                dead.append((r.seq, out))
            else:
                writes.extend(out.writes)
                ok.append(r.seq)
        return writes, ok, dead

    async def apply_rows(self, rows: Sequence[QueueRow]) -> int:
        """Convert, throttle, store and finish already-released rows."""
        writes, ok, dead = self.convert_rows(rows)
        await self.bucket.take(len(rows))
        result = await self.store.apply(writes)
        await self.queue.finish(ok, dead)
        self.stats.released += len(rows)
        self.stats.applied += len(ok)
        self.stats.dead += len(dead)
        self.stats.store += result
        return len(rows)

    async def release(self, lane: Lane, limit: int) -> int:
        """Release up to ``limit`` messages of a lane; returns how many were released."""
        await self.refresh_merges()
        rows = await self.queue.claim(lane, limit)
        if not rows:
            return 0
        return await self.apply_rows(rows)

    async def drain(self, lane: Lane, batch: int = 1000) -> int:
        total = 0
        while n := await self.release(lane, batch):
            total += n
        return total

"""The engine's release path: queue → sequencer → convert → store, in batches.

``Engine.release(lane, n)`` claims up to n queued messages of one lane (per
patient, in event order), converts them with the sending trust's mapping (merges
applied from their event time on), writes the resources to the store in one
transaction and records each message's terminal state. A failing message is
dead-lettered with its reason; the rest of the batch carries on.

Crash safety: a batch is marked ``released`` before conversion; its resources and
its messages' terminal states commit in one transaction (the store shares the
queue's connection). If the process dies before that, ``recover`` puts the batch
back to ``queued``; the store's idempotent writes make any re-application a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shcr_sim.hl7 import HL7Error, parse
from shcr_sim.store import ApplyResult, Prepared, SqliteStore, Write, prepare_write
from shcr_sim.store.base import StoreUnavailable

from .convert import Converted, Converter, MergeMap, TrustInfo
from .db import transaction
from .keys import MERGE_TYPES, merged_away_keys
from .queue import CLAIM_COLUMNS, LANES, DurableQueue, Lane, QueueRow, StateKey, finisher
from .stages import StageClock
from .throttle import TokenBucket
from .workers import ConvertPool, Job, Outcome, convert_here

# outcomes in claim order, convert seconds, validate seconds, bundles validated
Converting = tuple[list[Outcome], float, float, int]

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
    reapplied: int = 0  # re-applied because a merge was learned after them
    store_refused: int = 0  # store writes refused (store unavailable), each retried
    store: ApplyResult = field(default_factory=ApplyResult)


def _mrg_keys(raw: str) -> list[str]:
    """Queue patient keys of the merged-away record named in MRG (``keys.merged_away_keys``)."""
    try:
        return merged_away_keys(parse(raw))
    except HL7Error:
        return []


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
        self.clock = StageClock()
        self.store_retry = (0.05, 2.0)  # back-off (first, longest) while the store is down
        self.trusts: list[TrustInfo] | None = None
        self.workers = 0  # conversion worker processes (0: convert in this process)
        self.pool_min = 200  # smaller batches convert here: a worker hop costs more
        self.pool: ConvertPool | None = None
        self._pending: dict[Lane, tuple[list[QueueRow], asyncio.Future[Converting]]] = {}

    @classmethod
    async def open(
        cls,
        db_path: str | Path,
        trusts: Sequence[TrustInfo] | None = None,
        *,
        validate: str = "off",
        rate: float | None = None,
        workers: int = 0,
    ) -> Engine:
        """Open the engine's database. ``trusts`` are remembered in the database, so
        later commands (``deadletter retry``, an MLLP listener) use the same ones.
        ``workers`` > 0 converts big batches in that many worker processes."""
        queue = await DurableQueue.open(db_path)
        await queue.conn.executescript(MERGES_SCHEMA)
        if trusts is not None:
            await queue.set_meta(
                "trusts",
                orjson.dumps([[t.app, t.ods, t.flavour, t.name, t.timezone]
                              for t in trusts]).decode(),
            )
        else:
            saved = await queue.get_meta("trusts")
            if saved is not None:
                trusts = [TrustInfo(*t) for t in orjson.loads(saved)]
        converter = Converter(trusts, validate)
        if trusts is not None:
            await queue.set_senders(converter.timezones())
        store = await SqliteStore.on(queue.conn)
        engine = cls(queue, store, converter, rate)
        engine.trusts = list(trusts) if trusts is not None else None
        engine.workers = workers
        async with queue.conn.execute(
            "SELECT order_key, old_id, survivor_id FROM merges WHERE old_id IS NOT NULL"
        ) as cur:
            engine.merges = MergeMap([tuple(r) for r in await cur.fetchall()])  # type: ignore[misc]
        async with queue.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM merges") as cur:
            row = await cur.fetchone()
        engine._merge_scan_seq = int(row[0]) if row else 0
        return engine

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self.pool is not None:
                self.pool.close()
                self.pool = None
            await self.store.close()
            await self.queue.close()

    async def refresh_merges(self) -> None:
        """Learn the merges (A40/A34) accepted since the last look, before releasing.

        A merge learned late (its message arrived after messages about the merged-away
        record that happened after it) re-applies those messages, now redirected to
        the survivor; the store's guard and idempotency keep everything else as it was.
        """
        async with self.queue.conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM queue_msg") as cur:
            top_row = await cur.fetchone()
        top = int(top_row[0]) if top_row else 0
        if top <= self._merge_scan_seq:
            return
        marks = ",".join("?" * len(MERGE_TYPES))
        async with self.queue.conn.execute(
            "SELECT seq, raw, sender_app, sender_fac, control_id, order_key, event_time, "
            f"patient_key FROM queue WHERE seq > ? AND seq <= ? AND message_type IN ({marks}) "
            # the seq range, not every row in those states (``+``: no index on state)
            "AND +state IN ('queued', 'released', 'applied') ORDER BY seq",
            (self._merge_scan_seq, top, *sorted(MERGE_TYPES)),
        ) as cur:
            rows = await cur.fetchall()
        found = []
        learned: list[tuple[int, str, list[str]]] = []
        for seq, raw, app, fac, cid, order_key, event_time, pkey in rows:
            out = self.converter.convert(raw, f"{app}|{fac}|{cid}", order_key, event_time, None)
            merge = out.merge if isinstance(out, Converted) else None
            if merge:
                self.merges.add(order_key, merge[0], merge[1])
                learned.append((seq, order_key, [pkey, *_mrg_keys(raw)]))
            found.append((seq, order_key, *(merge or (None, None))))
        if found:
            async with transaction(self.queue.conn) as conn:
                await conn.executemany(
                    "INSERT OR IGNORE INTO merges(seq, order_key, old_id, survivor_id) "
                    "VALUES(?,?,?,?)",
                    found,
                )
        self._merge_scan_seq = top
        if learned:  # batches converted without these merges are stored first, then redone
            await self.flush()
        for seq, order_key, keys in learned:
            await self._reapply_after(seq, order_key, keys)

    async def _reapply_after(self, merge_seq: int, order_key: str, keys: list[str]) -> None:
        marks = ",".join("?" * len(keys))
        lanes = ",".join("?" * len(LANES))
        async with self.queue.conn.execute(  # a range of queue_state's key per lane
            f"SELECT {CLAIM_COLUMNS} FROM queue_state s JOIN queue_msg m ON m.seq = s.seq "
            f"WHERE s.lane IN ({lanes}) AND s.patient_key IN ({marks}) AND s.order_key > ? "
            "AND +s.state='applied' AND s.seq != ? ORDER BY s.patient_key, s.order_key",
            (*LANES, *keys, order_key, merge_seq),
        ) as cur:
            rows = [QueueRow(*r) for r in await cur.fetchall()]
        if rows:  # released first, so a crash here re-queues them (see recover)
            await self.queue.mark_released([r.seq for r in rows])
            writes, ok, dead = self.convert_rows(rows)
            await self.store_apply_prepared([prepare_write(w) for w in writes], ok, dead)
            self.stats.reapplied += len(rows)

    async def store_apply_prepared(
        self, items: Sequence[Prepared], applied: Sequence[int] = (),
        dead: Sequence[tuple[int, str]] = (), keys: Mapping[int, StateKey] | None = None,
    ) -> ApplyResult:
        """Store a batch's writes (prepared by the converter or its workers) with the
        released rows' terminal states in the same transaction.

        An unavailable store is waited out, retrying with back-off: the batch's rows
        stay ``released`` meanwhile (a restart re-queues them), and inbound keeps
        accepting into the queue, so the queue grows and then drains.
        """
        record = finisher(applied, dead, keys)
        return await self._retrying(lambda b: self.store.apply_prepared(b, then=record), items)

    async def _retrying(
        self, apply: Callable[[Any], Awaitable[ApplyResult]], batch: Any
    ) -> ApplyResult:
        delay, longest = self.store_retry
        while True:
            try:
                return await apply(batch)
            except StoreUnavailable:
                self.stats.store_refused += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)

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

    # -- the release path: claim → convert (workers) → store, pipelined ---------
    def _start_convert(self, rows: Sequence[QueueRow]) -> asyncio.Future[Converting]:
        """Start converting claimed rows: in the worker pool when the batch is big
        enough to pay for the hop, else here and now."""
        jobs: list[Job] = [
            (r.seq, r.raw, f"{r.sender_app}|{r.sender_fac}|{r.control_id}", r.order_key,
             r.event_time, r.patient_key) for r in rows
        ]
        if (pool := self.pool_for(len(jobs))) is not None:
            return asyncio.ensure_future(pool.convert(jobs, self.merges))
        fut: asyncio.Future[Converting] = asyncio.get_running_loop().create_future()
        fut.set_result(convert_here(self.converter, jobs, self.merges))
        return fut

    def pool_for(self, n: int) -> ConvertPool | None:
        """The worker pool (started on first use) when a batch of ``n`` is worth it."""
        if self.workers <= 0 or n < self.pool_min:
            return None
        if self.pool is None:
            self.pool = ConvertPool(self.trusts, self.converter.validate, self.workers)
        return self.pool

    async def _finish_batch(self, rows: Sequence[QueueRow],
                            converting: asyncio.Future[Converting]) -> int:
        """Wait for a batch's conversion, then store it and record terminal states."""
        outcomes, conv_s, val_s, validated = await converting
        clock = self.clock
        clock.add("convert", conv_s, len(rows))
        clock.add("validate", val_s, validated)
        prepared: list[Prepared] = []
        ok: list[int] = []
        dead: list[tuple[int, str]] = []
        for r, out in zip(rows, outcomes, strict=True):
            if isinstance(out, str):
                dead.append((r.seq, out))
            else:
                prepared.extend(out[2])
                ok.append(r.seq)
        await self.bucket.take(len(rows))
        with clock.time("store", len(rows)):
            result = await self.store_apply_prepared(
                prepared, ok, dead, {r.seq: r.state_key for r in rows})
        self.stats.released += len(rows)
        self.stats.applied += len(ok)
        self.stats.dead += len(dead)
        self.stats.store += result
        return len(rows)

    async def flush(self, lane: Lane | None = None) -> None:
        """Store the batch (of one lane, or all) still being converted."""
        for key in [lane] if lane is not None else list(self._pending):
            pending = self._pending.pop(key, None)  # type: ignore[arg-type]
            if pending is not None:
                await self._finish_batch(*pending)

    async def apply_rows(self, rows: Sequence[QueueRow]) -> int:
        """Convert, throttle, store and finish already-released rows."""
        return await self._finish_batch(rows, self._start_convert(rows))

    async def release_next(self, lane: Lane, limit: int) -> int:
        """Claim the next batch and start converting it, then store the lane's previous
        batch: conversion of batch k+1 overlaps the store writing batch k. Batches of
        a lane are stored in claim order; ``flush`` stores the last one."""
        with self.clock.time("sequence"):
            await self.refresh_merges()
            rows = await self.queue.claim(lane, limit)
        self.clock.messages["sequence"] += len(rows)
        converting = self._start_convert(rows) if rows else None
        await self.flush(lane)
        if rows and converting is not None:
            self._pending[lane] = (rows, converting)
        return len(rows)

    async def release(self, lane: Lane, limit: int) -> int:
        """Release up to ``limit`` messages of a lane; returns how many were released."""
        n = await self.release_next(lane, limit)
        await self.flush(lane)
        return n

    async def drain(self, lane: Lane, batch: int = 1000) -> int:
        total = 0
        while n := await self.release_next(lane, batch):
            total += n
        return total

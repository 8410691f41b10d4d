"""Read the engine's queue from the side: its own read-only SQLite connection.

WAL readers never block the engine's single writer, so sampling here costs the
hot path nothing. Counts come from the queue's tally (a few rows, kept by the engine in
the transactions that move its messages); live latency comes from primary-key look-ups of
the live messages the listener handed over, so it is exact (queue ``updated_at``
minus arrival) however seldom we sample.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

TERMINAL = ("applied", "duplicate", "dead-lettered")
WAITING = ("received", "queued", "released")  # counted in a lane's depth


@dataclass(frozen=True, slots=True)
class Finished:
    """A live message that reached a terminal state since the last sample."""

    seq: int
    feed: str
    state: str
    seconds: float  # arrival at the listener -> terminal state
    finished_at: float  # wall clock (queue updated_at)


@dataclass(slots=True)
class QueueSample:
    at: float
    took: float  # seconds the sample's queries took
    # (feed, state) -> messages, both lanes
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    # lane -> messages waiting (queued or released)
    depths: dict[str, int] = field(default_factory=dict)
    finished_live: list[Finished] = field(default_factory=list)
    # per feed, the lowest seq of a live message still on its way to the store
    waiting_min: dict[str, int] = field(default_factory=dict)

    def total(self, state: str | None = None, feed: str | None = None) -> int:
        return sum(n for (fd, st), n in self.counts.items()
                   if (state is None or st == state) and (feed is None or fd == feed))

    def depth(self, lane: str | None = None) -> int:
        return sum(self.depths.values()) if lane is None else self.depths.get(lane, 0)


class QueueProbe:
    """Samples a queue database file (the engine's ``--db``)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()  # one sample at a time on this connection
        # seq -> (feed, arrival wall-clock) of live messages not finished yet
        self.watch: dict[int, tuple[str, float]] = {}

    @classmethod
    async def open(cls, db_path: str | Path) -> QueueProbe:
        conn = await aiosqlite.connect(str(Path(db_path)), isolation_level=None)
        await conn.execute("PRAGMA busy_timeout=2000")
        await conn.execute("PRAGMA query_only=1")
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    def track(self, seq: int, feed: str, arrived_at: float) -> None:
        """Follow one live message until it is applied (bounded: oldest dropped)."""
        if len(self.watch) >= 50_000:
            self.watch.pop(next(iter(self.watch)))
        self.watch[seq] = (feed, arrived_at)

    async def sample(self) -> QueueSample:
        """Counts from the queue's tally (never a scan of the queue), then live look-ups."""
        async with self._lock:
            return await self._sample()

    async def _sample(self) -> QueueSample:
        started = time.perf_counter()
        out = QueueSample(at=time.time(), took=0.0)
        await self.conn.execute("BEGIN")  # one consistent snapshot for all the counts
        try:
            depths = dict.fromkeys(("live", "backload"), 0)
            async with self.conn.execute(  # the queue's tally: a few rows
                "SELECT lane, state, sender_fac, SUM(n) FROM queue_tally "
                "GROUP BY lane, state, sender_fac HAVING SUM(n) > 0"
            ) as cur:
                for lane, state, feed, n in await cur.fetchall():
                    key = (feed or "unknown", state)
                    out.counts[key] = out.counts.get(key, 0) + int(n)
                    if state in WAITING:
                        depths[lane] = depths.get(lane, 0) + int(n)
            out.depths = depths
            if self.watch:
                seqs = list(self.watch)
                for i in range(0, len(seqs), 500):
                    part = seqs[i : i + 500]
                    marks = ",".join("?" * len(part))
                    async with self.conn.execute(
                        f"SELECT seq, state, updated_at FROM queue_state WHERE seq IN ({marks})",
                        part
                    ) as cur:
                        for seq, state, updated_at in await cur.fetchall():
                            if state in TERMINAL:
                                feed, arrived = self.watch.pop(seq)
                                done = float(updated_at)
                                out.finished_live.append(
                                    Finished(seq, feed, state, max(done - arrived, 0.0), done))
            for seq, (feed, _) in self.watch.items():
                if seq < out.waiting_min.get(feed, seq + 1):
                    out.waiting_min[feed] = seq
        except aiosqlite.OperationalError:
            pass  # no queue table yet (a fresh database): an empty sample
        finally:
            await self.conn.execute("COMMIT")
        out.took = time.perf_counter() - started
        return out

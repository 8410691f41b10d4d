"""Backload replay with live traffic interleaved, resumable after a crash.

1. Ingest: backload files are accepted in batches (per-file progress committed
   with each batch), their state rows staged in arrival order and moved into the
   queue's key order once every file is read (``DurableQueue.unstage``). Between
   batches, one chunk of the live feed "arrives" and the live lane is released at
   once — the backload never holds live traffic up.
2. Release: only once the whole backload is queued (extracts are grouped by data
   type, so a patient's messages are spread across files) does the backload lane
   release, per patient in event order, in bounded batches, each preceded by the
   next live chunk and a live release.
3. Drain: the rest of the live feed, then anything left in either lane.

Restarting the same command resumes: released-but-unfinished rows are re-queued,
staged rows are moved over, completed files are skipped, and partly read files
continue after the last committed batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .convert import TrustInfo
from .inbound import KeysAhead, SourceFile, discover, iter_raw
from .pipeline import Engine
from .queue import Inbound
from .reconcile import Reconciliation, reconcile
from .stages import StageClock
from .workers import default_workers, tuned_gc


@dataclass(slots=True)
class Progress:
    """What the progress display shows; updated between batches."""

    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    files_total: int = 0
    files_done: int = 0
    files_skipped: int = 0
    read: int = 0
    accepted: int = 0
    duplicate_at_accept: int = 0
    dead_at_accept: int = 0
    released: int = 0
    applied: int = 0
    dead: int = 0
    depth_backload: int = 0
    depth_live: int = 0
    live_released: int = 0

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)


@dataclass(slots=True)
class ReplayOptions:
    batch: int = 1000  # backload release batch
    accept_batch: int = 1000
    live_chunk: int = 100  # live messages "arriving" between backload batches
    release_live: bool = True  # False when another process (an MLLP engine) releases live
    workers: int | None = None  # conversion worker processes; None: one per core


@dataclass(slots=True)
class ReplayResult:
    reconciliation: Reconciliation
    progress: Progress
    resources: int
    stages: StageClock = field(default_factory=StageClock)


def _file_batches(sf: SourceFile, skip: int, size: int) -> Iterator[tuple[list[str], int, bool]]:
    """(messages, messages done after this batch, file complete?) from ``skip`` on."""
    batch: list[str] = []
    n = 0
    for n, raw in enumerate(iter_raw(sf.path), start=1):
        if n <= skip:
            continue
        batch.append(raw)
        if len(batch) >= size:
            yield batch, n, False
            batch = []
    yield batch, max(n, skip), True


# (file, its key, messages, messages done after it, file complete?, keys being computed)
_Chunk = tuple[SourceFile, str, list[str], int, bool, "asyncio.Future[list[Any]] | None"]


class _Feed:
    """Messages of a list of files, accepted chunk by chunk with durable progress."""

    def __init__(self, engine: Engine, files: Sequence[SourceFile], keys: KeysAhead,
                 chunk: int, progress: Progress, *, stage: bool = False) -> None:
        self.engine = engine
        self.stage = stage  # accepted rows wait in the queue's stage (``queue.unstage``)
        self.files = list(files)
        self.chunk = chunk
        self.progress = progress
        self._keys = keys  # each file's key, hashed ahead in a thread
        self._file = -1  # index of the file being read
        self._key = ""  # its key
        self._batches: Iterator[tuple[list[str], int, bool]] | None = None
        self._next: _Chunk | None = None  # read ahead, being keyed in the workers
        self.exhausted = False

    async def _next_batch(self) -> tuple[SourceFile, str, list[str], int, bool] | None:
        """The next batch to accept, with its file and that file's key: files already
        complete are skipped, a partly read one resumes after its last committed batch."""
        while True:
            if self._batches is not None:
                t0 = time.perf_counter()
                try:
                    batch = next(self._batches, None)
                finally:
                    self.engine.clock.add("read", time.perf_counter() - t0, 0)
                if batch is not None:
                    return self.files[self._file], self._key, *batch
                self._batches = None
            self._file += 1
            if self._file >= len(self.files):
                return None
            sf = self.files[self._file]
            self._key = await self._keys.get(self._file)
            done, complete = await self.engine.queue.file_progress(self._key)
            if complete:
                self.progress.files_skipped += 1
            else:
                self._batches = _file_batches(sf, done, self.chunk)

    async def _read_next(self) -> _Chunk | None:
        """Read the next chunk; a big one starts being keyed in the worker pool."""
        got = await self._next_batch()
        if got is None:
            return None
        sf, key, batch, done, complete = got
        self.engine.clock.messages["read"] += len(batch)
        pool = self.engine.pool_for(len(batch))
        keying = (asyncio.ensure_future(pool.keys(batch, self.engine.queue.senders))
                  if pool is not None else None)
        return sf, key, batch, done, complete, keying

    async def pump(self) -> int:
        """Accept the next chunk; returns messages accepted (0 when exhausted).

        With a worker pool the chunk after this one is read and keyed while this
        one is written to the queue.
        """
        clock = self.engine.clock
        while not self.exhausted:
            cur, self._next = self._next or await self._read_next(), None
            if cur is None:
                self.exhausted = True
                return 0
            sf, key, batch, done, complete, keying = cur
            if keying is not None:
                self._next = await self._read_next()
            with clock.time("enqueue", len(batch)):
                keyed = await keying if keying is not None else None
                res = await self.engine.queue.accept(
                    [Inbound(raw, sf.lane, sf.name) for raw in batch],  # type: ignore[arg-type]
                    file_progress=(key, sf.name, done, complete), keyed=keyed,
                    stage=self.stage,
                )
            p = self.progress
            p.read += len(batch)
            p.accepted += len(res)
            p.duplicate_at_accept += sum(1 for a in res if a.status == "duplicate")
            p.dead_at_accept += sum(1 for a in res if a.status == "dead-lettered")
            if complete:
                p.files_done += 1
            if batch:
                return len(batch)
        return 0


async def replay(
    db: Path,
    dirs: Sequence[Path],
    live: Sequence[Path] = (),
    *,
    trusts: Sequence[TrustInfo] | None = None,
    rate: float | None = None,
    validate: str = "off",
    options: ReplayOptions | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> ReplayResult:
    with tuned_gc():  # the hot path allocates many short-lived dicts: see tuned_gc
        return await _replay(db, dirs, live, trusts=trusts, rate=rate, validate=validate,
                             options=options, on_progress=on_progress)


async def _replay(
    db: Path,
    dirs: Sequence[Path],
    live: Sequence[Path],
    *,
    trusts: Sequence[TrustInfo] | None,
    rate: float | None,
    validate: str,
    options: ReplayOptions | None,
    on_progress: Callable[[Progress], None] | None,
) -> ReplayResult:
    opts = options or ReplayOptions()
    progress = Progress()
    files = discover(list(dirs), list(live))
    progress.files_total = len(files)
    backload_files = [f for f in files if f.lane == "backload"]
    live_files = [f for f in files if f.lane == "live"]
    # hashing starts now, while the engine opens its database
    keys = KeysAhead(backload_files), KeysAhead(live_files)
    workers = default_workers() if opts.workers is None else opts.workers
    engine: Engine | None = None
    try:
        engine = await Engine.open(db, trusts, validate=validate, rate=rate, workers=workers)
        await engine.queue.recover()
        backload = _Feed(engine, backload_files, keys[0], opts.accept_batch, progress,
                         stage=True)
        livefeed = _Feed(engine, live_files, keys[1], opts.live_chunk, progress)

        async def tick(force: bool = False) -> None:
            progress.released = engine.stats.released
            progress.applied = engine.stats.applied
            progress.dead = engine.stats.dead
            if force or on_progress is not None:  # the tally: a few rows, not a COUNT
                waiting = await engine.queue.waiting()
                progress.depth_backload = waiting["backload"]
                progress.depth_live = waiting["live"]
            if on_progress is not None:
                on_progress(progress)

        async def live_step() -> int:
            n = await livefeed.pump()
            if opts.release_live:
                progress.live_released += await engine.drain("live", max(opts.batch, 1))
            return n

        progress.phase = "ingest"
        await tick(force=True)
        while await backload.pump():
            await live_step()
            await tick()
        with engine.clock.time("enqueue"):  # the backload's state rows, in key order
            await engine.queue.unstage()
        progress.phase = "release"
        while True:
            await live_step()
            n = await engine.release_next("backload", opts.batch)
            await tick()
            if n == 0:
                break
        progress.phase = "drain live"
        while await live_step() or not livefeed.exhausted:
            await tick()
        if opts.release_live:
            await engine.drain("live", opts.batch)
        await engine.drain("backload", opts.batch)
        progress.phase = "done"
        await tick(force=True)
        recon = await reconcile(engine.queue.conn)
        return ReplayResult(recon, progress, await engine.store.count(), engine.clock)
    finally:
        for k in keys:
            k.close()
        if engine is not None:
            await engine.close()

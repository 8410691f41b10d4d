"""Conversion worker processes: the CPU-bound HL7 → FHIR step, sharded by patient key.

A claimed batch arrives ordered by (patient key, ordering key). It is cut into
contiguous shards that never split a patient, so each patient's messages are
converted in order by one worker. Workers send back writes already keyed, hashed
and serialised (``store.Prepared``), so the single store writer in the main
process does no JSON work. Results are reassembled in claim order.

Conversion is a pure function of (message, mapping, merges in force), so a worker
holds no state beyond its caches; the merges in force travel with every shard.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from itertools import repeat
from typing import Any

from .convert import Converted, Converter, MergeMap, TrustInfo
from .keys import MessageKeys
from .queue import key_message

# seq, raw, message id, ordering key, event time, patient key
Job = tuple[int, str, str, str, str, str]
# a dead-letter reason, or (patient id, merge, prepared writes as plain tuples)
Outcome = str | tuple[str | None, tuple[str, str] | None, list[Any]]

_converter: Converter | None = None
_as_keys = tuple.__new__  # MessageKeys from its plain tuple, without the class call


@contextmanager
def tuned_gc(threshold: int = 50_000) -> Iterator[None]:
    """Fewer collections on the hot path.

    Conversion allocates many short-lived dicts; with the default threshold (700)
    the collector runs every few messages and rescans every long-lived object each
    time. Freezing what exists at start-up and raising the first threshold cut
    conversion time by about a third, while cycles are still collected.
    """
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def default_workers() -> int:
    """One worker per core (capped at 8); none on a single core."""
    n = os.cpu_count() or 1
    return 0 if n < 2 else min(n, 8)


def _watch_engine(pid: int, create_time: float) -> None:
    """Exit this worker once the engine process (or ``verify``'s) is gone, even SIGKILLed.

    Workers hold both ends of the pool's pipes, so they never see EOF when the
    engine dies; without this they would linger, idle, for ever.
    """
    import psutil

    while True:
        time.sleep(0.5)
        try:
            engine = psutil.Process(pid)
            alive = (abs(engine.create_time() - create_time) < 1.0
                     and engine.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            alive = False
        if not alive:
            os._exit(0)


def spawn_pool(workers: int, init: Callable[..., None], *args: Any) -> ProcessPoolExecutor:
    """``workers`` processes, each running ``init(*args)`` first (a module-level function).

    Spawned, so they are fresh interpreters: nothing of this process's threads or
    open SQLite connections is inherited. Each exits once this process is gone.
    """
    import psutil

    me = psutil.Process()
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=((me.pid, me.create_time()), init, args))


def _start_worker(parent: tuple[int, float], init: Callable[..., None],
                  args: tuple[Any, ...]) -> None:
    threading.Thread(target=_watch_engine, args=parent, daemon=True,
                     name="watch-engine").start()
    init(*args)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _init(trusts: list[TrustInfo] | None, validate: str) -> None:
    global _converter
    _converter = Converter(trusts, validate)


def convert_shard(jobs: Sequence[Job], merges: tuple[str, bytes] | None) -> tuple[
        list[Outcome], float, float, int]:
    """Convert one shard in a worker: (outcomes, convert s, validate s, bundles validated).

    ``merges``: ``MergeMap.packed()``, or None when no merge is known.
    """
    conv = _converter
    assert conv is not None, "worker not initialised"
    return _convert_jobs(conv, jobs, _merge_map(merges) if merges is not None else None)


_merges: tuple[str, MergeMap] | None = None  # the last packed merges, built


def _merge_map(packed: tuple[str, bytes]) -> MergeMap:
    """The MergeMap of ``MergeMap.packed()``; the same token as last time: the same map."""
    global _merges
    token, data = packed
    if _merges is None or _merges[0] != token:
        _merges = (token, MergeMap(pickle.loads(data)))  # noqa: S301 - the engine's own pipe
    return _merges[1]


def _convert_jobs(conv: Converter, jobs: Sequence[Job], merges: MergeMap | None) -> tuple[
        list[Outcome], float, float, int]:
    t0, v0, n0 = time.perf_counter(), conv.validate_seconds, conv.validated
    out: list[Outcome] = []
    for seq, raw, mid, order_key, event_time, _pkey in jobs:
        r = conv.convert(raw, mid, order_key, event_time,
                         merges.at(order_key) if merges is not None else None, seq,
                         prepared=True)
        # writes as plain tuples: a NamedTuple pickles as a class call per item, about
        # twice the cost each way through the pipe (the store unpacks by position)
        out.append(r if isinstance(r, str) else (r.patient_id, r.merge,
                                                 [tuple(w) for w in r.writes]))
    validated = conv.validate_seconds - v0
    return out, time.perf_counter() - t0 - validated, validated, conv.validated - n0


def key_shard(raws: Sequence[str], senders: dict[tuple[str, str], str] | None) -> list[Any]:
    """Queue keys (or dead-letter reasons) for a slice of an inbound batch, in a worker,
    as plain tuples: a NamedTuple unpickles as a class call each (~3 µs a message in
    the engine, ~0.7 for a plain tuple)."""
    return [k if isinstance(k, str) else tuple(k) for k in map(key_message, raws,
                                                                 repeat(senders))]


def shards(jobs: Sequence[Job], n: int) -> list[Sequence[Job]]:
    """``n`` contiguous slices of about equal size, never splitting a patient key."""
    if n <= 1 or len(jobs) < 2:
        return [jobs]
    size = -(-len(jobs) // n)
    out: list[Sequence[Job]] = []
    start = 0
    while start < len(jobs):
        end = min(start + size, len(jobs))
        while end < len(jobs) and jobs[end][5] == jobs[end - 1][5]:
            end += 1
        out.append(jobs[start:end])
        start = end
    return out


class ConvertPool:
    """Worker processes converting shards; ``await convert(jobs, merges)``."""

    def __init__(self, trusts: Sequence[TrustInfo] | None, validate: str, workers: int) -> None:
        self.workers = workers
        self.executor = spawn_pool(workers, _init,
                                   list(trusts) if trusts is not None else None, validate)

    async def convert(self, jobs: Sequence[Job], merges: MergeMap) -> tuple[
            list[Outcome], float, float, int]:
        loop = asyncio.get_running_loop()
        packed = merges.packed() if merges.entries else None
        parts = await asyncio.gather(*(
            loop.run_in_executor(self.executor, convert_shard, shard, packed)
            for shard in shards(jobs, self.workers * 2)
        ))
        out: list[Outcome] = []
        conv_s = val_s = 0.0
        validated = 0
        for outcomes, c, v, n in parts:
            out.extend(outcomes)
            conv_s += c
            val_s += v
            validated += n
        return out, conv_s, val_s, validated

    async def keys(self, raws: Sequence[str],
                   senders: dict[tuple[str, str], str] | None) -> list[Any]:
        """``queue.key_message`` for every message, in the workers, in order."""
        loop = asyncio.get_running_loop()
        size = -(-len(raws) // (self.workers * 2))
        parts = await asyncio.gather(*(
            loop.run_in_executor(self.executor, key_shard, raws[i : i + size], senders)
            for i in range(0, len(raws), size)
        ))
        return [k if isinstance(k, str) else _as_keys(MessageKeys, k)
                for part in parts for k in part]

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def convert_here(conv: Converter, jobs: Sequence[Job], merges: MergeMap) -> tuple[
        list[Outcome], float, float, int]:
    """The same as a worker does, in this process (small batches, no pool)."""
    return _convert_jobs(conv, jobs, merges if merges.entries else None)


__all__ = ["ConvertPool", "Converted", "Job", "Outcome", "convert_here", "default_workers",
           "shards", "spawn_pool", "tuned_gc"]

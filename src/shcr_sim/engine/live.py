"""The engine's live side in one process: MLLP listener, live release, monitor, dashboard.

``LiveEngine`` is what ``shcr-sim serve`` runs and what ``shcr-sim run`` puts next
to the backload replay. The listener has its own queue connection (its group
commits never wait behind a release transaction on the same connection); the
release loop wakes as soon as the listener has queued live messages and always
drains the live lane before it takes a backload batch, so live traffic is never
starved by a draining backload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shcr_sim.monitor.heartbeat import HeartbeatTracker
from shcr_sim.monitor.http import MonitorHTTP
from shcr_sim.monitor.metrics import Monitor, MonitorConfig
from shcr_sim.monitor.probe import QueueProbe
from shcr_sim.store.sqlite import SqliteStore

from .convert import TrustInfo
from .mllp_server import ListenerConfig, ListenerFaults, MLLPListener, SenderPolicy
from .pipeline import Engine
from .queue import Accepted, DurableQueue, Inbound

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StoreOutage:
    """Fault: the record store refuses writes for a while, then comes back.

    It flips the store's own switch (``SqliteStore.set_unavailable``), which lives in
    the database, so every engine writing to that store — the live release and a
    backload replay in another process alike — is refused and waits it out
    (``Engine.store_apply_prepared`` retries with back-off, the batch's rows stay released),
    while the MLLP listener keeps accepting into the queue: its depth grows, and once
    the store is back the retried batch and everything behind it drain.
    ``LiveEngine.start`` binds it to its store.
    """

    store: SqliteStore | None = None
    until: float = 0.0  # wall-clock time (epoch s) the outage ends
    outages: int = 0

    async def start(self, seconds: float) -> None:
        self.until = time.time() + seconds
        self.outages += 1
        await self._push()

    async def end(self) -> None:
        self.until = 0.0
        await self._push()

    async def _push(self) -> None:
        if self.store is None:
            raise RuntimeError("StoreOutage is not bound to a store (LiveEngine.start binds it)")
        await self.store.set_unavailable(self.until)

    @property
    def active(self) -> bool:
        return time.time() < self.until

    @property
    def left(self) -> float:
        return max(self.until - time.time(), 0.0)


@dataclass(slots=True)
class LiveOptions:
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    http_host: str = "127.0.0.1"
    http_port: int | None = 8080  # None: no HTTP server
    release_backload: bool = True  # serve: yes; run: the replay releases the backload
    live_batch: int = 200
    backload_batch: int = 500
    idle_wait: float = 0.25  # how often an idle release loop looks for other work
    ack_mode: str = "auto"
    max_message_bytes: int = 1 << 20
    idle_timeout: float = 600.0
    faults: ListenerFaults = field(default_factory=ListenerFaults)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)


class LiveEngine:
    """Start with ``await LiveEngine.start(db, trusts, options)``; stop with ``close()``."""

    def __init__(self, options: LiveOptions) -> None:
        self.options = options
        self.stop = asyncio.Event()
        self.arrived = asyncio.Event()
        self.engine: Engine | None = None
        self.inbound: DurableQueue | None = None
        self.probe: QueueProbe | None = None
        self.listener: MLLPListener | None = None
        self.http: MonitorHTTP | None = None
        self.monitor: Monitor | None = None
        self.release_errors = 0
        # called with True when live messages start their way to the store, False once
        # the live lane is empty: another process (a backload replay) can yield to them
        self.on_live_busy: Callable[[bool], None] | None = None
        self._busy = False
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        db: str | Path,
        trusts: Sequence[TrustInfo] | None,
        options: LiveOptions | None = None,
        *,
        recover: bool = True,
        outage: StoreOutage | None = None,
        feeds: Mapping[str, Any] | None = None,
    ) -> LiveEngine:
        """``outage`` and ``feeds`` (objects with a ``silent`` flag, the simulated
        trusts' FeedControl) become dashboard actions: take the store down, switch
        a feed off and on."""
        self = cls(options or LiveOptions())
        opts = self.options
        self.engine = await Engine.open(db, trusts)
        if outage is not None:
            outage.store = self.engine.store
        if recover:
            await self.engine.queue.recover()
        if trusts is None:
            saved = await self.engine.queue.get_meta("trusts")
            trusts = [TrustInfo(*t) for t in orjson.loads(saved)] if saved else None
        self.inbound = await DurableQueue.open(db)
        self.probe = await QueueProbe.open(db)
        tracker = HeartbeatTracker(opts.monitor.silent_after)
        if trusts:
            tracker.expect([t.ods for t in trusts])
        if feeds:
            tracker.expect(list(feeds))
        policy = SenderPolicy(frozenset((t.app, t.ods) for t in trusts)) if trusts else (
            SenderPolicy())
        self.monitor = Monitor(opts.monitor, probe=self.probe, heartbeats=tracker)
        self.listener = MLLPListener(
            self._accept,
            ListenerConfig(
                host=opts.mllp_host, port=opts.mllp_port, lane="live", policy=policy,
                ack_mode=opts.ack_mode,  # type: ignore[arg-type]
                max_message_bytes=opts.max_message_bytes, idle_timeout=opts.idle_timeout,
                faults=opts.faults,
            ),
            on_heartbeat=tracker.beat,
            on_accepted=self._on_accepted,
        )
        self.monitor.listener_stats = self.listener.stats
        await self.listener.start()
        if opts.http_port is not None:
            actions = _actions(outage, feeds)
            engine = self.engine
            self.monitor.controls = lambda: {**_controls(outage, feeds),
                                             "store_writes_refused": engine.stats.store_refused}
            self.http = await MonitorHTTP(self.monitor, actions).start(opts.http_host,
                                                                       opts.http_port)
        self._tasks = [
            asyncio.create_task(self.monitor.run(self.stop), name="monitor"),
            asyncio.create_task(self._release_loop(), name="live-release"),
        ]
        return self

    @property
    def mllp_port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    def _live_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            if self.on_live_busy is not None:
                self.on_live_busy(busy)

    async def _accept(self, items: list[Inbound]) -> list[Accepted]:
        """The listener's sink: the durable queue, flagging live work from this moment."""
        assert self.inbound is not None
        self._live_busy(True)
        return await self.inbound.accept(items)

    def _on_accepted(self, seq: int, feed: str, status: str, arrived_at: float) -> None:
        assert self.monitor is not None
        self.monitor.on_accepted(seq, feed, status, arrived_at)
        if status == "queued":
            self.arrived.set()

    async def _release_loop(self) -> None:
        assert self.engine is not None
        opts = self.options
        backoff = 0.05
        while not self.stop.is_set():
            self.arrived.clear()
            try:
                n = await self.engine.release("live", opts.live_batch)
                if not n and not self.arrived.is_set():
                    self._live_busy(False)
                if not n and opts.release_backload:
                    n = await self.engine.release("backload", opts.backload_batch)
                backoff = 0.05
            except Exception:  # rows stay released; recover() re-queues them on restart
                # (a store that is merely unavailable is waited out in Engine.store_apply_prepared)
                self.release_errors += 1
                log.exception("release failed; retrying in %.2fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), opts.idle_wait)

    async def drain_live(self, timeout: float = 30.0) -> bool:
        """Wait until the live lane is empty (True) or the timeout passes (False)."""
        assert self.engine is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.inbound_depth("live") == 0:
                return True
            await asyncio.sleep(0.05)
        return False

    async def inbound_depth(self, lane: str) -> int:
        assert self.inbound is not None
        return await self.inbound.depth(lane)  # type: ignore[arg-type]

    async def close(self) -> None:
        self.stop.set()
        if self.listener is not None:
            await self.listener.close()
        for task in self._tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        if self.http is not None:
            await self.http.close()
        if self.probe is not None:
            await self.probe.close()
        if self.inbound is not None:
            await self.inbound.close()
        if self.engine is not None:
            await self.engine.close()


Action = Callable[[dict[str, str]], str | Awaitable[str]]


def _actions(outage: StoreOutage | None, feeds: Mapping[str, Any] | None) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    if outage is not None:
        async def store_outage(params: dict[str, str]) -> str:
            seconds = min(float(params.get("seconds", "20")), 3600.0)
            if seconds > 0:
                await outage.start(seconds)
                return f"record store down for {seconds:g} s"
            await outage.end()
            return "record store back"

        actions["store-outage"] = store_outage
    if feeds:
        def silence(params: dict[str, str]) -> str:
            feed = feeds[params["feed"]]
            feed.silent = params.get("on", "1") not in ("0", "false", "no")
            return f"feed {params['feed']} {'silent' if feed.silent else 'sending'}"

        actions["silence"] = silence
    return actions


def _controls(outage: StoreOutage | None, feeds: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "store_down_s": round(outage.left, 1) if outage is not None else 0.0,
        "silenced": sorted(name for name, f in (feeds or {}).items() if f.silent),
    }


async def serve_forever(
    db: str | Path,
    trusts: Sequence[TrustInfo] | None,
    options: LiveOptions,
    on_started: Callable[[LiveEngine], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """``shcr-sim serve``: run until SIGINT/SIGTERM (or ``stop``), then close cleanly."""
    import signal

    live = await LiveEngine.start(db, trusts, options, outage=StoreOutage())
    done = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, done.set)
    try:
        if on_started is not None:
            on_started(live)
        await done.wait()
    finally:
        await live.close()

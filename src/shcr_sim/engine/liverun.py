"""``shcr-sim run``: the backload replay and the trusts' live MLLP feeds at once.

1. Generate the scenario's data (unless the folder already has a manifest).
2. Start the backload replay (the engine's ``replay``, files → queue → store).
3. Once it has recovered its queue, start the live engine (listener, live-first
   release, monitor, dashboard) and one MLLP sender per trust with heartbeats.
4. Report live feed-to-store latency while the backload drains; apply the fault
   schedule (store outage, silent feed, malformed burst, slow/dropped ACKs, resets).
5. When the replay and every live stream are done: drain, reconcile, and check
   that every live message was queued exactly once (nothing lost, nothing doubled).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from shcr_sim.feeds.sender import FeedControl, SenderConfig, SendReport, read_stream, run_feed
from shcr_sim.hl7 import HL7Error, parse
from shcr_sim.monitor.metrics import MonitorConfig, percentile

from .live import LiveEngine, LiveOptions, StoreOutage
from .mllp_server import ListenerFaults
from .reconcile import Reconciliation, reconcile
from .replay import Progress, ReplayOptions, ReplayResult, replay
from .trusts import trusts_from_scenario


@dataclass(slots=True)
class RunFaults:
    store_outage: float = 0.0  # seconds the record store refuses writes
    store_outage_at: float = 5.0  # seconds after the live feeds start
    silent_feed: str = ""  # ODS code of a feed that goes silent
    silent_at: float = 3.0
    silent_for: float = 0.0  # 0 = three times the heartbeat alert threshold
    malformed_burst: int = 0  # malformed messages sent mid-stream by the first live feed
    ack_delay: float = 0.0  # seconds an ACK is held back ...
    slow_acks: float = 0.2  # ... for this share of messages
    drop_acks: float = 0.0
    resets: float = 0.0
    mid_frame_resets: float = 0.0


@dataclass(slots=True)
class RunOptions:
    out: Path
    db: Path | None = None  # default OUT/engine.db
    messages: int = 20_000
    live_hours: float | None = None
    seed: int | None = None
    live_rate: float = 20.0  # messages per second over all trusts
    pattern: str = "steady"
    heartbeat_interval: float = 1.0
    silent_after: float = 5.0
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 0
    http_host: str = "127.0.0.1"
    http_port: int | None = 8080
    report_every: float = 2.0
    ack_timeout: float = 2.0
    backload_batch: int = 500  # release batch of the backload replay
    # the replay's conversion worker processes; None: a core each for the replay and the
    # live side, workers on the rest (none on 2 cores: measured, workers there cost live p99)
    backload_workers: int | None = None
    monitor_tick: float = 1.0
    linger: float = 0.0  # keep serving the dashboard this long after the end
    faults: RunFaults = field(default_factory=RunFaults)


# scenario [run] key -> RunOptions field (the [faults] keys are RunFaults' own names)
RUN_KEYS = {"rate": "live_rate", "pattern": "pattern", "heartbeat_interval": "heartbeat_interval",
            "silent_after": "silent_after", "ack_timeout": "ack_timeout",
            "backload_batch": "backload_batch"}


def run_options(scenario: Any, out: Path, **given: Any) -> RunOptions:
    """RunOptions from the scenario's ``[run]`` and ``[faults]`` tables.

    ``given`` are RunOptions or RunFaults fields set on the command line; a value
    of None means "not given", so the scenario's (or the built-in default) stands.
    """
    run, faults = getattr(scenario, "run", None), getattr(scenario, "faults", None)
    opts = RunOptions(out=out, **{f: getattr(run, k) for k, f in RUN_KEYS.items()
                                  if run is not None})
    fault_names = {f.name for f in fields(RunFaults)}
    opts.faults = RunFaults(**{n: getattr(faults, n) for n in fault_names
                               if faults is not None and hasattr(faults, n)})
    for name, value in given.items():
        if value is None:
            continue
        if name in fault_names:
            opts.faults = replace(opts.faults, **{name: value})
        elif name in {f.name for f in fields(RunOptions)}:
            setattr(opts, name, value)
        else:
            raise TypeError(f"run_options: unknown option {name!r}")
    return opts


@dataclass(slots=True)
class Delivery:
    """Live messages sent vs queued: the "nothing lost, nothing doubled" check."""

    distinct: int = 0  # distinct (MSH-3, MSH-4, MSH-10) in the live streams
    queued_once: int = 0  # of those, queued exactly once
    lost: int = 0
    doubled: int = 0
    duplicates_absorbed: int = 0  # resends that landed as duplicates
    malformed_dead_lettered: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.queued_once == self.distinct


@dataclass(slots=True)
class RunResult:
    reconciliation: Reconciliation
    replay: ReplayResult
    delivery: Delivery
    sends: dict[str, SendReport]
    status: dict[str, Any]  # the monitor's final /status
    outage_refused: int
    elapsed: float
    during_backload: dict[str, Any] = field(default_factory=dict)


REAPPLIED_AFTER_S = 2.0  # applied this long after its first store write: re-applied


def seconds_to_first_application(db: Path, rows: Iterable[tuple[str, float, float]]
                                 ) -> list[float]:
    """Queue accept → applied, in seconds, for (message id, received_at, updated_at) rows.

    A merge learned late re-applies messages and moves their queue ``updated_at``;
    for those the first application counts (their first store write). Only the slow
    ones can have been re-applied, so only those are looked up, in one pass over the
    record's history (``message_id`` has no index: a query per few hundred ids would
    scan it again each time, minutes at ten million messages).
    """
    import sqlite3

    rows = list(rows)
    ids = sorted({m for m, received, done in rows if done - received > REAPPLIED_AFTER_S})
    firsts: dict[str, float] = {}
    if ids:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            for mid, written in conn.execute(
                "SELECT message_id, MIN(last_updated) FROM resource_history "
                "WHERE message_id IN (SELECT value FROM json_each(?)) GROUP BY message_id",
                (orjson.dumps(ids).decode(),),
            ):
                firsts[mid] = datetime.fromisoformat(written.replace("Z", "+00:00")).timestamp()
    seconds = []
    for mid, received, done in rows:
        at = firsts.get(mid)
        if at is not None and done - at > REAPPLIED_AFTER_S:
            done = at
        seconds.append(max(done - received, 0.0))
    return seconds


async def latency_during_backload(db: Path) -> dict[str, Any]:
    """Live latency (queued → applied) of the live messages that arrived before the last
    backload message was applied: the figure the target is about, over the whole
    drain rather than over the monitor's recent window (``seconds_to_first_application``).
    """
    async with aiosqlite.connect(str(db)) as conn:
        async with conn.execute(
            "SELECT MIN(received_at), MAX(updated_at) FROM queue "
            "WHERE lane='backload' AND state='applied'"
        ) as cur:
            first, last = await cur.fetchone()  # type: ignore[misc]
        if last is None:
            return {"count": 0}
        async with conn.execute(
            "SELECT dedup_key, received_at, updated_at FROM queue "
            "WHERE lane='live' AND state='applied' AND received_at <= ?",
            (last,),
        ) as cur:
            rows = await cur.fetchall()
    seconds = await asyncio.to_thread(seconds_to_first_application, db, rows)

    def ms(q: float) -> float | None:
        v = percentile(seconds, q)
        return None if v is None else round(v * 1000, 1)

    return {"count": len(seconds), "drain_s": round(last - first, 1), "p50": ms(0.5),
            "p90": ms(0.9), "p99": ms(0.99), "max": ms(1.0),
            "over_1s": sum(1 for v in seconds if v > 1.0)}


def malformed(ods: str, app: str, n: int) -> list[str]:
    """A burst of bad messages: no MSH at all, and MSH without a patient identifier."""
    out = []
    for i in range(n):
        if i % 2:
            out.append(f"this is not an HL7 message #{i}")
        else:
            out.append(f"MSH|^~\\&|{app}|{ods}|SHCR-CIE|SHCR|20260101120000+0000||ADT^A08^ADT_A01|"
                       f"BAD{ods}{i:04d}|P|2.4\rEVN|A08|20260101120000+0000\rPID|1\r")
    return out


def _with_burst(messages: list[str], burst: list[str]) -> list[str]:
    middle = len(messages) // 2
    return messages[:middle] + burst + messages[middle:]


def _until_done(messages: Iterable[str], done: asyncio.Event) -> Iterator[str]:
    yield from messages
    done.set()  # reached only after the last message was answered


def _key(text: str) -> str | None:
    try:
        msg = parse(text)
    except HL7Error:
        return None
    app, fac = msg.sender
    return f"{app}|{fac}|{msg.control_id}" if msg.control_id else None


async def check_delivery(db: Path, streams: dict[str, list[str]], malformed_n: int) -> Delivery:
    keys = {k for msgs in streams.values() for m in msgs if (k := _key(m))}
    out = Delivery(distinct=len(keys))
    async with aiosqlite.connect(str(db)) as conn:
        found: dict[str, int] = {}
        wanted = sorted(keys)
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            async with conn.execute(
                f"SELECT dedup_key, COUNT(*) FROM queue WHERE dup_of IS NULL "
                f"AND dedup_key IN ({marks}) GROUP BY dedup_key", part
            ) as cur:
                found.update({k: int(n) for k, n in await cur.fetchall()})
        async with conn.execute(
            "SELECT COUNT(*) FROM queue WHERE lane='live' AND state='duplicate'"
        ) as cur:
            out.duplicates_absorbed = int((await cur.fetchone())[0])  # type: ignore[index]
        async with conn.execute(
            "SELECT COUNT(*) FROM queue WHERE lane='live' AND state='dead-lettered'"
        ) as cur:
            out.malformed_dead_lettered = int((await cur.fetchone())[0])  # type: ignore[index]
    out.queued_once = sum(1 for k in keys if found.get(k) == 1)
    out.lost = sum(1 for k in keys if k not in found)
    out.doubled = sum(1 for k in keys if found.get(k, 0) > 1)
    return out


async def run_simulation(
    scenario: Any,
    opts: RunOptions,
    *,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    on_ready: Callable[[LiveEngine], None] | None = None,
) -> RunResult:
    """Run the whole simulation; see the module docstring."""
    from shcr_sim.feeds.generate import generate

    started = time.monotonic()
    out = Path(opts.out)
    db = opts.db or out / "engine.db"
    sc = scenario
    if opts.live_hours is not None:
        sc = sc.model_copy(update={"live": sc.live.model_copy(update={"hours": opts.live_hours})})
    if not (out / "manifest.json").is_file():
        generate(sc, out, messages=opts.messages, seed=opts.seed)
    trusts = trusts_from_scenario(sc)
    faults = opts.faults
    streams = {t.ods: list(read_stream(out / "live" / f"{t.ods}.hl7"))
               if (out / "live" / f"{t.ods}.hl7").is_file() else [] for t in sc.trusts}
    ctx = multiprocessing.get_context("spawn")
    outage = StoreOutage()  # bound to the store by LiveEngine.start; the dashboard offers it too
    progress: dict[str, Any] = {"phase": "starting"}
    live_busy = ctx.RawValue("b", 0)  # set while live messages are on their way to the store
    backload = _BackloadProcess(ctx, db, out, trusts, progress, live_busy,
                                ReplayOptions(batch=opts.backload_batch, release_live=False,
                                              workers=backload_workers(opts)))

    controls = {t.ods: FeedControl() for t in sc.trusts}
    replay_task = asyncio.create_task(backload.run())
    await asyncio.wait([replay_task, asyncio.create_task(backload.ready.wait())],
                       return_when=asyncio.FIRST_COMPLETED)
    if replay_task.done():
        replay_task.result()  # raises if the replay failed at start
    monitor_cfg = MonitorConfig(silent_after=opts.silent_after, tick=opts.monitor_tick)
    live = await LiveEngine.start(db, trusts, LiveOptions(
        mllp_host=opts.mllp_host, mllp_port=opts.mllp_port, http_host=opts.http_host,
        http_port=opts.http_port, release_backload=False, monitor=monitor_cfg,
        faults=ListenerFaults(ack_delay=faults.ack_delay, slow_ack_rate=faults.slow_acks,
                              drop_ack_rate=faults.drop_acks,
                              mid_frame_reset_rate=faults.mid_frame_resets,
                              reset_rate=faults.resets),
    ), recover=False, outage=outage, feeds=controls)
    assert live.monitor is not None
    live.on_live_busy = lambda busy: setattr(live_busy, "value", int(busy))
    if on_ready is not None:
        on_ready(live)
    live.monitor.extra = lambda: dict(progress)
    done = {t.ods: asyncio.Event() for t in sc.trusts}
    feeding = [t for t in sc.trusts if streams[t.ods]]
    total_live = sum(len(streams[t.ods]) for t in feeding) or 1
    sends: dict[str, asyncio.Task[SendReport]] = {}
    for i, t in enumerate(sc.trusts):
        msgs = streams[t.ods]
        if faults.malformed_burst and feeding and t is feeding[0]:
            msgs = _with_burst(msgs, malformed(t.ods, t.sending_application,
                                               faults.malformed_burst))
        cfg = SenderConfig(
            # each trust's share of the rate follows its share of the live traffic,
            # so the feeds finish together
            host=opts.mllp_host, port=live.mllp_port,
            rate=opts.live_rate * max(len(msgs), 1) / total_live if opts.live_rate else 0,
            pattern=opts.pattern,  # type: ignore[arg-type]
            heartbeat_interval=opts.heartbeat_interval, application=t.sending_application,
            facility=t.ods, ack_timeout=opts.ack_timeout,
        )
        sends[t.ods] = asyncio.create_task(run_feed(
            _until_done(msgs, done[t.ods]), cfg, controls[t.ods], linger=True),
            name=f"feed-{i}-{t.ods}")
    schedule = asyncio.create_task(_faults(faults, outage, controls, opts.silent_after))
    reporter = asyncio.create_task(_report(live, opts.report_every, on_report))
    try:
        await replay_task
        for ev in done.values():
            await ev.wait()
        await schedule
        await live.drain_live(60)
        await asyncio.sleep(0.2)
        await live.monitor.tick()
        if opts.linger:
            await asyncio.sleep(opts.linger)
    finally:
        for c in controls.values():
            c.stopped.set()
        reports = {ods: await task for ods, task in sends.items()}
        reporter.cancel()
        schedule.cancel()
        for task in (reporter, schedule):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if outage.active:  # a run cut short leaves no switch behind in the database
            with contextlib.suppress(Exception):
                await outage.end()
        status = live.monitor.status()
        refused = live.engine.stats.store_refused if live.engine is not None else 0
        await live.close()
    async with aiosqlite.connect(str(db)) as conn:
        recon = await reconcile(conn)
    delivery = await check_delivery(db, streams, faults.malformed_burst)
    return RunResult(recon, replay_task.result(), delivery, reports, status, refused,
                     time.monotonic() - started, await latency_during_backload(db))


async def _faults(faults: RunFaults, outage: StoreOutage, controls: dict[str, FeedControl],
                  silent_after: float) -> None:
    """The fault schedule, relative to the start of the live feeds."""
    t0 = time.monotonic()
    steps: list[tuple[float, Callable[[], Awaitable[None]]]] = []
    if faults.store_outage:
        steps.append((faults.store_outage_at, lambda: outage.start(faults.store_outage)))
    if faults.silent_feed:
        control = controls.get(faults.silent_feed)
        if control is None:
            raise ValueError(f"--silent-feed {faults.silent_feed}: no such trust")
        span = faults.silent_for or silent_after * 3

        async def on() -> None:
            control.silent = True

        async def off() -> None:
            control.silent = False

        steps += [(faults.silent_at, on), (faults.silent_at + span, off)]
    for at, action in sorted(steps, key=lambda s: s[0]):
        await asyncio.sleep(max(t0 + at - time.monotonic(), 0))
        await action()
    while outage.active:
        await asyncio.sleep(0.1)


async def _report(live: LiveEngine, every: float,
                  on_report: Callable[[dict[str, Any]], None] | None) -> None:
    assert live.monitor is not None
    while True:
        await asyncio.sleep(every)
        if on_report is not None:
            on_report(live.monitor.status())


def _progress_json(p: Progress) -> dict[str, Any]:
    return {"phase": p.phase, "files_done": p.files_done, "files_total": p.files_total,
            "read": p.read, "accepted": p.accepted, "applied": p.applied,
            "depth_backload": p.depth_backload, "elapsed_s": round(p.elapsed, 1)}


def backload_workers(opts: RunOptions) -> int:
    if opts.backload_workers is not None:
        return opts.backload_workers
    return max((os.cpu_count() or 2) - 2, 0)


YIELD_MAX = 0.25  # longest pause of the backload between two batches for live work


def yield_to_live(busy: Any, most: float = YIELD_MAX) -> float:
    """Live first across processes: wait while live messages are on their way to the
    store, so the backload's next transaction does not hold the write lock they need.

    At most ``most`` seconds, so the backload always moves. Returns the seconds waited.
    """
    if not busy.value:
        return 0.0
    started = time.monotonic()
    while busy.value and time.monotonic() - started < most:
        time.sleep(0.002)
    return time.monotonic() - started


def _replay_child(db: Path, out: Path, trusts: list, messages: Any, live_busy: Any,
                  options: ReplayOptions) -> None:
    """The backload replay in its own process: its CPU never stalls the live event loop.

    It releases only the backload lane; the live engine releases the live lane.
    The replay reports progress between batches; that is where it yields to live work.
    """

    async def main() -> None:
        last = 0.0

        def on_progress(p: Progress) -> None:
            nonlocal last
            yield_to_live(live_busy)
            now = time.monotonic()
            if now - last >= 0.5 or p.phase == "done":
                last = now
                messages.put(("progress", _progress_json(p)))

        result = await replay(db, [out], [], trusts=trusts, on_progress=on_progress,
                              options=options)
        messages.put(("progress", _progress_json(result.progress)))
        messages.put(("done", result))

    try:
        asyncio.run(main())
    except BaseException as exc:
        messages.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


class _BackloadProcess:
    """Runs ``_replay_child`` and relays its progress; ``run()`` returns the ReplayResult."""

    def __init__(self, ctx: Any, db: Path, out: Path, trusts: list, progress: dict[str, Any],
                 live_busy: Any, options: ReplayOptions) -> None:
        self.messages = ctx.Queue()
        self.process = ctx.Process(target=_replay_child, name="shcr-backload",
                                   args=(db, out, trusts, self.messages, live_busy, options),
                                   daemon=False)  # the replay may start conversion workers
        self.progress = progress
        self.ready = asyncio.Event()

    async def run(self) -> ReplayResult:
        self.process.start()
        try:
            while True:
                try:
                    kind, payload = await asyncio.to_thread(self.messages.get, True, 1.0)
                except queue.Empty:
                    if not self.process.is_alive():
                        raise RuntimeError("the backload replay process died") from None
                    continue
                if kind == "progress":
                    self.progress.clear()
                    self.progress.update(payload)
                    self.ready.set()
                elif kind == "error":
                    raise RuntimeError(f"backload replay failed: {payload}")
                else:
                    return payload
        finally:
            await asyncio.to_thread(self.process.join, 30)
            if self.process.is_alive():
                self.process.terminate()


def progress_line(status: dict[str, Any]) -> str:
    """One line for the terminal while a run goes on."""
    lat = status.get("live_latency_ms", {})
    run = status.get("run") or {}
    lanes = status.get("lanes", {})
    eta = status.get("backload_eta_s")
    alerts = ", ".join(a["key"] for a in status.get("alerts", [])) or "none"
    silenced = (status.get("controls") or {}).get("silenced") or []
    held = f" · switched off (the run waits for them): {', '.join(silenced)}" if silenced else ""

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.0f} ms"

    return (
        f"[{run.get('phase', '?')}] backload depth {lanes.get('backload', {}).get('depth', 0):,}"
        f" (ETA {'–' if eta is None else f'{eta:.0f} s'}) · applied "
        f"{status.get('stages', {}).get('applied', 0):,} · live depth "
        f"{lanes.get('live', {}).get('depth', 0):,} · live p50 {ms(lat.get('p50'))} "
        f"p99 {ms(lat.get('p99'))} (n={lat.get('count', 0)}) · alerts: {alerts}{held}"
    )


def summary(result: RunResult) -> dict[str, Any]:
    """The run's result as JSON-ready data (printed by ``shcr-sim run``)."""
    d = result.delivery
    sends = {
        ods: {"delivered": r.delivered, "errors": r.errors, "rejected": r.rejected,
              "resends": r.resends, "reconnects": r.reconnects, "timeouts": r.timeouts,
              "heartbeats": r.heartbeats, "heartbeat_acks": r.heartbeat_acks}
        for ods, r in result.sends.items()
    }
    status = result.status
    return {
        "ok": result.reconciliation.ok and d.ok,
        "elapsed_s": round(result.elapsed, 1),
        "reconciliation": result.reconciliation.to_json()["total"],
        "reconciliation_ok": result.reconciliation.ok,
        # the backload child's reconciliation sets a wrong tally right before the run's own
        "queue_tally_corrected": (result.replay.reconciliation.tally_corrected
                                  + result.reconciliation.tally_corrected),
        "live_delivery": {"ok": d.ok, "distinct": d.distinct, "queued_once": d.queued_once,
                          "lost": d.lost, "doubled": d.doubled,
                          "duplicates_absorbed": d.duplicates_absorbed,
                          "dead_lettered": d.malformed_dead_lettered},
        "live_latency_ms": status.get("live_latency_ms"),
        "live_latency_during_backload_ms": result.during_backload,
        "backload": {"read": result.replay.progress.read,
                     "applied": result.replay.progress.applied,
                     "resources": result.replay.resources},
        "senders": sends,
        "store_writes_refused": result.outage_refused,
        "alert_events": status.get("events", []),
        "mllp": status.get("mllp"),
    }

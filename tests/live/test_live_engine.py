"""The live engine end to end: MLLP in, FHIR in the store, faults, heartbeat alerts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shcr_sim.engine.live import LiveEngine, LiveOptions, StoreOutage, serve_forever
from shcr_sim.engine.liverun import check_delivery, yield_to_live
from shcr_sim.engine.reconcile import reconcile
from shcr_sim.engine.trusts import trusts_from_scenario
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.feeds.sender import FeedControl, SenderConfig, read_stream, run_feed
from shcr_sim.monitor.metrics import MonitorConfig


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, object]:
    sc = load_scenario(None)
    sc = sc.model_copy(update={"live": sc.live.model_copy(update={"hours": 72})})
    out = tmp_path_factory.mktemp("gen")
    generate(sc, out, messages=600)
    return out, sc


def live_messages(out: Path) -> dict[str, list[str]]:
    return {p.stem: list(read_stream(p)) for p in sorted((out / "live").glob("*.hl7"))
            if p.stat().st_size}


def sender_cfg(port: int, trust, **kw) -> SenderConfig:
    base = dict(port=port, rate=0, ack_timeout=5, backoff_initial=0.01, backoff_max=0.2,
                max_attempts=20,
                application=trust.sending_application, facility=trust.ods)
    base.update(kw)
    return SenderConfig(**base)


async def started(tmp_path: Path, sc, **kw) -> LiveEngine:
    opts = LiveOptions(mllp_port=0, http_port=None, **kw)
    return await LiveEngine.start(tmp_path / "engine.db", trusts_from_scenario(sc), opts)


async def test_live_feeds_reach_the_store_and_reconcile(generated, tmp_path) -> None:
    out, sc = generated
    streams = live_messages(out)
    trusts = {t.ods: t for t in sc.trusts}
    live = await started(tmp_path, sc)
    try:
        reports = await asyncio.gather(*(
            run_feed(msgs, sender_cfg(live.mllp_port, trusts[ods], heartbeat_interval=0.2))
            for ods, msgs in streams.items()))
        assert await live.drain_live(30)
        await live.monitor.tick()
        status = live.monitor.status()
        recon = await reconcile(live.engine.queue.conn)
        stored = await live.engine.store.count()
    finally:
        await live.close()
    sent = sum(len(m) for m in streams.values())
    assert sum(r.delivered + r.errors for r in reports) == sent
    assert recon.ok and recon.total.accepted == sent
    assert recon.total.applied > 0 and stored > 0
    assert status["live_latency_ms"]["count"] == recon.total.applied
    assert status["live_latency_ms"]["p99"] is not None
    beats = [f["heartbeat"] for f in status["feeds"] if f["feed"] in streams]
    assert beats and all(b["count"] >= 1 and b["round_trip_ms"] is not None for b in beats)


async def test_store_outage_holds_the_queue_then_drains(generated, tmp_path) -> None:
    out, sc = generated
    ods, msgs = next(iter(live_messages(out).items()))
    trust = next(t for t in sc.trusts if t.ods == ods)
    outage = StoreOutage()
    live = await LiveEngine.start(tmp_path / "engine.db", trusts_from_scenario(sc),
                                  LiveOptions(mllp_port=0, http_port=None), outage=outage)
    try:
        await outage.start(60)  # down until we say otherwise
        report = await run_feed(msgs, sender_cfg(live.mllp_port, trust))
        async with asyncio.timeout(10):
            while live.engine.stats.store_refused < 2:  # tried, refused, retried, refused
                await asyncio.sleep(0.01)
        held = await live.inbound_depth("live")
        stored_while_down = await live.engine.store.count()
        released = (await live.engine.queue.counts()).get("released", 0)
        await outage.end()  # the store is back
        assert await live.drain_live(30)
        recon = await reconcile(live.engine.queue.conn)
        stored = await live.engine.store.count()
    finally:
        await live.close()
    delivery = await check_delivery(tmp_path / "engine.db", {ods: msgs}, 0)
    assert report.delivered + report.errors == len(msgs)  # ACKed while the store was down
    assert held == recon.total.accepted - recon.total.duplicate - report.errors > 0
    assert stored_while_down == 0 and stored > 0
    assert 0 < released <= live.options.live_batch  # the refused batch waits as released
    assert recon.ok and recon.total.accepted == len(msgs) and recon.total.pending == 0
    assert delivery.ok and delivery.distinct == len(msgs)


async def test_silent_feed_alert_fires_and_clears(generated, tmp_path) -> None:
    _, sc = generated
    trust = sc.trusts[0]
    mon = MonitorConfig(tick=0.05, silent_after=0.4)
    live = await started(tmp_path, sc, monitor=mon)
    control = FeedControl()
    key = f"heartbeat:{trust.ods}"
    try:
        feed = asyncio.create_task(run_feed(
            [], sender_cfg(live.mllp_port, trust, heartbeat_interval=0.05), control,
            linger=True))
        alerts = live.monitor.alerts
        async with asyncio.timeout(10):
            while alerts.is_active("heartbeat", trust.ods):
                await asyncio.sleep(0.02)  # first beat clears the start-up silence
            control.silent = True
            while not alerts.is_active("heartbeat", trust.ods):
                await asyncio.sleep(0.02)
            control.silent = False
            while alerts.is_active("heartbeat", trust.ods):
                await asyncio.sleep(0.02)
        control.stopped.set()
        await feed
    finally:
        await live.close()
    mine = [e.state for e in alerts.events if e.key == key]
    assert mine[-2:] == ["raised", "cleared"]
    others = {a.subject for a in alerts.active.values() if a.kind == "heartbeat"}
    assert trust.ods not in others


async def test_serve_runs_until_stopped_and_applies_what_it_acks(generated, tmp_path) -> None:
    out, sc = generated
    ods, msgs = next(iter(live_messages(out).items()))
    trust = next(t for t in sc.trusts if t.ods == ods)
    stop = asyncio.Event()
    ready: asyncio.Queue[LiveEngine] = asyncio.Queue()
    opts = LiveOptions(mllp_port=0, http_port=0)
    server = asyncio.create_task(serve_forever(
        tmp_path / "serve.db", trusts_from_scenario(sc), opts, ready.put_nowait, stop))
    live = await asyncio.wait_for(ready.get(), 10)
    report = await run_feed(msgs, sender_cfg(live.mllp_port, trust))
    assert await live.drain_live(30)
    recon = await reconcile(live.engine.queue.conn)
    stop.set()
    await asyncio.wait_for(server, 10)
    assert report.delivered + report.errors == len(msgs)
    assert recon.ok and recon.total.accepted == len(msgs) and recon.total.applied > 0


async def test_live_work_is_flagged_until_the_live_lane_is_empty(generated, tmp_path) -> None:
    out, sc = generated
    ods, msgs = next(iter(live_messages(out).items()))
    trust = next(t for t in sc.trusts if t.ods == ods)
    live = await started(tmp_path, sc)
    flags: list[bool] = []
    live.on_live_busy = flags.append
    try:
        await run_feed(msgs, sender_cfg(live.mllp_port, trust))
        assert await live.drain_live(30)
        async with asyncio.timeout(10):
            while not flags or flags[-1]:  # the release loop finds the lane empty
                await asyncio.sleep(0.01)
    finally:
        await live.close()
    assert flags[0] is True and flags[-1] is False
    assert all(a != b for a, b in zip(flags, flags[1:], strict=False))  # transitions only


def test_the_backload_yields_while_live_work_is_flagged() -> None:
    import multiprocessing
    import threading

    busy = multiprocessing.get_context("spawn").RawValue("b", 1)
    clear = threading.Timer(0.05, lambda: setattr(busy, "value", 0))
    clear.start()
    waited = yield_to_live(busy, most=30)
    clear.join()
    assert busy.value == 0 and waited < 30  # it waited for the flag, not the cap
    busy.value = 1
    assert yield_to_live(busy, most=0.01) >= 0.01  # the cap: the backload always moves
    busy.value = 0
    assert yield_to_live(busy) == 0.0  # no live work: no pause

"""Monitor: alerts with hysteresis, heartbeat alerts, queue sampling, /status and /metrics."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client.parser import text_string_to_metric_families

from shcr_sim.engine.mllp_server import ListenerConfig, MLLPListener
from shcr_sim.engine.queue import Inbound
from shcr_sim.feeds.sender import FeedControl, SenderConfig, heartbeat_message, run_feed
from shcr_sim.hl7 import parse, parse_ts
from shcr_sim.monitor.alerts import AlertBook, Threshold
from shcr_sim.monitor.heartbeat import HeartbeatTracker
from shcr_sim.monitor.http import MonitorHTTP
from shcr_sim.monitor.metrics import Monitor, MonitorConfig, percentile
from shcr_sim.monitor.probe import Finished, QueueProbe

from .helpers import stream


def test_threshold_alert_has_hysteresis() -> None:
    book = AlertBook()
    t = Threshold(raise_at=500, clear_at=100)
    for value in (0, 600, 300, 499, 600, 150):  # hovering above clear_at never clears
        book.judge("queue-depth", "live", value, t, "depth", now=1.0)
    assert book.is_active("queue-depth", "live")
    book.judge("queue-depth", "live", 90, t, "depth", now=2.0)
    assert not book.is_active("queue-depth", "live")
    assert [e.state for e in book.events] == ["raised", "cleared"]


def test_silent_feed_alert_fires_and_clears() -> None:
    tracker = HeartbeatTracker(silent_after=30, started_at=1000.0)
    tracker.expect(["RXA", "RXB"])
    book = AlertBook()
    hb = parse(heartbeat_message("PAS", "RXA", 1))
    tracker.beat("RXA", hb, 1010.0)
    tracker.beat("RXB", hb, 1010.0)
    tracker.check(book, now=1020.0)
    assert book.active == {}
    tracker.beat("RXA", hb, 1045.0)  # RXB stays silent
    tracker.check(book, now=1050.0)
    assert list(book.active) == ["heartbeat:RXB"]
    tracker.check(book, now=1051.0)  # no storm: still one raise
    tracker.beat("RXB", hb, 1052.0)
    tracker.check(book, now=1053.0)
    assert book.active == {}
    assert [(e.key, e.state) for e in book.events] == [
        ("heartbeat:RXB", "raised"), ("heartbeat:RXB", "cleared")]
    snap = {s["feed"]: s for s in tracker.snapshot(now=1053.0)}
    assert snap["RXB"]["alive"] and snap["RXB"]["count"] == 2
    assert snap["RXA"]["sender"]["messages_sent"] == "0"


def test_heartbeat_round_trip_waits_for_what_the_feed_sent_before_it() -> None:
    tracker = HeartbeatTracker()
    hb = parse(heartbeat_message("PAS", "RXA", 1))
    sent = parse_ts(hb.get("MSH-7")).epoch
    tracker.accepted("RXA", 41)
    tracker.accepted("RXA", 42)
    tracker.beat("RXA", hb, sent + 0.01)
    tracker.accepted("RXA", 43)  # after the heartbeat: not waited for
    tracker.settle([], {"RXA": 42})
    assert tracker.feeds["RXA"].round_trip is None  # seq 42 is still on its way
    assert abs(tracker.round_trip("RXA", now=sent + 3.0) - 3.0) < 1e-6  # held up: growing
    tracker.settle([Finished(42, "RXA", "applied", 0.4, sent + 0.5)], {"RXA": 43})
    assert abs(tracker.feeds["RXA"].round_trip - 0.5) < 1e-6
    tracker.beat("RXA", hb, sent + 0.02)  # nothing outstanding: round trip = transit
    tracker.accepted("RXA", 44)
    tracker.settle([], {})
    assert abs(tracker.feeds["RXA"].round_trip - 0.02) < 1e-6
    assert tracker.snapshot()[0]["round_trip_ms"] == 20.0


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None


async def test_monitor_samples_the_queue_and_measures_live_latency(queue, tmp_path) -> None:
    probe = await QueueProbe.open(tmp_path / "engine.db")
    monitor = Monitor(MonitorConfig(live_depth=Threshold(3, 1)), probe=probe)
    try:
        msgs = stream(5)
        res = await queue.accept([Inbound(m, "live", "t") for m in msgs]
                                 + [Inbound(msgs[0], "live", "t"),
                                    Inbound("garbage", "backload", "f")])
        for r in res[:5]:
            monitor.on_accepted(r.seq, "RXA", r.status, arrived_at=0.0)
        await monitor.tick(now=100.0)
        assert monitor.alerts.is_active("queue-depth", "live")  # 5 waiting >= 3
        rows = await queue.claim("live", 10)
        await queue.finish(applied=[r.seq for r in rows])
        await monitor.tick(now=101.0)
        status = monitor.status(now=101.0)
    finally:
        await probe.close()
    assert status["stages"]["applied"] == 5
    assert status["stages"]["duplicate"] == 1
    assert status["stages"]["dead-lettered"] == 1
    assert status["accepted"] == 7
    assert status["lanes"]["live"]["depth"] == 0
    assert status["rates"]["applied"] == 5.0
    assert status["live_latency_ms"]["count"] == 5 and status["live_latency_ms"]["p99"] > 0
    assert not monitor.alerts.is_active("queue-depth", "live")
    feed = {f["feed"]: f for f in status["feeds"]}["RXA"]
    assert feed["stages"]["applied"] == 5
    assert [e["state"] for e in status["events"]] == ["raised", "cleared"]


async def test_dead_letter_rate_alert(queue, tmp_path) -> None:
    probe = await QueueProbe.open(tmp_path / "engine.db")
    cfg = MonitorConfig(dead_letter_min=5, dead_letter_rate=Threshold(0.5, 0.1))
    monitor = Monitor(cfg, probe=probe)
    try:
        await monitor.tick(now=10.0)
        await queue.accept([Inbound(f"bad {i}", "live", "t") for i in range(8)])
        await monitor.tick(now=11.0)
    finally:
        await probe.close()
    assert monitor.alerts.is_active("dead-letter-rate", "all")


async def http_get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


async def test_status_and_metrics_over_http(queue, tmp_path) -> None:
    probe = await QueueProbe.open(tmp_path / "engine.db")
    tracker = HeartbeatTracker(silent_after=30)
    monitor = Monitor(probe=probe, heartbeats=tracker)
    async with MLLPListener(queue.accept, ListenerConfig(port=0),
                            on_heartbeat=tracker.beat, on_accepted=monitor.on_accepted) as srv:
        monitor.listener_stats = srv.stats
        control = FeedControl()
        cfg = SenderConfig(port=srv.port, rate=0, heartbeat_interval=0.05, max_attempts=20,
                           application="PAS",
                           facility="RXA")
        feed = asyncio.create_task(run_feed(stream(4), cfg, control, linger=True))
        async with asyncio.timeout(5):
            while tracker.feeds.get("RXA") is None or srv.stats.feeds["RXA"].queued < 4:
                await asyncio.sleep(0.02)
        control.stopped.set()
        await feed
        await monitor.tick()
        http = await MonitorHTTP(monitor).start(port=0)
        try:
            head, body = await http_get(http.port, "/status")
            mhead, metrics = await http_get(http.port, "/metrics")
            phead, page = await http_get(http.port, "/")
            nhead, _ = await http_get(http.port, "/nope")
        finally:
            await http.close()
            await probe.close()
    assert head.startswith("HTTP/1.1 200") and "application/json" in head
    status = orjson.loads(body)
    assert status["lanes"]["live"]["depth"] == 4
    rxa = {f["feed"]: f for f in status["feeds"]}["RXA"]
    assert rxa["mllp"]["queued"] == 4 and rxa["heartbeat"]["alive"]
    families = {f.name: f for f in text_string_to_metric_families(metrics.decode())}
    depth = {s.labels["lane"]: s.value for s in families["shcr_queue_depth"].samples}
    assert depth == {"live": 4.0, "backload": 0.0}
    mllp = {(s.labels["feed"], s.labels["outcome"]): s.value
            for s in families["shcr_mllp_messages"].samples if s.name.endswith("_total")}
    assert mllp[("RXA", "queued")] == 4.0
    assert families["shcr_heartbeat_up"].samples[0].value == 1.0
    assert "shcr_live_latency_seconds" in families
    assert b"shcr-sim engine monitor" in page and phead.startswith("HTTP/1.1 200")
    assert nhead.startswith("HTTP/1.1 404")

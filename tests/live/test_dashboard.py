"""The dashboard in a real browser: headless Chromium (Debian's package) shows live numbers.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``); CI installs it. The
test fails, loudly, if it is missing: the dashboard is a feature, not an extra.
"""

from __future__ import annotations

import asyncio
import re
import shutil

from shcr_sim.engine.mllp_server import ListenerConfig, MLLPListener
from shcr_sim.feeds.sender import FeedControl, SenderConfig, run_feed
from shcr_sim.monitor.heartbeat import HeartbeatTracker
from shcr_sim.monitor.http import MonitorHTTP
from shcr_sim.monitor.metrics import Monitor
from shcr_sim.monitor.probe import QueueProbe

from .helpers import stream

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def dump_dom(url: str, tmp_path) -> str:
    assert CHROMIUM, "headless Chromium is needed: apt-get install -y chromium"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=3000",
        "--dump-dom", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return out.decode()


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"#{element_id} not in the page"
    return m.group(1)


async def test_dashboard_shows_live_numbers_in_chromium(queue, tmp_path) -> None:
    probe = await QueueProbe.open(tmp_path / "engine.db")
    tracker = HeartbeatTracker(silent_after=30)
    tracker.expect(["RXA", "RXB"])  # RXB never beats: its alert must show
    monitor = Monitor(probe=probe, heartbeats=tracker)
    async with MLLPListener(queue.accept, ListenerConfig(port=0),
                            on_heartbeat=tracker.beat, on_accepted=monitor.on_accepted) as srv:
        monitor.listener_stats = srv.stats
        cfg = SenderConfig(port=srv.port, rate=0, heartbeat_interval=0.05, max_attempts=20,
                           application="PAS",
                           facility="RXA")
        control = FeedControl()
        feed = asyncio.create_task(run_feed(stream(7), cfg, control, linger=True))
        async with asyncio.timeout(5):
            while tracker.feeds["RXA"].count == 0 or srv.stats.feeds["RXA"].queued < 7:
                await asyncio.sleep(0.02)
        control.stopped.set()
        await feed
        tracker.started_at -= 60  # RXB has now been silent for a minute
        await monitor.tick()
        http = await MonitorHTTP(monitor).start(port=0)
        try:
            dom = await dump_dom(f"http://127.0.0.1:{http.port}/", tmp_path)
        finally:
            await http.close()
            await probe.close()
    assert text_of(dom, "accepted") == "7"
    assert text_of(dom, "live-depth") == "7"
    assert text_of(dom, "backload-depth") == "0"
    assert text_of(dom, "conn") == "live"
    row_a = re.search(r'<tr data-feed="RXA">(.*?)</tr>', dom, re.S)
    row_b = re.search(r'<tr data-feed="RXB">(.*?)</tr>', dom, re.S)
    assert row_a and "alive" in row_a.group(1) and "<td>7</td>" in row_a.group(1)
    assert row_b and "SILENT" in row_b.group(1)
    assert 'data-alert="heartbeat:RXB"' in dom
    assert "<polyline" in dom  # the charts were drawn from /status history


async def http_post(port: int, path: str, method: str = "POST") -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head, body


async def test_dashboard_controls_switch_a_feed_off_and_take_the_store_down(tmp_path) -> None:
    from shcr_sim.engine.live import LiveEngine, LiveOptions, StoreOutage
    from shcr_sim.feeds.sender import FeedControl

    outage = StoreOutage()
    feeds = {"RXA": FeedControl(), "RXB": FeedControl()}
    live = await LiveEngine.start(tmp_path / "e.db", None, LiveOptions(mllp_port=0, http_port=0),
                                  outage=outage, feeds=feeds)
    try:
        head, body = await http_post(live.http_port, "/action/silence?feed=RXA&on=1")
        assert head.startswith("HTTP/1.1 200") and feeds["RXA"].silent
        assert not feeds["RXB"].silent
        head, body = await http_post(live.http_port, "/action/store-outage?seconds=30")
        assert head.startswith("HTTP/1.1 200") and outage.active
        bad, _ = await http_post(live.http_port, "/action/silence?feed=NOPE")
        missing, _ = await http_post(live.http_port, "/action/reboot")
        assert bad.startswith("HTTP/1.1 400") and missing.startswith("HTTP/1.1 404")
        await live.monitor.tick()
        dom = await dump_dom(f"http://127.0.0.1:{live.http_port}/", tmp_path)
        _, metrics = await http_post(live.http_port, "/metrics", "GET")
        head, _ = await http_post(live.http_port, "/action/silence?feed=RXA&on=0")
        assert not feeds["RXA"].silent
        down_for = await live.engine.store.unavailable_for()  # the store's own switch
        head, _ = await http_post(live.http_port, "/action/store-outage?seconds=0")
        assert head.startswith("HTTP/1.1 200") and not outage.active
        back = await live.engine.store.unavailable_for()
    finally:
        await live.close()
    assert 'id="store-state"' in dom and "record store DOWN" in dom
    assert 'data-post="/action/store-outage?seconds=0"' in dom and 'id="store-refused"' in dom
    assert 25 < down_for <= 30 and back == 0.0
    down = re.search(r"^shcr_store_unavailable_seconds ([0-9.]+)$", metrics, re.M)
    assert down and 20 < float(down.group(1)) <= 30
    assert re.search(r"^shcr_store_writes_refused_total 0\.0$", metrics, re.M)
    assert 'data-post="/action/silence?feed=RXA&amp;on=0"' in dom  # RXA offers "resume"
    assert 'data-post="/action/silence?feed=RXB&amp;on=1"' in dom

"""The simulated trusts' sender against the real listener, with faults injected."""

from __future__ import annotations

import asyncio
from collections import Counter

from shcr_sim.engine.mllp_server import (
    ListenerConfig,
    ListenerFaults,
    MLLPListener,
    SenderPolicy,
)
from shcr_sim.feeds.sender import (
    FeedControl,
    MLLPSender,
    SenderConfig,
    heartbeat_message,
    run_feed,
)
from shcr_sim.hl7 import Message, parse

from .helpers import TRUSTS, MemorySink, adt, stream

POLICY = SenderPolicy(frozenset(TRUSTS))


def sender_config(port: int, **kw) -> SenderConfig:
    base = dict(port=port, rate=0, ack_timeout=0.5, backoff_initial=0.01, backoff_max=0.05,
                max_attempts=40,
                application="PAS", facility="RXA")
    base.update(kw)
    return SenderConfig(**base)


def assert_exactly_once(sink: MemorySink, expected: list[str]) -> None:
    """Every message queued exactly once, in the order sent; resends only as duplicates."""
    assert sink.control_ids("queued") == expected
    dups = Counter(sink.control_ids("duplicate"))
    assert set(dups) <= set(expected)


async def test_stream_is_delivered_in_order(sink: MemorySink) -> None:
    msgs = stream(30)
    async with MLLPListener(sink.accept, ListenerConfig(port=0, policy=POLICY)) as srv:
        report = await run_feed(msgs, sender_config(srv.port))
    assert report.delivered == 30 and report.resends == 0
    assert_exactly_once(sink, [f"M{i:06d}" for i in range(30)])
    assert set(report.codes.values()) == {"AA"}


async def test_steady_and_bursty_rates_deliver_everything(sink: MemorySink) -> None:
    async with MLLPListener(sink.accept, ListenerConfig(port=0, policy=POLICY)) as srv:
        steady = await run_feed(stream(10, prefix="S"), sender_config(srv.port, rate=500))
        bursty = await run_feed(stream(10, prefix="B"),
                                sender_config(srv.port, rate=500, pattern="bursty", burst=4))
    assert (steady.delivered, bursty.delivered) == (10, 10)
    assert len(sink.control_ids()) == 20


async def test_slow_acks_are_resent_and_deduplicated(sink: MemorySink) -> None:
    faults = ListenerFaults(ack_delay=0.3)
    cfg = ListenerConfig(port=0, policy=POLICY, faults=faults)
    async with MLLPListener(sink.accept, cfg) as srv:
        sender = MLLPSender(sender_config(srv.port, ack_timeout=0.1, max_attempts=3))
        first = await sender.deliver(adt("SLOW1"))
        faults.ack_delay = 0.0
        second = await sender.deliver(adt("SLOW2"))
        await sender.close()
    assert first == "" and sender.report.timeouts == 3  # never answered in time
    assert second == "AA"
    assert_exactly_once(sink, ["SLOW1", "SLOW2"])
    assert sink.control_ids("duplicate") == ["SLOW1", "SLOW1"]


async def test_dropped_acks_and_resets_lose_and_double_nothing(sink: MemorySink) -> None:
    faults = ListenerFaults(drop_ack_rate=0.2, reset_rate=0.2, seed=7)
    cfg = ListenerConfig(port=0, policy=POLICY, faults=faults)
    msgs = stream(40)
    async with MLLPListener(sink.accept, cfg) as srv:
        report = await run_feed(msgs, sender_config(srv.port, ack_timeout=0.2))
        injected = srv.stats.faults_injected
    assert injected > 0 and report.resends >= injected
    assert report.delivered == 40
    assert_exactly_once(sink, [f"M{i:06d}" for i in range(40)])
    assert len(sink.control_ids("duplicate")) == report.resends


async def test_connections_reset_mid_frame_lose_and_double_nothing(sink: MemorySink) -> None:
    faults = ListenerFaults(mid_frame_reset_rate=0.3, seed=3)
    cfg = ListenerConfig(port=0, policy=POLICY, faults=faults)
    msgs = stream(20)
    async with MLLPListener(sink.accept, cfg) as srv:
        report = await run_feed(msgs, sender_config(srv.port, ack_timeout=0.3))
        stats = srv.stats
    assert stats.reset_mid_frame > 0 and report.reconnects >= stats.reset_mid_frame
    assert report.delivered == 20
    assert_exactly_once(sink, [f"M{i:06d}" for i in range(20)])


async def test_sender_waits_for_a_listener_that_is_not_up_yet(sink: MemorySink) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()

    async def later() -> MLLPListener:
        await asyncio.sleep(0.2)
        return await MLLPListener(sink.accept, ListenerConfig(port=port, policy=POLICY)).start()

    starting = asyncio.create_task(later())
    report = await run_feed(stream(3), sender_config(port))
    srv = await starting
    await srv.close()
    assert report.delivered == 3 and report.reconnects >= 1
    assert len(sink.control_ids()) == 3


async def test_content_error_is_not_resent_and_reject_gives_up(sink: MemorySink) -> None:
    msgs = [adt("OK1"), "MSH|^~\\&|PAS|RXA|||20260101||ADT^A01|\rPID|1", adt("OK2"),
            adt("NO1", app="ROGUE", ods="RZZ")]
    async with MLLPListener(sink.accept, ListenerConfig(port=0, policy=POLICY)) as srv:
        report = await run_feed(msgs, sender_config(srv.port, max_attempts=3))
    assert (report.delivered, report.errors, report.rejected) == (2, 1, 1)
    assert report.codes["NO1"] == "AR"
    assert report.attempts == 1 + 1 + 1 + 3
    assert sink.control_ids() == ["OK1", "OK2"]
    assert [s for _, s in sink.rows].count("dead-lettered") == 1


async def test_heartbeats_flow_on_the_feed_connection(sink: MemorySink) -> None:
    beats: list[tuple[str, Message]] = []
    control = FeedControl()
    cfg = ListenerConfig(port=0, policy=POLICY)
    async with MLLPListener(sink.accept, cfg,
                            on_heartbeat=lambda f, m, at: beats.append((f, m))) as srv:
        task = asyncio.create_task(run_feed(
            stream(2), sender_config(srv.port, heartbeat_interval=0.05), control, linger=True))
        async with asyncio.timeout(5):
            while len(beats) < 3:
                await asyncio.sleep(0.02)
        control.stopped.set()
        report = await task
    assert report.delivered == 2
    assert report.heartbeat_acks >= 3
    feed, msg = beats[-1]
    assert feed == "RXA" and msg.message_type == "NMD^N02"
    assert msg["NST"].field(1) == "Y"
    assert sink.rows and all(parse(i.raw).message_type != "NMD^N02" for i, _ in sink.rows)


async def test_a_silent_feed_sends_nothing_until_it_returns(sink: MemorySink) -> None:
    beats: list[float] = []
    control = FeedControl(silent=True)
    async with MLLPListener(sink.accept, ListenerConfig(port=0, policy=POLICY),
                            on_heartbeat=lambda f, m, at: beats.append(at)) as srv:
        task = asyncio.create_task(run_feed(
            stream(3), sender_config(srv.port, heartbeat_interval=0.05), control))
        await asyncio.sleep(0.3)
        silent_rows, silent_beats = len(sink.rows), len(beats)
        control.silent = False
        report = await asyncio.wait_for(task, 5)
    assert (silent_rows, silent_beats) == (0, 0)
    assert report.delivered == 3


def test_heartbeat_message_is_a_valid_nmd_n02() -> None:
    msg = parse(heartbeat_message("PAS", "RXA", 12))
    assert msg.message_type == "NMD^N02"
    assert msg.control_id == "HBRXA00000012"
    assert msg.sender == ("PAS", "RXA")
    assert msg["NST"].field(3) == "I"

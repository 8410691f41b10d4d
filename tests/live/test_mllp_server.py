"""The MLLP listener: framing, batching, ACK codes and modes, limits, sink failures."""

from __future__ import annotations

import asyncio

from shcr_sim.engine.mllp_server import ListenerConfig, MLLPListener, SenderPolicy
from shcr_sim.hl7 import parse
from shcr_sim.hl7.mllp import MLLPDecoder, frame

from .helpers import TRUSTS, MemorySink, adt, stream

POLICY = SenderPolicy(frozenset(TRUSTS))


def listener(sink: MemorySink, **kw) -> MLLPListener:
    cfg = ListenerConfig(port=0, policy=kw.pop("policy", POLICY), **kw)
    return MLLPListener(sink.accept, cfg, **{k: v for k, v in kw.items() if k == "stats"})


async def read_acks(reader: asyncio.StreamReader, n: int, timeout: float = 5.0) -> list:
    decoder = MLLPDecoder()
    out: list = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            data = await reader.read(65536)
            assert data, "connection closed before all ACKs arrived"
            out.extend(parse(p) for p in decoder.feed(data))
    return out


async def exchange(port: int, messages: list[str | bytes], chunk: int = 0) -> list:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b"".join(frame(m if isinstance(m, bytes) else m.encode()) for m in messages)
    if chunk:
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
            await writer.drain()
            await asyncio.sleep(0)
    else:
        writer.write(data)
    await writer.drain()
    acks = await read_acks(reader, len(messages))
    writer.close()
    await writer.wait_closed()
    return acks


async def test_one_message_is_acknowledged_after_the_sink_returns(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        [ack] = await exchange(srv.port, [adt("C1")])
    assert ack.get("MSA-1") == "AA"
    assert ack.get("MSA-2") == "C1"
    assert ack.message_type.startswith("ACK")
    assert sink.control_ids() == ["C1"]


async def test_frames_split_across_reads_are_reassembled(sink: MemorySink) -> None:
    msgs = stream(3)
    async with listener(sink) as srv:
        acks = await exchange(srv.port, msgs, chunk=7)
    assert [a.get("MSA-2") for a in acks] == ["M000000", "M000001", "M000002"]
    assert {a.get("MSA-1") for a in acks} == {"AA"}
    assert sink.rows[0][0].raw == msgs[0]


async def test_frames_that_arrive_together_share_one_sink_call(sink: MemorySink) -> None:
    msgs = stream(50)
    async with listener(sink) as srv:
        acks = await exchange(srv.port, msgs)
    assert [a.get("MSA-2") for a in acks] == [f"M{i:06d}" for i in range(50)]
    assert len(sink.batches) < 5  # not one commit per message
    assert sum(len(b) for b in sink.batches) == 50


async def test_concurrent_senders_all_get_their_own_acks(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        results = await asyncio.gather(*(
            exchange(srv.port, stream(20, app=app, ods=ods, prefix=ods), chunk=50)
            for app, ods in sorted(TRUSTS)
        ))
    for (app, ods), acks in zip(sorted(TRUSTS), results, strict=True):
        assert [a.get("MSA-2") for a in acks] == [f"{ods}{i:06d}" for i in range(20)]
        assert all(a.get("MSA-1") == "AA" for a in acks)
        assert all(a.get("MSH-5") == app and a.get("MSH-6") == ods for a in acks)
    assert len(sink.control_ids()) == 60


async def test_unparsable_message_gets_ae_with_err_and_is_dead_lettered(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        acks = await exchange(srv.port, ["this is not HL7", adt("C2")])
    assert acks[0].get("MSA-1") == "AE"
    assert acks[0].segment("ERR") is not None
    assert acks[1].get("MSA-1") == "AA" and acks[1].get("MSA-2") == "C2"
    assert [s for _, s in sink.rows] == ["dead-lettered", "queued"]


async def test_dead_letter_reason_from_the_queue_names_the_field(queue) -> None:
    bad = adt("C3").replace("PID|1||9990000018^^^NHS^NH~MC3^^^RXA^PI|", "PID|1|||")
    async with MLLPListener(queue.accept, ListenerConfig(port=0)) as srv:
        [ack] = await exchange(srv.port, [bad])
    assert ack.get("MSA-1") == "AE"
    assert ack.get("MSA-2") == "C3"
    err = ack["ERR"]
    assert "PID" in err.raw
    assert (await queue.counts()) == {"dead-lettered": 1}


async def test_unknown_sender_is_refused_with_ar_and_not_queued(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        acks = await exchange(srv.port, [adt("X1", app="ROGUE", ods="RZZ"), adt("C4")])
        stats = srv.stats
    assert acks[0].get("MSA-1") == "AR"
    assert "not a configured trust" in acks[0].get_text("MSA-3")
    assert acks[1].get("MSA-1") == "AA"
    assert sink.control_ids() == ["C4"]
    assert stats.feeds["RZZ"].refused == 1


async def test_duplicate_is_acknowledged_and_counted(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        acks = await exchange(srv.port, [adt("C5"), adt("C5")])
        counters = srv.stats.feeds["RXA"]
    assert [a.get("MSA-1") for a in acks] == ["AA", "AA"]
    assert (counters.queued, counters.duplicate) == (1, 1)


async def test_enhanced_mode_answers_with_commit_acks(sink: MemorySink) -> None:
    enhanced = adt("E1", extra_msh="|||AL|NE")
    async with listener(sink) as srv:
        [ack] = await exchange(srv.port, [enhanced])
    assert ack.get("MSA-1") == "CA"
    assert ack.get("MSA-2") == "E1"


async def test_enhanced_mode_honours_msh15_conditions(sink: MemorySink) -> None:
    never = adt("E2", extra_msh="|||NE|NE")
    errors_only = adt("E3", extra_msh="|||ER|NE")
    refused_errors_only = adt("E4", app="ROGUE", ods="RZZ", extra_msh="|||ER|NE")
    always = adt("E5", extra_msh="|||AL|NE")
    async with listener(sink) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"".join(frame(m.encode())
                              for m in (never, errors_only, refused_errors_only, always)))
        # ACKs come back in order, so had E2 or E3 been answered they would come first
        acks = await read_acks(reader, 2)
        writer.close()
    assert [(a.get("MSA-2"), a.get("MSA-1")) for a in acks] == [("E4", "CR"), ("E5", "CA")]
    assert set(sink.control_ids()) == {"E2", "E3", "E5"}


async def test_forced_original_mode_ignores_msh15(sink: MemorySink) -> None:
    async with listener(sink, ack_mode="original") as srv:
        [ack] = await exchange(srv.port, [adt("E7", extra_msh="|||NE|NE")])
    assert ack.get("MSA-1") == "AA"


async def test_oversize_message_is_refused_and_the_next_one_flows(sink: MemorySink) -> None:
    big = adt("BIG") + "NTE|1||" + "x" * 5000 + "\r"
    async with listener(sink, max_message_bytes=2000) as srv:
        acks = await exchange(srv.port, [big, adt("C6")], chunk=1000)
        counters = srv.stats.feeds["RXA"]
    assert acks[0].get("MSA-1") == "AR" and acks[0].get("MSA-2") == "BIG"
    assert "maximum size" in acks[0].get_text("MSA-3")
    assert acks[1].get("MSA-1") == "AA" and acks[1].get("MSA-2") == "C6"
    assert sink.control_ids() == ["C6"]
    assert counters.oversize == 1


async def test_idle_connection_is_closed(sink: MemorySink) -> None:
    async with listener(sink, idle_timeout=0.2) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        async with asyncio.timeout(5):
            assert await reader.read(100) == b""  # the server hung up
        writer.close()
        assert srv.stats.idle_closed == 1


async def test_sink_failure_answers_ar_and_a_resend_later_succeeds(sink: MemorySink) -> None:
    sink.down = True
    async with listener(sink) as srv:
        [first] = await exchange(srv.port, [adt("C7")])
        sink.down = False
        [second] = await exchange(srv.port, [adt("C7")])
    assert first.get("MSA-1") == "AR" and "unavailable" in first.get_text("MSA-3")
    assert second.get("MSA-1") == "AA"
    assert sink.control_ids() == ["C7"]


async def test_connection_reset_mid_frame_loses_nothing_acknowledged(sink: MemorySink) -> None:
    async with listener(sink) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(frame(adt("C8").encode()) + frame(adt("C9").encode())[:40])
        [ack] = await read_acks(reader, 1)
        writer.transport.abort()  # reset with half a frame on the wire
        await asyncio.sleep(0.05)
        [again] = await exchange(srv.port, [adt("C9")])
    assert ack.get("MSA-2") == "C8"
    assert again.get("MSA-1") == "AA"
    assert sink.control_ids() == ["C8", "C9"]


async def test_ack_only_once_durable_in_the_real_queue(queue) -> None:
    async with MLLPListener(queue.accept, ListenerConfig(port=0)) as srv:
        acks = await exchange(srv.port, stream(10))
    assert {a.get("MSA-1") for a in acks} == {"AA"}
    assert (await queue.counts()) == {"queued": 10}


async def test_heartbeat_is_answered_reported_and_not_queued(sink: MemorySink) -> None:
    seen: list[str] = []
    hb = ("MSH|^~\\&|PAS|RXA|SHCR-CIE|SHCR|20260101120000.000+0000||NMD^N02^NMD_N02|HB1|P|2.4\r"
          "NST|Y|PAS|I\r")
    cfg = ListenerConfig(port=0, policy=POLICY)
    async with MLLPListener(sink.accept, cfg,
                            on_heartbeat=lambda feed, msg, at: seen.append(feed)) as srv:
        [ack] = await exchange(srv.port, [hb])
    assert ack.get("MSA-1") == "AA" and ack.get("MSA-2") == "HB1"
    assert seen == ["RXA"]
    assert sink.rows == []


async def test_a_burst_of_malformed_frames_is_answered_and_the_rest_flows(queue) -> None:
    good = stream(10)
    burst: list[str] = []
    for i, msg in enumerate(good):
        burst.append(msg)
        burst.append(f"garbage {i}" if i % 2 else "MSH|^~\\&|PAS|RXA|||20260101||ADT^A01|\r")
    async with MLLPListener(queue.accept, ListenerConfig(port=0)) as srv:
        acks = await exchange(srv.port, burst)
    codes = [a.get("MSA-1") for a in acks]
    assert codes == ["AA", "AE"] * 10
    assert [a.get("MSA-2") for a in acks[::2]] == [f"M{i:06d}" for i in range(10)]
    assert all(a.segment("ERR") is not None for a in acks[1::2])
    assert await queue.counts() == {"queued": 10, "dead-lettered": 10}

"""Interop with MLLP code nobody here wrote: python-hl7's client, hl7apy's server."""

from __future__ import annotations

import asyncio
import threading

import hl7
import hl7.mllp
from hl7apy.core import Message as ApyMessage
from hl7apy.mllp import AbstractHandler, MLLPServer

from shcr_sim.engine.mllp_server import ListenerConfig, MLLPListener, SenderPolicy
from shcr_sim.feeds.sender import SenderConfig, run_feed

from .helpers import TRUSTS, MemorySink, adt, stream


async def test_python_hl7_client_gets_correct_acks(sink: MemorySink) -> None:
    cfg = ListenerConfig(port=0, policy=SenderPolicy(frozenset(TRUSTS)))
    async with MLLPListener(sink.accept, cfg) as srv:
        reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", srv.port)
        answers = []
        for text in (adt("PY1"), adt("PY2", app="ROGUE", ods="RZZ"), "NOT HL7", adt("PY1")):
            writer.writemessage(hl7.parse(text) if text.startswith("MSH") else text)
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readmessage(), 5))
        writer.close()
        await writer.wait_closed()
    codes = [(str(a.segment("MSA")[1]), str(a.segment("MSA")[2])) for a in answers]
    assert codes == [("AA", "PY1"), ("AR", "PY2"), ("AE", ""), ("AA", "PY1")]
    assert str(answers[0].segment("MSH")[9][0][0]) == "ACK"
    assert sink.control_ids() == ["PY1"] and sink.control_ids("duplicate") == ["PY1"]


received: list[str] = []


class _AckHandler(AbstractHandler):
    """hl7apy-built ACK for whatever arrives (hl7apy closes the link after each reply)."""

    def reply(self) -> str:
        received.append(self.incoming_message)
        control = self.incoming_message.split("\r")[0].split("|")[9]
        ack = ApyMessage("ACK", version="2.4")
        ack.msh.msh_3 = "APY"
        ack.msh.msh_4 = "APY"
        ack.msh.msh_10 = "A" + control
        ack.msa.msa_1 = "AA"
        ack.msa.msa_2 = control
        return "\x0b" + ack.to_er7() + "\x1c\r"


async def test_our_sender_delivers_to_hl7apy_mllp_server() -> None:
    received.clear()
    handlers = {"ADT^A01^ADT_A01": (_AckHandler,), "NMD^N02^NMD_N02": (_AckHandler,)}
    server = MLLPServer("127.0.0.1", 0, handlers, timeout=5)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        cfg = SenderConfig(port=port, rate=0, ack_timeout=2, backoff_initial=0.01, max_attempts=10,
                           application="PAS", facility="RXA")
        report = await run_feed(stream(5), cfg)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert report.delivered == 5
    assert [m.split("\r")[0].split("|")[9] for m in received] == [f"M{i:06d}" for i in range(5)]

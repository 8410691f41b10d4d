"""The release loop applies what another connection (an MLLP listener) queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine_helpers import adt

from shcr_sim.engine.convert import TrustInfo
from shcr_sim.engine.pipeline import Engine
from shcr_sim.engine.queue import DurableQueue, Inbound
from shcr_sim.engine.runner import release_forever


async def test_release_loop_applies_live_and_backload(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    engine = await Engine.open(db, [TrustInfo("PAS", "RXX01", "itk-acute", "T")])
    stop = asyncio.Event()
    task = asyncio.create_task(release_forever(engine, stop, idle_sleep=0.01))
    listener = await DurableQueue.open(db)  # a second connection, like the MLLP listener
    out = await listener.accept([
        Inbound(adt("1", "20240101120000+0000", family="LIVE"), "live", "mllp"),
        Inbound(adt("0", "20231201120000+0000", family="BACK"), "backload", "file"),
        Inbound(adt("x", "20240101120000+0000", app="ROGUE"), "live", "mllp"),
    ])
    assert [a.status for a in out] == ["queued", "queued", "dead-lettered"]
    for _ in range(500):
        if (await listener.counts()).get("applied") == 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert await listener.counts() == {"applied": 2, "dead-lettered": 1}
    patient = await engine.store.current("Patient", "RXX01-M123")
    assert patient is not None and patient["name"][0]["family"] == "LIVE"
    await listener.close()
    await engine.close()

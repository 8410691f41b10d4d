"""The record store unavailable: a real engine behaviour, injected at the store boundary.

Two engines on one database stand for the live engine and the backload replay
(which runs in its own process): the outage switch set through one store refuses
the other's writes too; the refused batch waits as ``released`` and is retried with
back-off; the queue keeps accepting; when the store is back everything drains and
the reconciliation adds up.
"""

from __future__ import annotations

import asyncio

from shcr_sim.engine.convert import TrustInfo
from shcr_sim.engine.live import StoreOutage
from shcr_sim.engine.pipeline import Engine
from shcr_sim.engine.queue import DurableQueue, Inbound
from shcr_sim.engine.reconcile import reconcile

from .helpers import adt, nhs_numbers

TRUSTS = [TrustInfo("PAS", "RXA", "itk-acute", "Test Acute Trust")]


def stream(n: int, prefix: str = "M") -> list[str]:
    """Patient updates (A08: no visit needed) for n different patients."""
    numbers = nhs_numbers()
    return [adt(f"{prefix}{i:06d}", nhs=next(numbers), trigger="A08") for i in range(n)]


async def test_an_unavailable_store_holds_the_batch_then_everything_drains(tmp_path) -> None:
    db = tmp_path / "engine.db"
    live = await Engine.open(db, TRUSTS)
    backload = await Engine.open(db, TRUSTS)
    inbound = await DurableQueue.open(db)
    backload.store_retry = (0.01, 0.05)
    outage = StoreOutage(store=live.store)
    try:
        first = await backload.queue.accept([Inbound(m, "backload") for m in stream(30)])
        await outage.start(60)
        release = asyncio.create_task(backload.release("backload", 20))
        async with asyncio.timeout(10):
            while backload.stats.store_refused < 3:  # refused, retried, refused again
                await asyncio.sleep(0.01)
        states_while_down = await backload.queue.counts()
        stored_while_down = await backload.store.count()
        # the listener's queue connection keeps accepting while the store is down
        more = await inbound.accept([Inbound(m) for m in stream(10, prefix="L")])
        assert not release.done()
        await outage.end()
        assert await asyncio.wait_for(release, 10) == 20
        drained = await backload.drain("backload") + await live.drain("live")
        recon = await reconcile(live.queue.conn)
        stored = await live.store.count()
    finally:
        for closing in (live, backload, inbound):
            await closing.close()
    assert [a.status for a in first + more] == ["queued"] * 40
    assert states_while_down == {"released": 20, "queued": 10}  # nothing lost, nothing applied
    assert stored_while_down == 0 and stored > 0
    assert drained == 20
    assert recon.ok and recon.total.accepted == 40 and recon.total.applied == 40


async def test_an_outage_ends_by_itself(tmp_path) -> None:
    engine = await Engine.open(tmp_path / "engine.db", TRUSTS)
    engine.store_retry = (0.01, 0.05)
    outage = StoreOutage(store=engine.store)
    try:
        await engine.queue.accept([Inbound(m) for m in stream(5)])
        await outage.start(0.3)
        assert outage.active and 0 < await engine.store.unavailable_for() <= 0.3
        assert await asyncio.wait_for(engine.release("live", 10), 10) == 5
        refused = engine.stats.store_refused
        counts = await engine.queue.counts()
    finally:
        await engine.close()
    assert refused > 0 and counts == {"applied": 5}
    assert not outage.active

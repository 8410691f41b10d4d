"""Live latency counts a re-applied message's first store write (``liverun``)."""

from __future__ import annotations

import time

import pytest

from shcr_sim.engine.liverun import REAPPLIED_AFTER_S, seconds_to_first_application
from shcr_sim.store.base import Write
from shcr_sim.store.sqlite import SqliteStore


def _obs(i: int, value: str = "first") -> dict:
    return {"resourceType": "Observation", "id": f"obs-{i}", "status": "final",
            "code": {"text": "test"}, "valueString": value}


async def test_slow_messages_count_their_first_store_write(tmp_path) -> None:
    db = tmp_path / "record.db"
    store = await SqliteStore.open(db)
    # more slow messages than one look-up of a few hundred ids would cover
    ids = [f"LAB|RX1|{i}" for i in range(1_200)]
    before = time.time()
    await store.apply([Write(_obs(i), f"2026{i:08d}", "20260101", mid, "nhs:9990000018")
                       for i, mid in enumerate(ids)])
    after = time.time() + 0.002  # the stored time is rounded to the millisecond
    # a later version from a later message: the first write of each message still counts
    await store.apply([Write(_obs(0, "changed"), "2027", "20270101", "LAB|RX1|later",
                             "nhs:9990000018")])
    await store.close()

    received = before - 10
    reapplied = [(mid, received, after + 100) for mid in ids]  # queue time moved later
    rows = [*reapplied,
            ("LAB|RX1|0", received, after + 1),  # slow, but applied at its first write
            ("LAB|RX1|unknown", received, after + 100),  # slow, never in the record
            ("LAB|RX1|1", received + 9.9, after + 0.5)]  # fast: not looked up
    seconds = seconds_to_first_application(db, rows)

    assert len(seconds) == len(rows)
    for s in seconds[: len(ids)]:  # each counts its first write, not the moved time
        assert before - received - 0.002 <= s <= after - received
    assert seconds[len(ids)] == pytest.approx(after + 1 - received)
    assert seconds[len(ids) + 1] == pytest.approx(after + 100 - received)
    assert seconds[len(ids) + 2] == pytest.approx(after + 0.5 - received - 9.9)
    assert REAPPLIED_AFTER_S < 100


def test_no_slow_messages_needs_no_record(tmp_path) -> None:
    missing = tmp_path / "no-such.db"
    assert seconds_to_first_application(missing, [("a", 1.0, 1.5)]) == [0.5]
    assert not missing.exists()

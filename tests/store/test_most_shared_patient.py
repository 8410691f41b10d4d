"""Picking the patient whose record is shared by the most trusts (the demo's example)."""

from __future__ import annotations

from pathlib import Path

from shcr_sim.nhs_number import SYSTEM
from shcr_sim.store import SqliteStore, Write
from shcr_sim.store.record import most_shared_patient


def _patient(pid: str, nhs: str) -> Write:
    res = {"resourceType": "Patient", "id": pid, "identifier": [{"system": SYSTEM, "value": nhs}]}
    return Write(res, "0001", "20240101", f"m-{pid}", f"Patient/{pid}")


def _encounter(eid: str, pid: str) -> Write:
    res = {"resourceType": "Encounter", "id": eid, "subject": {"reference": f"Patient/{pid}"}}
    return Write(res, "0001", "20240101", f"m-{eid}", f"Patient/{pid}")


async def test_most_trusts_first_then_most_resources(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "s.db")
    try:
        assert await most_shared_patient(store) is None
        await store.apply([
            _patient("a1", "9990000018"), _patient("a2", "9990000018"),  # two trusts
            _patient("b1", "9990000026"), _patient("b2", "9990000026"),  # two trusts,
            _encounter("e1", "b1"), _encounter("e2", "b2"),              # more resources
            _patient("c1", "9990000034"), _encounter("e3", "c1"), _encounter("e4", "c1"),
            _encounter("e5", "c1"),  # one trust, however many resources
        ])
        assert await most_shared_patient(store) == "9990000026"
        await store.apply([_patient("a3", "9990000018")])  # a third trust
        assert await most_shared_patient(store) == "9990000018"
    finally:
        await store.close()

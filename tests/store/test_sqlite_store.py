"""SqliteStore: versions, the older-event guard, idempotency, indexes."""

from __future__ import annotations

from pathlib import Path

from shcr_sim.store import SqliteStore, Write, strip_meta

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def patient(family: str) -> dict:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": family}],
            "identifier": [{"system": NHS, "value": "9990000018"}]}


def w(res: dict, key: str, mid: str) -> Write:
    return Write(res, key, key, mid, "nhs:9990000018")


async def test_versions_and_guard(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    r1 = await s.apply([w(patient("A"), "0002", "m2")])
    assert (r1.created, r1.updated) == (1, 0)
    # an older event arrives later: history only, never current
    r2 = await s.apply([w(patient("Old"), "0001", "m1")])
    assert r2.history_only == 1
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["name"][0]["family"] == "A"
    assert cur["meta"]["versionId"] == "1"
    # a newer event becomes current
    r3 = await s.apply([w(patient("B"), "0003", "m3")])
    assert r3.updated == 1
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["name"][0]["family"] == "B" and cur["meta"]["versionId"] == "3"
    hist = await s.history("Patient", "p1")
    assert [(h.version, h.current, h.message_id) for h in hist] == [
        (1, True, "m2"), (2, False, "m1"), (3, True, "m3")]
    await s.close()


async def test_idempotent_writes(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    batch = [w(patient("A"), "0002", "m2"), w(patient("Old"), "0001", "m1")]
    await s.apply(batch)
    again = await s.apply(batch + batch)
    assert again.unchanged == 4 and again.created == again.updated == again.history_only == 0
    assert len(await s.history("Patient", "p1")) == 2
    await s.close()


async def test_same_content_newer_event_moves_guard(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    await s.apply([w(patient("X"), "0001", "m1")])
    await s.apply([w(patient("X"), "0003", "m3")])  # same content, newer: no new version
    await s.apply([w(patient("Y"), "0002", "m2")])  # older than 0003: history only
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["name"][0]["family"] == "X"
    assert len(await s.history("Patient", "p1")) == 2
    await s.close()


async def test_indexes(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished",
           "identifier": [{"system": NHS, "value": "9990000018"}]}  # as if a sender did so
    await s.apply([w(patient("A"), "0001", "m1"), w(enc, "0001", "m1")])
    found = await s.patients_by_identifier(NHS, "9990000018")
    assert [r["id"] for r in found] == ["p1"]
    async with s.conn.execute("SELECT rkey FROM identifier_index") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["Patient/p1"]  # Patients' only
    # a database written before: other types' identifiers were indexed too
    await s.conn.execute("INSERT INTO identifier_index VALUES(?, 'Encounter/e1')",
                         (f"{NHS}|9990000018",))
    await s.conn.commit()
    assert [r["id"] for r in await s.patients_by_identifier(NHS, "9990000018")] == ["p1"]
    mine = await s.by_patient("nhs:9990000018")
    assert sorted(r["resourceType"] for r in mine) == ["Encounter", "Patient"]
    assert strip_meta(mine[0]) == strip_meta(mine[0]) and "meta" not in strip_meta(mine[0])
    assert [r["id"] async for r in s.iter_current()] == ["e1", "p1"]
    assert await s.count() == 2
    await s.close()

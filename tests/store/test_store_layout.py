"""Each version's JSON is on disk once, and history still reads every version whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shcr_sim.store import SqliteStore, Write, content_hash, prepare, strip_meta


def patient(family: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": family}], **extra}


async def test_history_reads_whole_versions_with_json_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    await s.apply([Write(patient("A"), "0001", "e1", "m1")])
    await s.apply([Write(patient("Old"), "0000", "e0", "m0")])  # history only
    await s.apply([Write(patient("B"), "0002", "e2", "m2"),  # current, then superseded
                   Write(patient("C"), "0003", "e3", "m3")])  # in the same batch
    hist = await s.history("Patient", "p1")
    assert [strip_meta(h.resource)["name"][0]["family"] for h in hist] == ["A", "Old", "B", "C"]
    assert [h.resource["meta"]["versionId"] for h in hist] == ["1", "2", "3", "4"]
    await s.close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT version, json IS NULL FROM resource_history "
                            "WHERE rkey='Patient/p1' ORDER BY version").fetchall()
    assert rows == [(1, 0), (2, 0), (3, 0), (4, 1)]  # only the current one lives in resource


def test_prepared_hash_is_the_content_hash_and_other_meta_is_kept() -> None:
    res = patient("A", meta={"versionId": "9", "lastUpdated": "x", "profile": ["urn:p"]})
    p = prepare(res, "k", "e", "m")
    assert p.hash == content_hash(res) and p.meta == {"profile": ["urn:p"]}
    assert p.rkey == "Patient/p1" and p.idents == ()


async def test_other_meta_survives_the_store(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "s.db")
    await s.apply([Write(patient("A", meta={"profile": ["urn:p"]}), "0001", "e", "m1")])
    cur = await s.current("Patient", "p1")
    assert cur is not None and cur["meta"]["profile"] == ["urn:p"]
    assert cur["meta"]["versionId"] == "1"
    assert await s.counts_by_type() == {"Patient": 1}
    await s.close()

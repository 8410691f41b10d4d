"""The store keeps resource JSON compressed with a dictionary the database itself holds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import orjson
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.store import SqliteStore, Write
from shcr_sim.store.compress import Unpacker, dictionary, pack, resource_from, shipped_unpacker


def patient(i: int, family: str = "Smith") -> dict:
    return {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": family}],
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                            "value": f"999{i:07d}"}]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                               max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_any_json_object_comes_back_byte_for_byte(obj: dict) -> None:
    body = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    blob = pack(body)
    assert blob[:1] != b"{"  # a zstd frame, never mistaken for plain JSON
    assert shipped_unpacker().json(blob) == body


async def test_rows_hold_compressed_json_without_store_meta(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    await s.apply([Write(patient(i), f"{i:04d}", "e", f"m{i}") for i in range(50)])
    got = await s.current("Patient", "p7")
    await s.close()
    assert got is not None and got["meta"]["versionId"] == "1" and got["name"][0]["family"]
    with sqlite3.connect(db) as conn:
        blobs = [b for (b,) in conn.execute("SELECT json FROM resource")]
        held = dict(conn.execute("SELECT dict_id, data FROM store_dictionary"))
    assert held == {dictionary().dict_id(): dictionary().as_bytes()}
    plain = [len(orjson.dumps(patient(i), option=orjson.OPT_SORT_KEYS)) for i in range(50)]
    assert sum(map(len, blobs)) * 2 < sum(plain)
    stored = json.loads(Unpacker(held).json(blobs[0]))
    assert "meta" not in stored  # version and time are the row's columns


async def test_plain_json_written_by_an_earlier_release_reads_the_same(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    await s.apply([Write(patient(1, "New"), "0001", "e", "m1")])
    await s.close()
    old = {"meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000Z"},
           **patient(1, "Old")}
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE resource SET json=? WHERE rkey='Patient/p1'", (json.dumps(old),))
    s = await SqliteStore.open(db)
    assert await s.current("Patient", "p1") == old
    assert [v.resource for v in await s.history("Patient", "p1")] == [old]
    await s.close()


async def test_a_database_keeps_reading_an_earlier_dictionary(tmp_path: Path) -> None:
    """Rows compressed with a dictionary this release does not ship still read."""
    samples = [orjson.dumps({**patient(i), "gender": "female", "n": i}) for i in range(400)]
    other = zstandard.train_dictionary(2048, samples, dict_id=12345)
    body = orjson.dumps(patient(1, "Earlier"), option=orjson.OPT_SORT_KEYS)
    blob = zstandard.ZstdCompressor(dict_data=other).compress(body)
    db = tmp_path / "s.db"
    s = await SqliteStore.open(db)
    await s.apply([Write(patient(1), "0001", "e", "m1")])
    await s.close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO store_dictionary VALUES(?, ?)", (12345, other.as_bytes()))
        conn.execute("UPDATE resource SET json=? WHERE rkey='Patient/p1'", (blob,))
    s = await SqliteStore.open(db)
    got = await s.current("Patient", "p1")
    await s.close()
    assert got is not None and got["name"] == [{"family": "Earlier"}]
    with pytest.raises(LookupError, match="dictionary 12345"):
        shipped_unpacker().json(blob)


def test_store_meta_is_merged_into_other_meta_and_leads_otherwise() -> None:
    plain = resource_from(patient(1), 3, "T")
    assert list(plain)[0] == "meta" and plain["meta"] == {"versionId": "3", "lastUpdated": "T"}
    tagged = resource_from({**patient(1), "meta": {"profile": ["urn:p"]}}, 4, "U")
    assert tagged["meta"] == {"profile": ["urn:p"], "versionId": "4", "lastUpdated": "U"}

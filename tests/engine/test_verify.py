"""verify rebuilds each patient's journey on its own: a tampered store is caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from engine_helpers import adt, cli, replay_json, stored_json, write_messages, write_scenario
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.engine import verify as verify_module
from shcr_sim.engine.commands import every_few_seconds
from shcr_sim.engine.verify import (
    EXPECTED_SCHEMA,
    INSERT_EXPECTED,
    StoreChanged,
    merge_index,
    merged_at,
    verify,
)
from shcr_sim.store import SqliteStore
from shcr_sim.store.base import NotAStore


def _replayed(tmp_path: Path) -> tuple[Path, Path]:
    scen = write_scenario(tmp_path / "s.toml")
    src = write_messages(tmp_path / "x/backload/adt.hl7", [  # newest first on purpose
        adt("3", "20240301120000+0000", mtype="ADT^A08", family="NEWEST"),
        adt("1", "20240101120000+0000", mtype="ADT^A01", family="OLDEST", visit="V1"),
        adt("2", "20240201120000+0000", mtype="ADT^A08", family="MIDDLE"),
        adt("4", "20240105120000+0000", mtype="ADT^A28", nhs="9990000026", mrn="Q7",
            family="OTHER"),
    ])
    db = tmp_path / "db.sqlite"
    assert replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(scen))["ok"]
    return db, src.parents[1]


def _verify(db: Path, src: Path) -> tuple[int, dict]:
    out = cli("verify", "--json", "--db", str(db), str(src), check=False)
    return out.returncode, json.loads(out.stdout)


def test_verify_clean_then_catches_an_older_version_made_current(tmp_path: Path) -> None:
    db, src = _replayed(tmp_path)
    code, report = _verify(db, src)
    assert code == 0 and report["ok"] and report["patients"] == 2
    with sqlite3.connect(db) as conn:  # put the OLDEST version back as current
        old = conn.execute("SELECT json FROM resource_history WHERE rkey='Patient/RXX01-M123' "
                           "AND message_id='PAS|RXX01|1'").fetchone()[0]
        conn.execute("UPDATE resource SET json=? WHERE rkey='Patient/RXX01-M123'", (old,))
    code, report = _verify(db, src)
    assert code != 0 and not report["ok"]
    diffs = {d["resource"]: d for d in report["differences"]}
    assert diffs["Patient/RXX01-M123"]["kind"] == "differs"
    assert any(p.startswith("name") for p in diffs["Patient/RXX01-M123"]["paths"])
    assert len(diffs) == 1


def test_verify_catches_deleted_and_extra_resources(tmp_path: Path) -> None:
    db, src = _replayed(tmp_path)
    with sqlite3.connect(db) as conn:
        enc = conn.execute("SELECT rkey FROM resource WHERE rtype='Encounter'").fetchone()[0]
        conn.execute("DELETE FROM resource WHERE rkey=?", (enc,))
        row = conn.execute("SELECT json FROM resource WHERE rkey='Patient/RXX01-Q7'").fetchone()
        extra = json.loads(stored_json(conn).json(row[0]))  # written back plain: still read
        extra["id"] = "INVENTED"
        conn.execute("INSERT INTO resource(rkey, rtype, rid, version, max_version, "
                     "last_updated, event_time, order_key, message_id, patient_key, hash, json, "
                     "v_event_time, v_order_key, v_message_id) "
                     "SELECT 'Patient/INVENTED', rtype, 'INVENTED', version, max_version, "
                     "last_updated, event_time, order_key, message_id, patient_key, hash, ?, "
                     "v_event_time, v_order_key, v_message_id "
                     "FROM resource WHERE rkey='Patient/RXX01-Q7'",
                     (json.dumps(extra),))
    code, report = _verify(db, src)
    assert code != 0
    kinds = {d["resource"]: d["kind"] for d in report["differences"]}
    assert kinds == {enc: "missing", "Patient/INVENTED": "unexpected"}


def _rows_in_reverse_key_order(db: Path) -> None:
    """The store's table written again so that its row order is the reverse of key
    order: a comparison that walks one order and looks up the other is caught."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TEMP TABLE copy AS SELECT * FROM resource")
        conn.execute("DELETE FROM resource")
        conn.execute("INSERT INTO resource SELECT * FROM copy ORDER BY rkey DESC")


def test_verify_compares_in_the_stores_row_order_and_reports_in_key_order(
        tmp_path: Path) -> None:
    db, src = _replayed(tmp_path)
    _rows_in_reverse_key_order(db)
    code, report = _verify(db, src)
    assert code == 0 and report["ok"]
    with sqlite3.connect(db) as conn:
        keys = [k for (k,) in conn.execute("SELECT rkey FROM resource ORDER BY rowid")]
        assert keys == sorted(keys, reverse=True) and len(keys) >= 4
        first, middle, last = keys[0], keys[len(keys) // 2], keys[-1]
        conn.execute("DELETE FROM resource WHERE rkey=?", (middle,))  # missing
        # the last row's content moved to the first row's key: it differs
        conn.execute("UPDATE resource SET json=(SELECT json FROM resource WHERE rkey=?) "
                     "WHERE rkey=?", (last, first))
        conn.execute("UPDATE resource SET rkey='AAA/INVENTED' WHERE rkey=?", (last,))
    code, report = _verify(db, src)
    assert code != 0
    kinds = [(d["resource"], d["kind"]) for d in report["differences"]]
    assert kinds == sorted([(middle, "missing"), (first, "differs"), (last, "missing"),
                            ("AAA/INVENTED", "unexpected")])


async def test_the_store_is_read_front_to_back_and_looked_up_by_its_key_index(
        tmp_path: Path) -> None:
    """The statements' plans: the comparison scans the table (no index: its own order),
    and each expected row finds its store row through the key index alone."""
    db, _src = _replayed(tmp_path)
    _rows_in_reverse_key_order(db)
    store = await SqliteStore.open_for_reading(db)
    seen: list[str] = []
    await store.conn.set_trace_callback(seen.append)
    try:
        rows = [r async for r in store.iter_stored()]
    finally:
        await store.close()
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    scan = next(sql for sql in seen if "FROM resource" in sql)
    with sqlite3.connect(db) as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {scan}"))
        assert plan == "SCAN resource", plan
    with sqlite3.connect(":memory:") as conn:  # verify's scratch table, the store attached
        conn.executescript(EXPECTED_SCHEMA)
        conn.execute("ATTACH DATABASE ? AS store", (str(db),))
        plan = " ".join(str(r[-1]) for r in conn.execute(
            f"EXPLAIN QUERY PLAN {INSERT_EXPECTED}", ("Patient/X", "0", b"")))
        assert plan.endswith(
            "SEARCH store.resource USING COVERING INDEX sqlite_autoindex_resource_1 (rkey=?)"
        ), plan


async def test_verify_refuses_a_store_written_to_while_it_ran(tmp_path: Path) -> None:
    """Each expected row is matched to its store row early; a write in between (an engine
    still running, a VACUUM renumbering rows) would make the comparison wrong."""
    db, src = _replayed(tmp_path)
    written = []

    def write_once(phase: str, n: int) -> None:
        if phase == "converted" and not written:
            with sqlite3.connect(db) as conn:
                written.append(conn.execute("DELETE FROM resource WHERE rtype='Encounter'"))
    with pytest.raises(StoreChanged, match="written to while verify ran"):
        await verify(db, [src], workers=0, progress=write_once)
    assert written
    out = cli("verify", "--db", str(db), str(src), check=False)  # now still: it runs
    assert out.returncode == 1 and "missing" in out.stdout


def _plain_merged_at(merges: list[tuple[str, str, str]], pos: str) -> dict[str, str]:
    """The rule as written out plainly: every merge so far, each survivor walked on."""
    direct = {old: surv for at, old, surv in sorted(merges) if at <= pos and old != surv}
    out = {}
    for old, target in direct.items():
        hops = 0
        while target in direct and hops < 50:
            target, hops = direct[target], hops + 1
        if target != old:
            out[old] = target
    return out


_ids = st.sampled_from("abcde")
_positions = st.text("0123", min_size=1, max_size=3)


@given(st.lists(st.tuples(_positions, _ids, _ids), max_size=12), _positions)
def test_the_indexed_merge_lookup_is_the_plain_rule(merges: list, pos: str) -> None:
    """Chains, cycles, undone merges and same-position merges included."""
    first = min(merges)[0] if merges else None
    got = merged_at(merge_index(merges), first, pos)
    want = _plain_merged_at(merges, pos)
    assert (dict(got) if got is not None else {}) == want
    assert all((got or {}).get(k) == want.get(k) for k in "abcde")


async def test_workers_and_one_process_find_the_same_differences(tmp_path: Path) -> None:
    db, src = _replayed(tmp_path)
    clean = await verify(db, [src], workers=2)
    assert clean.ok and clean.resources > 0
    with sqlite3.connect(db) as conn:  # an older version made current, one resource deleted
        old = conn.execute("SELECT json FROM resource_history WHERE rkey='Patient/RXX01-M123' "
                           "AND message_id='PAS|RXX01|1'").fetchone()[0]
        conn.execute("UPDATE resource SET json=? WHERE rkey='Patient/RXX01-M123'", (old,))
        conn.execute("DELETE FROM resource WHERE rtype='Encounter'")
    found = [await verify(db, [src], workers=n) for n in (0, 2)]
    kinds = [{d.rkey: d.kind for d in r.differences} for r in found]
    assert kinds[0] == kinds[1] and kinds[0]["Patient/RXX01-M123"] == "differs"
    assert "missing" in kinds[0].values()
    assert found[0].resources == found[1].resources == clean.resources


async def test_verify_reports_progress_through_each_pass(tmp_path: Path) -> None:
    db, src = _replayed(tmp_path)
    seen: list[tuple[str, int]] = []
    result = await verify(db, [src], workers=0, progress=lambda p, n: seen.append((p, n)))
    phases = list(dict.fromkeys(p for p, _ in seen))
    assert phases == ["read", "converted", "compared"]
    assert max(n for p, n in seen if p == "read") == result.messages == 4
    assert max(n for p, n in seen if p == "converted") == 4
    assert seen[-1] == ("compared", result.resources)
    # in one process, the converter and zones it set up are not left behind
    assert verify_module._worker is None and verify_module._zones is None


def test_the_progress_lines_name_the_pass_and_its_count(capsys) -> None:
    show = every_few_seconds(interval=0.0)
    show("read", 1_234_000)
    show("compared", 5)
    assert capsys.readouterr().err.splitlines() == [
        "verify: read 1,234,000 messages", "verify: compared 5 resources"]
    quiet = every_few_seconds(interval=3600.0)
    quiet("read", 1)
    assert capsys.readouterr().err == ""


async def test_saved_trusts_reads_without_creating_or_writing(tmp_path: Path,
                                                              connection_threads) -> None:
    """A missing path stays missing, a file no engine wrote keeps its tables, a file
    that is not a database is named (and its connection closed), and a replayed
    database gives back the trusts its replay saved."""
    missing = tmp_path / "nothing-here.db"
    assert await verify_module.saved_trusts(missing) is None
    assert not missing.exists()

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert await verify_module.saved_trusts(other) is None
    with sqlite3.connect(other) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 200)
    connection_threads.mark()
    with pytest.raises(NotAStore, match="is not an SQLite database"):
        await verify_module.saved_trusts(garbage)
    assert not connection_threads.left_open()  # closed, so its thread ended

    db, _src = _replayed(tmp_path)
    trusts = await verify_module.saved_trusts(db)
    assert sorted((t.app, t.ods, t.flavour, t.name) for t in trusts or []) == [
        ("LIMS", "RXX01", "itk-acute", "Test Acute"), ("PAS", "RXX01", "itk-acute", "Test Acute")]


@pytest.mark.parametrize("command", ["verify", "replay"])
def test_a_file_that_is_not_a_database_is_an_error_not_a_hang(tmp_path: Path,
                                                              command: str) -> None:
    """Both the reading and the writing open close their connection when the file is
    not SQLite; left open, it kept the process from exiting."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all " * 200)
    src = write_messages(tmp_path / "x/backload/adt.hl7", [adt("1", "20240101120000+0000")])
    out = cli(command, "--db", str(garbage), str(src.parents[1]), check=False, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f"error: {garbage} is not an SQLite database" in out.stderr
    assert garbage.read_bytes() == b"not a database at all " * 200

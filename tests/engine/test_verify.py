"""verify rebuilds each patient's journey on its own: a tampered store is caught."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine_helpers import adt, cli, replay_json, stored_json, write_messages, write_scenario


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

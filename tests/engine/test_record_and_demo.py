"""The user-facing views: a patient's record across trusts, and the one-command demo."""

from __future__ import annotations

import json
from pathlib import Path

from engine_helpers import adt, cli, replay_json, write_messages, write_scenario


def test_record_joins_trusts_on_nhs_number(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml", with_late_joiner=True)
    src = write_messages(tmp_path / "x/backload/adt.hl7", [
        adt("1", "20240101120000+0000", mtype="ADT^A01", family="SHARED", visit="V1"),
        adt("2", "20240201120000+0000", mtype="ADT^A04", app="LATE", fac="RYY02",
            family="SHARED", mrn="L1", visit="W1", pclass="O"),
        adt("3", "20240301120000+0000", mtype="ADT^A28", nhs="9990000026", mrn="Q7",
            family="OTHER"),
    ])
    db = tmp_path / "db.sqlite"
    assert replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(scen))["ok"]
    bundle = json.loads(cli("record", "--db", str(db), "9990000018", "--json").stdout)
    ids = sorted(f"{e['resource']['resourceType']}/{e['resource']['id']}"
                 for e in bundle["entry"])
    assert "Patient/RXX01-M123" in ids and "Patient/RYY02-L1" in ids
    assert sum(1 for i in ids if i.startswith("Encounter/")) == 2
    assert not any("Q7" in i for i in ids)  # another person's record stays out
    text = cli("record", "--db", str(db), "9990000018").stdout
    assert "SHARED" in text and "RYY02" in text and "Encounter" in text
    missing = cli("record", "--db", str(db), "9990000034", check=False)
    assert missing.returncode == 1 and "No record" in missing.stdout


def test_demo_runs_clean(tmp_path: Path) -> None:
    out = cli("demo", "--out", str(tmp_path / "demo"), "--messages", "1200", timeout=300)
    assert "demo OK" in out.stdout
    assert "MISMATCH" not in out.stdout and "DIFFERENCES" not in out.stdout
    assert "shared care record" in out.stdout
    total = next(line for line in out.stdout.splitlines() if line.startswith("│ all"))
    cells = [c.strip().replace(",", "") for c in total.split("│")[1:-1]]
    accepted, applied, duplicate, dead, pending = (int(c) for c in cells[2:7])
    assert applied > 0 and duplicate >= 5 and dead >= 3 and pending == 0  # every column
    assert accepted == applied + duplicate + dead
    assert "why entry" in out.stdout and "not an HL7 timestamp" in out.stdout
    assert "DEMO-UNKNOWN" in out.stdout and "DEMO-NOPID" in out.stdout

"""The engine commands' answers to user mistakes, --trusts, dead-letter refusals, record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import adt, cli, replay_json, snapshot, write_messages, write_scenario


def _no_db_files(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("*.db*"))


@pytest.mark.parametrize("cmd", ["replay", "verify"])
def test_missing_input_is_a_clear_error_and_creates_nothing(tmp_path: Path, cmd: str) -> None:
    db = tmp_path / "x.db"
    if cmd == "verify":  # verify needs a database: give it one, so the input is at fault
        src = write_messages(tmp_path / "ok/a.hl7", [adt("1", "20240101120000+0000")])
        replay_json("--db", str(db), str(src.parent),
                    "--scenario", str(write_scenario(tmp_path / "s.toml")))
    before = _no_db_files(tmp_path)
    out = cli(cmd, "--db", str(db), str(tmp_path / "nonexistent"), check=False)
    assert out.returncode != 0
    assert f"no such file or directory: {tmp_path / 'nonexistent'}" in out.stderr
    assert "OK" not in out.stdout
    live = cli(cmd, "--db", str(db), "--live", str(tmp_path / "gone.hl7"), check=False)
    assert live.returncode != 0 and "no such file or directory" in live.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.md").write_text("not HL7")
    empty = cli(cmd, "--db", str(db), str(tmp_path / "empty"), check=False)
    assert empty.returncode != 0 and "no HL7 files in" in empty.stderr
    assert _no_db_files(tmp_path) == before


@pytest.mark.parametrize("args", [["record", "9990000018"], ["verify", "."],
                                  ["deadletter", "list"], ["deadletter", "show", "1"],
                                  ["deadletter", "retry", "--all"]])
def test_reading_commands_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "nothing-here.db"
    out = cli(*args, "--db", str(db), check=False)
    assert out.returncode != 0
    assert f"database not found: {db}" in out.stderr
    assert not list(tmp_path.iterdir())


def test_own_feeds_with_a_trusts_file_or_flag(tmp_path: Path) -> None:
    src = write_messages(tmp_path / "mine/adt.hl7", [
        adt("1", "20240101120000+0000", app="MYPAS", fac="RAB01", family="OWN"),
        adt("2", "20240102120000+0000", app="MYLAB", fac="RAB01", family="LAB"),
        adt("3", "20240103120000+0000", app="ROGUE", fac="RZZ99", family="REFUSED"),
    ])
    trusts = tmp_path / "trusts.toml"
    trusts.write_text('[riverside]\nods = "RAB01"\nsending_applications = ["MYPAS", "MYLAB"]\n'
                      'flavour = "itk-acute"\nname = "Riverside"\ntimezone = "Europe/London"\n')
    db = tmp_path / "a.db"
    report = replay_json("--db", str(db), str(src.parent), "--trusts", str(trusts))
    assert report["total"]["applied"] == 2 and report["total"]["dead_lettered"] == 1
    dead = json.loads(cli("deadletter", "list", "--db", str(db), "--json").stdout)
    assert [d["control_id"] for d in dead] == ["3"] and "unknown sender" in dead[0]["reason"]
    assert "OK" in cli("verify", "--db", str(db), str(src.parent)).stdout

    db2 = tmp_path / "b.db"
    report = replay_json("--db", str(db2), str(src.parent),
                         "--trust", "RAB01=MYPAS,MYLAB:itk-acute")
    assert report["total"]["applied"] == 2
    first, second = snapshot(db), snapshot(db2)
    assert first["Organization/RAB01"]["name"] == "Riverside"  # the trust's name from the file
    assert {k: v for k, v in first.items() if not k.startswith("Organization/")} == {
        k: v for k, v in second.items() if not k.startswith("Organization/")}
    bad = cli("replay", "--db", str(tmp_path / "c.db"), str(src.parent), "--trust", "RAB01",
              check=False)
    assert bad.returncode != 0 and "ODS=APP:flavour" in bad.stderr
    assert not (tmp_path / "c.db").exists()
    assert "--accept-any-sender" not in cli("replay", "--help").stdout


def test_deadletter_refuses_entries_that_are_not_dead_and_retries_keys_failures(
    tmp_path: Path,
) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    src = write_messages(tmp_path / "x/a.hl7", [
        adt("a1", "20240101120000+0000", family="FIRST"),
        adt("z1", "20240102120000+0000", app="LATE", fac="RYY02", family="AT-LATE", mrn="L9"),
    ])
    db = tmp_path / "db.sqlite"
    replay_json("--db", str(db), str(src.parent), "--scenario", str(scen))
    with __import__("sqlite3").connect(db) as conn:
        states = dict(conn.execute("SELECT control_id, seq FROM queue").fetchall())
    applied, dead = states["a1"], states["z1"]
    for sub in ("show", "retry"):
        out = cli("deadletter", sub, str(applied), "--db", str(db), check=False)
        assert out.returncode != 0
        assert f"entry {applied} is not dead-lettered (state: applied)" in out.stderr
    still = cli("deadletter", "retry", str(dead), "--db", str(db), check=False)
    assert still.returncode != 0 and "unknown sender 'LATE'/'RYY02'" in still.stdout
    shown = cli("deadletter", "show", str(dead), "--db", str(db)).stdout
    assert "dead-lettered" in shown and "unknown sender" in shown
    # the fix: the trust is added on the command line; the keys are read again
    fixed = cli("deadletter", "retry", str(dead), "--db", str(db), "--trust",
                "RYY02=LATE:itk-acute")
    assert "applied 1" in fixed.stdout
    assert snapshot(db)["Patient/RYY02-L9"]["name"][0]["family"] == "AT-LATE"
    assert "RXX01-M123" in json.dumps(snapshot(db))  # the first trust is still configured


def test_record_by_mrn_validated_nhs_number_full_address_and_titles(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml", with_late_joiner=True)
    reg = adt("1", "20240101120000+0000", mtype="ADT^A28", family="ADDRESSED").replace(
        "||19700101|F", "||19700101|F|||1 High Street^Flat 2^Leeds^West Yorkshire^LS1 4AB")
    late = adt("2", "20240201120000+0000", mtype="ADT^A04", app="LATE", fac="RYY02",
               mrn="L1", visit="W1", pclass="O")
    doc = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240301120000+0000||MDM^T02|d1|P|2.4",
        "EVN|T02|20240301120000+0000",
        "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI||ADDRESSED^Ann||19700101|F",
        "PV1|1|O",
        "|".join(["TXA", "1", "DS", "TX", "20240301120000+0000", "",
                  "20240301120000+0000", "", "", "", "", "", "DOC1", "", "", "", "", "AU"]),
        "OBX|1|TX|DS^Discharge summary||Home with follow-up.",  # TXA-2 has only the code
    ])
    orphan = adt("3", "20240105120000+0000", mtype="ADT^A28", nhs="", mrn="Q7",
                 family="NONHS")
    src = write_messages(tmp_path / "x/a.hl7", [reg, late, doc, orphan])
    db = tmp_path / "db.sqlite"
    replay_json("--db", str(db), str(src.parent), "--scenario", str(scen))
    by_nhs = cli("record", "--db", str(db), "9990000018").stdout
    by_mrn = cli("record", "--db", str(db), "--mrn", "RYY02:L1").stdout
    assert by_mrn == by_nhs  # a trust's MRN finds the whole shared record
    assert "1 High Street, Flat 2, Leeds, West Yorkshire, LS1 4AB" in by_nhs
    assert "Discharge summary" in by_nhs
    no_nhs = cli("record", "--db", str(db), "--mrn", "RXX01:Q7").stdout
    assert "NONHS" in no_nhs and "ADDRESSED" not in no_nhs
    bad = cli("record", "--db", str(db), "9990000019", check=False)
    assert bad.returncode != 0 and "not a valid NHS number" in bad.stderr
    unknown = cli("record", "--db", str(db), "--mrn", "RXX01:NOPE", check=False)
    assert unknown.returncode == 1 and "No record" in unknown.stdout


def test_demo_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    from shcr_sim.engine.demo import MARKER, DemoFolderError, prepare_out

    mine = tmp_path / "precious"
    mine.mkdir()
    (mine / "thesis.txt").write_text("do not delete")
    out = cli("demo", "--out", str(mine), "--messages", "200", check=False)
    assert out.returncode != 0 and "not empty" in out.stderr
    assert (mine / "thesis.txt").read_text() == "do not delete"
    with pytest.raises(DemoFolderError):
        prepare_out(mine / "thesis.txt")
    again = tmp_path / "demo"
    prepare_out(again)
    (again / "extract").mkdir()
    (again / "shcr.db").write_text("old run")
    prepare_out(again)  # a previous demo's folder is cleared
    assert sorted(p.name for p in again.iterdir()) == [MARKER]


def test_demo_layering_no_cli_import() -> None:
    import ast

    import shcr_sim.engine.demo as demo

    tree = ast.parse(Path(demo.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m and m.endswith("cli") for m in imported)
    for mod in ("commands", "views", "demo"):
        src = Path(demo.__file__).with_name(f"{mod}.py").read_text()
        assert "import typer" not in src


def test_serve_takes_the_same_trusts(tmp_path: Path) -> None:
    import select
    import subprocess
    import sys

    trusts = tmp_path / "trusts.toml"
    trusts.write_text('[riverside]\nods = "RAB01"\nsending_application = "MYPAS"\n'
                      'flavour = "classic-pas"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "shcr_sim.cli", "serve", "--db", str(tmp_path / "s.db"),
         "--trusts", str(trusts), "--trust", "RCD02=EPR:mh-epr", "--mllp-port", "0",
         "--http-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # never hang the suite
        first = proc.stdout.readline() if ready else ""
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "RAB01/MYPAS" in first and "RCD02/EPR" in first

"""``shcr-sim convert`` and ``shcr-sim mappings coverage``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from shcr_sim.cli import app

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "mappings"


def test_convert_one_message_prints_a_pretty_bundle():
    result = CliRunner().invoke(app, ["convert", str(CASES / "itk_adt_a01_admit.hl7")])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle" and "\n  " in result.stdout


def test_convert_several_messages_prints_one_json_per_line(tmp_path):
    names = ["itk_adt_a01_admit", "classic_oru_lab_local_codes", "mh_mdm_t02_pdf"]
    joined = tmp_path / "three.hl7"
    joined.write_text("".join((CASES / f"{n}.hl7").read_text() for n in names))
    result = CliRunner().invoke(app, ["convert", str(joined)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    ids = [json.loads(line)["identifier"]["value"] for line in lines]
    assert ids == ["RZ1000000000001", "100007", "RZM-0000000006"]


def test_convert_bad_message_exits_1_with_error_on_stderr():
    result = CliRunner().invoke(app, ["convert", str(CASES / "error_bad_timestamp.hl7")])
    assert result.exit_code == 1
    assert "PV1-44" in result.stderr and "bad timestamp" in result.stderr
    assert result.stdout == ""


def test_coverage_reports_fields_no_mapping_read(tmp_path):
    result = CliRunner().invoke(app, ["mappings", "coverage", str(CASES / "mh_adt_a01_zmh.hl7"),
                                      "--mapping", "mh-epr"])
    assert result.exit_code == 0, result.output
    assert "ZMH-2" in result.output  # legal status: carried, not mapped
    assert "PID-5" not in result.output  # the name is mapped


def test_unknown_or_broken_mapping_is_a_clear_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["convert", str(CASES / "itk_adt_a01_admit.hl7"),
                                 "--mapping", "no-such-flavour"])
    assert result.exit_code == 2 and "no mapping 'no-such-flavour'" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[code_systems.X]\nlookup = "lab"\n')
    result = runner.invoke(app, ["convert", str(CASES / "itk_adt_a01_admit.hl7"),
                                 "--mapping", str(broken)])
    assert result.exit_code == 2 and "malformed mapping" in result.stderr


def test_custom_mapping_file_changes_the_output(tmp_path):
    custom = tmp_path / "my-trust.toml"
    custom.write_text('name = "my-trust"\n[systems]\nmrn = "https://trust.example/Id/mrn"\n'
                      '[identifiers]\nnhs_fields = ["PID-3"]\n')
    result = CliRunner().invoke(app, ["convert", str(CASES / "itk_adt_a28_add_person.hl7"),
                                      "--mapping", str(custom)])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")
    assert {"system": "https://trust.example/Id/mrn", "value": "R0000999"}.items() <= (
        patient["identifier"][1].items())


def _with_sender(tmp_path: Path, ods: str) -> Path:
    text = (CASES / "itk_adt_a28_add_person.hl7").read_text()
    path = tmp_path / f"{ods}.hl7"
    path.write_text(text.replace("|NFPAS|RZ1|", f"|NFPAS|{ods}|", 1))
    return path


def test_convert_names_a_guessed_mapping_on_stderr(tmp_path):
    result = CliRunner().invoke(app, ["convert", str(_with_sender(tmp_path, "RZX"))])
    assert result.exit_code == 0, result.output
    assert ("no trust RZX in the default scenario; using mapping itk-acute — pass --mapping "
            "to choose") in result.stderr
    assert json.loads(result.stdout)["resourceType"] == "Bundle"  # stdout stays pure JSON


def test_convert_is_quiet_for_a_known_trust_or_an_explicit_mapping(tmp_path):
    known = CliRunner().invoke(app, ["convert", str(_with_sender(tmp_path, "RZ1"))])
    assert known.exit_code == 0 and "note:" not in known.stderr
    chosen = CliRunner().invoke(app, ["convert", str(_with_sender(tmp_path, "RZX")),
                                      "--mapping", "itk-acute"])
    assert chosen.exit_code == 0 and "note:" not in chosen.stderr


def test_fhir_package_does_not_depend_on_feeds():
    import ast

    package = Path(__file__).resolve().parents[2] / "src" / "shcr_sim" / "fhir"
    offenders = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{'.' * node.level}{node.module or ''}"]
                     if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if "feeds" in n.split(".")]
    assert offenders == []


def test_convert_into_a_closed_pipe_exits_0_quietly(tmp_path):
    many = tmp_path / "many.hl7"
    many.write_text((CASES / "itk_adt_a01_admit.hl7").read_text() * 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shcr_sim.cli", "convert", str(many), "--no-validate"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # `| head -1`: read one line, then go away
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert json.loads(first)["resourceType"] == "Bundle"
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_convert_streams_the_file_rather_than_reading_it_all_first(tmp_path, monkeypatch):
    from shcr_sim.fhir import commands

    text = (CASES / "itk_adt_a01_admit.hl7").read_text()
    read = 0

    def counting(path):
        nonlocal read
        for _ in range(1000):
            read += 1
            yield text

    class ClosedAfterOne(io.StringIO):
        def write(self, s: str) -> int:
            if self.getvalue():
                raise BrokenPipeError
            return super().write(s)

    monkeypatch.setattr(commands, "read_messages", counting)
    out, err = ClosedAfterOne(), io.StringIO()
    assert commands.convert_file("x.hl7", "itk-acute", validate=False, out=out, err=err) == 0
    assert out.getvalue().count("\n") == 1 and "\n  " not in out.getvalue()  # one per line
    assert read <= 3 and err.getvalue() == ""

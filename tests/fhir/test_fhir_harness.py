"""The mapping harness: the shipped cases pass, wrong expectations are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

from fhir_helpers import scenario_trusts
from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.fhir.compare import diff_bundles, diff_contained
from shcr_sim.fhir.harness import discover, run_case, run_directory, write_junit

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "mappings"


def test_every_shipped_case_passes():
    results = run_directory(CASES, trusts=scenario_trusts())
    assert len(results) >= 40
    failed = {r.name: r.differences for r in results if not r.passed}
    assert failed == {}


def test_cases_cover_every_flavour_and_kind():
    results = run_directory(CASES, trusts=scenario_trusts())
    assert {r.mapping for r in results} >= {"itk-acute", "classic-pas", "mh-epr"}
    assert {r.kind for r in results} >= {"exact", "contains", "error"}


def _copy(tmp_path: Path, name: str) -> tuple[Path, dict]:
    for ext in (".hl7", ".json"):
        shutil.copy(CASES / f"{name}{ext}", tmp_path / f"{name}{ext}")
    return tmp_path / f"{name}.json", json.loads((CASES / f"{name}.json").read_text())


def test_wrong_partial_expectation_is_reported_by_fhir_path(tmp_path):
    path, doc = _copy(tmp_path, "itk_adt_a01_admit")
    patient = next(f for f in doc["contains"] if f["resourceType"] == "Patient")
    patient["name"][0]["family"] = "SMYTH"
    path.write_text(json.dumps(doc))
    [result] = run_directory(tmp_path, trusts=scenario_trusts())
    assert not result.passed
    assert "Patient/RZ1-R0000123.name[0].family: expected 'SMYTH' got 'SMITH'" in (
        result.differences)


def test_wrong_full_bundle_expectation_is_reported(tmp_path):
    path, doc = _copy(tmp_path, "mh_adt_a31_full_bundle")
    patient = doc["bundle"]["entry"][1]["resource"]
    patient["birthDate"] = "2001-02-04"
    del patient["telecom"]
    path.write_text(json.dumps(doc))
    [result] = run_directory(tmp_path)
    assert result.kind == "exact" and not result.passed
    assert "Patient/RZM-MH0001234.birthDate: expected '2001-02-04' got '2001-02-03'" in (
        result.differences)
    assert any(d.startswith("Patient/RZM-MH0001234.telecom: unexpected") for d in
               result.differences)


def test_expected_error_that_does_not_happen_fails(tmp_path):
    path, doc = _copy(tmp_path, "itk_adt_a02_transfer")
    path.write_text(json.dumps({"mapping": "itk-acute", "error": {"segment": "PID"}}))
    [result] = run_directory(tmp_path)
    assert not result.passed
    assert "but the message converted" in result.differences[0]


def test_missing_expectation_fails(tmp_path):
    shutil.copy(CASES / "itk_adt_a02_transfer.hl7", tmp_path / "lonely.hl7")
    [case] = discover(tmp_path)
    result = run_case(case)
    assert not result.passed and result.kind == "missing"


def test_meta_last_updated_is_ignored_in_exact_comparison():
    a = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "meta": {"lastUpdated": "x"}}}]}
    b = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p"}}]}
    assert diff_bundles(a, b) == []
    b["entry"][0]["resource"]["gender"] = "male"
    assert diff_bundles(a, b) == ["Patient/p.gender: unexpected 'male'"]


def test_containment_lists_match_in_any_order():
    actual = {"coding": [{"system": "a", "code": "1"}, {"system": "b", "code": "2"}]}
    assert diff_contained({"coding": [{"code": "2"}, {"code": "1"}]}, actual, "X") == []
    assert diff_contained({"coding": [{"code": "3"}]}, actual, "X") == [
        "X.coding[0].code: expected '3' got '1'"]


def test_junit_xml_lists_failures(tmp_path):
    path, doc = _copy(tmp_path, "itk_adt_a04_register_ed")
    doc["contains"][0]["status"] = "finished"
    path.write_text(json.dumps(doc))
    _copy(tmp_path, "itk_adt_a05_preadmit")
    results = run_directory(tmp_path)
    out = tmp_path / "junit.xml"
    write_junit(results, out)
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='itk_adt_a04_register_ed']/failure")
    assert "status: expected 'finished' got 'planned'" in failure.text


def test_cli_mappings_test_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["mappings", "test", str(CASES), "--junit", str(tmp_path / "j.xml")])
    assert ok.exit_code == 0, ok.output
    assert "cases pass" in ok.output and (tmp_path / "j.xml").exists()
    path, doc = _copy(tmp_path, "itk_adt_a11_cancel_admit")
    doc["contains"][0]["status"] = "in-progress"
    path.write_text(json.dumps(doc))
    bad = runner.invoke(app, ["mappings", "test", str(tmp_path)])
    assert bad.exit_code == 1
    assert "Encounter/RZ1-V0000456.status: expected 'in-progress' got 'cancelled'" in bad.output


def test_strict_mode_adds_hl7apy_structure_validation():
    [clean] = [c for c in discover(CASES) if c.name == "itk_oru_escapes"]
    assert run_case(clean, strict=True).passed
    [thin] = [c for c in discover(CASES) if c.name == "itk_oru_missing_optional_segments"]
    assert run_case(thin).passed  # the converter copes with the missing name …
    strict = run_case(thin, strict=True)
    assert not strict.passed  # … but the message breaks the v2.4 structure (PID-5 required)
    assert "PID_5" in strict.differences[-1]

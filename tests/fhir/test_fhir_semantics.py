"""Conversion semantics: events, merges, corrections, documents, ids, errors."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from fhir_helpers import by_type, convert, hl7, one
from hypothesis import given, settings
from hypothesis import strategies as st

from shcr_sim.fhir import ConversionError, convert_message, load_mapping
from shcr_sim.fhir.ids import stable_id
from shcr_sim.hl7 import parse

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "mappings"


def case(name: str) -> str:
    return (CASES / f"{name}.hl7").read_text(encoding="utf-8-sig")


def _adt(event: str) -> str:
    return hl7(
        f"MSH|^~\\&|PAS|RX1|X|Y|20240315103000+0000||ADT^{event}|E{event}|P|2.4",
        f"EVN|{event}|20240315102500+0000",
        "PID|1||9990000018^^^NHS^NH~M1^^^RX1^PI||SMITH^JO||19700101|F",
        "PV1|1|I|WARD1" + "|" * 16 + "V1" + "|" * 25 + "20240315102500+0000",
    )


@pytest.mark.parametrize("event,status", [
    ("A01", "in-progress"), ("A02", "in-progress"), ("A03", "finished"), ("A04", "planned"),
    ("A05", "planned"), ("A11", "cancelled"), ("A13", "in-progress"),
])
def test_encounter_status_per_event(event, status):
    conv = convert(_adt(event))
    assert one(conv, "Encounter")["status"] == status
    assert one(conv, "Encounter")["id"] == "RX1-V1"  # one stay, whatever the event


@pytest.mark.parametrize("event", ["A31", "A28"])  # A08: see test_fhir_a08_encounter.py
def test_patient_updates_write_no_encounter(event):
    conv = convert(_adt(event))
    assert by_type(conv, "Encounter") == []
    assert one(conv, "Patient")["id"] == "RX1-M1"


def test_merged_patient_is_redirected_to_survivor():
    merged = {"RZ1-R0000123": "RZ1-R0000001"}
    oru = convert(case("itk_oru_lab_final"), merged=merged)
    assert oru.patient_id == "RZ1-R0000001"
    for res in by_type(oru, "Observation") + by_type(oru, "DiagnosticReport"):
        assert res["subject"]["reference"] == "Patient/RZ1-R0000001"
    adt = convert(case("itk_adt_a08_update"), merged=merged)
    old = one(adt, "Patient")
    assert old["id"] == "RZ1-R0000123" and old["active"] is False
    assert old["link"] == [{"other": {"reference": "Patient/RZ1-R0000001"},
                            "type": "replaced-by"}]
    assert adt.patient_id == "RZ1-R0000001"


def test_merge_sets_conversion_merge():
    conv = convert(case("itk_adt_a40_merge"))
    assert conv.merge == ("RZ1-R0000555", "RZ1-R0000123")


def test_correction_reuses_observation_ids():
    final = convert(case("itk_oru_lab_final"))
    corrected = convert(case("itk_oru_lab_corrected"))
    ids = {r["id"] for r in by_type(final, "Observation")}
    assert ids == {r["id"] for r in by_type(corrected, "Observation")}
    statuses = {r["id"]: r["status"] for r in by_type(corrected, "Observation")}
    assert statuses["RZ1-24L000123-K-1"] == "corrected"


def test_document_add_replace_cancel_share_one_id():
    ids = set()
    statuses = []
    for name in ("itk_mdm_t02_original_with_content", "itk_mdm_t08_replace",
                 "itk_mdm_t11_cancel"):
        doc = one(convert(case(name)), "DocumentReference")
        ids.add(doc["id"])
        statuses.append(doc["status"])
    assert len(ids) == 1
    assert statuses == ["current", "current", "entered-in-error"]


def test_ethnic_category_and_tq1_timing():
    text = hl7(
        "MSH|^~\\&|EPR|RZM|X|Y|20240615103000||RDE^O11^RDE_O11|R1|P|2.5.1",
        "PID|1||MH1^^^RZM^MR~9990000026^^^NHS^NHS||GREEN^SAM||1990|M" + "|" * 14 + "K",
        "ORC|NW|ORD9",
        "TQ1|1||BD||||20240615103000|20240622103000",
        "RXE||D0001^Paracetamol^99MHD|1000||mg",
    )
    conv = convert(text, "mh-epr")
    med = one(conv, "MedicationRequest")
    timing = med["dosageInstruction"][0]["timing"]
    assert timing["code"]["text"] == "BD"
    assert timing["repeat"]["boundsPeriod"] == {"start": "2024-06-15T10:30:00+01:00",
                                                "end": "2024-06-22T10:30:00+01:00"}
    assert med["medicationCodeableConcept"]["coding"][1]["code"] == "9000000101000001"


def test_ethnic_category_extension_on_patient():
    text = _adt("A28").replace("|19700101|F", "|19700101|F" + "|" * 14 + "H")
    patient = one(convert(text), "Patient")
    assert patient["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "H"


def test_internal_failures_are_wrapped(monkeypatch):
    import shcr_sim.fhir.convert as conv_mod

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(conv_mod, "encounter_resource", boom)
    with pytest.raises(ConversionError) as info:
        convert_message(parse(_adt("A01")), load_mapping("itk-acute"))
    assert "internal error" in str(info.value) and info.value.message_id == "EA01"
    reason = info.value.reason
    assert reason.startswith("internal error (converter bug): RuntimeError: kaboom")
    assert reason.endswith(" in boom)")  # the innermost frame: where the bug is


def test_conversion_error_pickles():
    exc = ConversionError("M1", "PID", "PID-3", "no patient identifier")
    back = pickle.loads(pickle.dumps(exc))
    assert (back.message_id, back.segment, back.field, back.reason) == (
        "M1", "PID", "PID-3", "no patient identifier")
    assert str(back) == "M1 PID-3: no patient identifier"


_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=4))
def test_stable_ids_are_valid_fhir_ids_and_deterministic(parts):
    value = stable_id(*parts)
    assert _ID.match(value)
    assert value == stable_id(*parts)


def test_stable_ids_do_not_collide_on_separators():
    assert stable_id("A-B", "C") != stable_id("A", "B-C")
    assert stable_id("RX1", "M1") == "RX1-M1"


_MESSAGES = sorted(p.stem for p in CASES.glob("*.hl7") if not p.name.startswith("error_"))


@settings(max_examples=120, deadline=None)
@given(name=st.sampled_from(_MESSAGES), data=st.data())
def test_mangled_messages_convert_or_fail_clearly(name, data):
    """Random damage never escapes as anything but HL7Error/ConversionError."""
    from shcr_sim.fhir import validate_bundle
    from shcr_sim.hl7 import HL7Error

    text = case(name)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        junk = data.draw(st.sampled_from(["|", "^", "~", "\\", "&", "\r", "", "X", "9", "\\X0\\"]))
        cut = data.draw(st.integers(0, 3))
        text = text[:pos] + junk + text[pos + cut:]
    try:
        conv = convert_message(parse(text), load_mapping("itk-acute"))
    except (HL7Error, ConversionError):
        return
    validate_bundle(conv.bundle)


def test_identifier_type_code_is_read_as_text():
    """An LF kept as data (no segment follows it) ends up in MRG-1's CX-5: the type
    code is read as text, like the value and the authority (found by the test above)."""
    from shcr_sim.fhir import validate_bundle

    text = case("classic_adt_a40_merge")
    assert text.endswith("^MR\n")
    conv = convert_message(parse(text + "|"), load_mapping("itk-acute"))
    codes = [c["code"] for r in conv.resources if r["resourceType"] == "Patient"
             for i in r["identifier"] for c in i.get("type", {}).get("coding", [])]
    assert codes and all(c == "MR" for c in codes)
    validate_bundle(conv.bundle)


def test_own_trust_mrn_is_the_patient_key_when_several_are_sent():
    text = _adt("A28").replace(
        "9990000018^^^NHS^NH~M1^^^RX1^PI", "X77^^^RX9^MR~9990000018^^^NHS^NH~M1^^^RX1^PI")
    patient = one(convert(text), "Patient")
    assert patient["id"] == "RX1-M1"
    values = [(i["system"], i["value"]) for i in patient["identifier"]]
    assert ("https://shcr-sim.example/Id/RX9/mrn", "X77") in values


def test_document_attachment_creation_from_obx14():
    text = case("itk_mdm_t02_original_with_content").replace(
        "|Discharged home.||||||F", "|Discharged home.||||||F|||20240620144500+0100")
    doc = one(convert(text), "DocumentReference")
    assert doc["content"][0]["attachment"]["creation"] == "2024-06-20T14:45:00+01:00"

"""The contract the engine relies on: ids, Bundle shape, errors."""

from __future__ import annotations

import pytest
from fhir_helpers import convert, hl7, one

from shcr_sim.fhir import ConversionError, convert_message, load_mapping
from shcr_sim.hl7 import parse


def test_a01_bundle_is_a_put_transaction_with_provenance(itk_a01):
    conv = convert(itk_a01)
    b = conv.bundle
    assert b["type"] == "transaction"
    assert b["identifier"]["value"] == "MSG0001"
    for entry in b["entry"]:
        res = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
        assert entry["fullUrl"].endswith(f"/{res['resourceType']}/{res['id']}")
    prov = one(conv, "Provenance")
    targets = {t["reference"] for t in prov["target"]}
    others = {f"{r['resourceType']}/{r['id']}" for r in conv.resources if r is not prov}
    assert targets == others
    assert prov["recorded"] == "2024-03-15T10:30:00.000Z"
    assert prov["entity"][0]["what"]["identifier"]["value"] == "MSG0001"


def test_patient_identifiers_and_verification(itk_a01):
    conv = convert(itk_a01)
    patient = one(conv, "Patient")
    assert conv.patient_id == patient["id"] == "RX1-M000123"
    nhs = patient["identifier"][0]
    assert nhs["system"] == "https://fhir.nhs.uk/Id/nhs-number"
    assert nhs["value"] == "9990000018"
    ext = nhs["extension"][0]
    assert ext["url"].endswith("Extension-UKCore-NHSNumberVerificationStatus")
    assert ext["valueCodeableConcept"]["coding"][0]["code"] == "01"
    mrn = patient["identifier"][1]
    assert mrn["value"] == "M000123"
    assert mrn["assigner"]["identifier"]["value"] == "RX1"


def test_encounter_in_progress_and_z_segment_reported(itk_a01):
    conv = convert(itk_a01)
    enc = one(conv, "Encounter")
    assert enc["status"] == "in-progress"
    assert enc["id"] == "RX1-V000456"
    assert enc["period"]["start"] == "2024-03-15T10:25:00+00:00"
    assert any(u.startswith("ZU1") for u in conv.unmapped)


def test_conversion_is_deterministic(itk_a01):
    a = convert(itk_a01).bundle
    b = convert(itk_a01).bundle
    assert a == b


def test_missing_pid_is_a_conversion_error():
    text = hl7("MSH|^~\\&|PAS|RX1|X|Y|20240315103000+0000||ADT^A01|M1|P|2.4", "PV1|1|I")
    with pytest.raises(ConversionError) as info:
        convert_message(parse(text), load_mapping("itk-acute"))
    assert info.value.message_id == "M1"
    assert info.value.segment == "PID"

"""The record's timeline names the drug of a MedicationRequest however the converter wrote it."""

from __future__ import annotations

from shcr_sim.fhir import convert_message, load_mapping
from shcr_sim.hl7 import parse
from shcr_sim.store.record import summary

AMOX = {"coding": [{"system": "http://snomed.info/sct", "code": "27658006",
                    "display": "Amoxicillin 500mg capsules"}]}


def _rde(form: str) -> str:
    return "\r".join([
        "MSH|^~\\&|EPMA|RXX01|SHCR|CIE|20240615103000+0100||RDE^O11^RDE_O11|RX1|P|2.4",
        "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI||SMITH^ANN||19700101|F",
        "ORC|NW|ORD1^EPMA||||||||20240615100000+0100",
        f"RXE|^^^20240615100000+0100|AMOX500^Amoxicillin 500mg capsules^LOCAL|500||mg|{form}",
    ])


def test_concept_and_reference_both_show_the_drug_name() -> None:
    concept = {"resourceType": "MedicationRequest", "status": "active",
               "medicationCodeableConcept": AMOX}
    reference = {"resourceType": "MedicationRequest", "status": "active",
                 "contained": [{"resourceType": "Medication", "id": "med", "code": AMOX,
                                "form": {"text": "capsule"}}],
                 "medicationReference": {"reference": "#med",
                                         "display": "Amoxicillin 500mg capsules"}}
    bare = {**reference, "medicationReference": {"reference": "#med"}}
    for r in (concept, reference, bare):
        assert summary(r).startswith("Amoxicillin 500mg capsules")


def test_converted_orders_with_and_without_a_dose_form_name_the_drug() -> None:
    config = load_mapping("itk-acute")
    for form, key in (("CAP^Capsule^LOCAL", "medicationReference"),
                      ("", "medicationCodeableConcept")):
        conv = convert_message(parse(_rde(form)), config)
        req = next(r for r in conv.resources if r["resourceType"] == "MedicationRequest")
        assert key in req
        assert "Amoxicillin 500mg capsules" in summary(req)

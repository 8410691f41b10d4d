"""RDE timing from TQ1 / RXE-1 / ORC-7, the dose form, priority and as-needed."""

from __future__ import annotations

from fhir_helpers import convert, hl7, one

from shcr_sim.fhir import load_mapping
from shcr_sim.fhir.coverage import CoverageReport, add_message

MSH = "MSH|^~\\&|EPMA|RX1|SHCR|SHCR|20240615103000+0100||RDE^O11^RDE_O11|RX1|P|{v}"
PID = "PID|1||9990000018^^^NHS^NH~M1^^^RX1^PI||SMITH^JO||19700101|F"


def _rde(orc7: str = "", rxe1: str = "", tq1: str | None = None, rxe6: str = "TAB^^RX1-DRUG",
         version: str = "2.4") -> str:
    segs = [MSH.format(v=version), PID,
            f"ORC|NW|RX1RX1^RX1-EPMA|||||{orc7}||20240615100000+0100",
            f"RXE|{rxe1}|PARA^Paracetamol 500mg tablets^RX1-DRUG|1000||mg^mg^UCUM|{rxe6}"]
    if tq1 is not None:
        segs.append(tq1)
    segs.append("RXR|PO^^HL70162")
    return hl7(*segs)


def _dosage(text: str) -> tuple[dict, dict]:
    conv = convert(text)
    med = one(conv, "MedicationRequest")
    return med, med["dosageInstruction"][0]


def test_orc7_alone_gives_the_timing():
    _, dosage = _dosage(_rde(orc7="1^BD^^20240615110000+0100^20240622110000+0100"))
    assert dosage["timing"] == {"code": {"text": "BD"}, "repeat": {
        "frequency": 2, "period": 1, "periodUnit": "d",
        "boundsPeriod": {"start": "2024-06-15T11:00:00+01:00",
                         "end": "2024-06-22T11:00:00+01:00"}}}


def test_tq1_wins_and_a_disagreeing_rxe1_is_reported():
    text = _rde(rxe1="1^OD", tq1="TQ1|1||BD||||20240615110000+0100", version="2.5.1")
    conv = convert(text)
    dosage = one(conv, "MedicationRequest")["dosageInstruction"][0]
    assert dosage["timing"]["code"] == {"text": "BD"}
    assert dosage["timing"]["repeat"]["boundsPeriod"] == {"start": "2024-06-15T11:00:00+01:00"}
    assert any(u.startswith("RXE-1: timing pattern 'OD' differs from TQ1") for u in conv.unmapped)


def test_every_n_hours_prn_and_priority():
    tq1 = "TQ1|1||Q4H||||||S|if in pain|Do not exceed 8 tablets|||6"
    med, dosage = _dosage(_rde(tq1=tq1, version="2.5.1"))
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 4, "periodUnit": "h",
                                          "count": 6}
    assert dosage["additionalInstruction"] == [{"text": "if in pain"}]
    assert dosage["text"] == "Do not exceed 8 tablets"
    assert med["priority"] == "stat"
    _, prn = _dosage(_rde(rxe1="1^PRN"))
    assert prn["asNeededBoolean"] is True


def test_dose_form_puts_the_drug_on_a_contained_medication():
    med, _ = _dosage(_rde())
    assert med["medicationReference"] == {"reference": "#med",
                                          "display": "Paracetamol 500mg tablets"}
    [contained] = med["contained"]
    assert contained["resourceType"] == "Medication" and contained["id"] == "med"
    assert contained["form"]["coding"][0]["code"] == "TAB"
    assert contained["code"]["coding"][0]["code"] == "PARA"
    assert "medicationCodeableConcept" not in med
    without, _ = _dosage(_rde(rxe6=""))
    assert without["medicationCodeableConcept"]["coding"][0]["code"] == "PARA"
    assert "contained" not in without


def test_timing_fields_are_not_dropped():
    report = CoverageReport()
    config = load_mapping("itk-acute")
    for text in (_rde(orc7="1^BD^^20240615110000+0100", rxe1="1^BD^^20240615110000+0100"),
                 _rde(rxe1="1^BD", tq1="TQ1|1||BD||||20240615110000+0100", version="2.5.1")):
        add_message(report, text, lambda _m: config)
    assert report.failed == 0, report.errors
    dropped = dict(report.dropped())
    for key in ("ORC-7", "RXE-1", "RXE-6", "TQ1-1", "TQ1-3", "TQ1-7"):
        assert key not in dropped, key

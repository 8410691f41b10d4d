"""Fields the review found dropped: each is now read and lands in the FHIR."""

from __future__ import annotations

import pytest
from fhir_helpers import convert, hl7, one

from shcr_sim.fhir import load_mapping
from shcr_sim.fhir.coverage import CoverageReport, add_message

MSH_ORU = "MSH|^~\\&|RIS|RX1|SHCR|SHCR|20240315103000+0000||ORU^R01|R1|P|2.4"
PID = "PID|1||9990000018^^^NHS^NH~M1^^^RX1^PI||SMITH^JO||19700101|F"
OBR = "OBR|1|P1|F1|XCHES^XR Chest|||20240315090000+0000||||||||||||||20240315100000+0000||RAD|F"


def _report(*statuses: str) -> str:
    lines = [f"OBX|{n}|TX|XCHES-REP^XR Chest report|{n}|line {n}||||||{st}"
             for n, st in enumerate(statuses, 1)]
    return hl7(MSH_ORU, PID, OBR, *lines)


@pytest.mark.parametrize(("statuses", "expected"), [
    (("F", "F", "F"), "final"),
    (("F", "F", "W"), "entered-in-error"),
    (("F", "C", "F"), "corrected"),
    (("P", "F", "P"), "final"),
    (("C", "D", "F"), "entered-in-error"),
    (("P", "P"), "preliminary"),
])
def test_report_lines_take_the_most_significant_status(statuses, expected):
    conv = convert(_report(*statuses))
    obs = one(conv, "Observation")
    assert obs["valueString"] == "\n".join(f"line {n}" for n in range(1, len(statuses) + 1))
    assert obs["status"] == expected


def _coverage(text: str, flavour: str = "itk-acute") -> CoverageReport:
    report = CoverageReport()
    config = load_mapping(flavour)
    add_message(report, text, lambda _m: config)
    assert report.failed == 0, report.errors
    return report


def test_obx11_on_every_report_line_is_read():
    dropped = dict(_coverage(_report("F", "F", "W")).dropped())
    assert "OBX-11" not in dropped


def _pid(p29: str, p30: str) -> str:
    return ("PID|1||9990000018^^^NHS^NH~M1^^^RX1^PI||SMITH^JO||19400101|F"
            + "|" * 21 + f"{p29}|{p30}")


def _a31(p29: str, p30: str) -> str:
    return hl7("MSH|^~\\&|PAS|RX1|SHCR|SHCR|20240315103000+0000||ADT^A31|A1|P|2.4",
               "EVN|A31|20240315102500+0000", _pid(p29, p30), "PV1|1|N")


@pytest.mark.parametrize(("p29", "p30", "expected"), [
    ("", "Y", {"deceasedBoolean": True}),
    ("", "N", {"deceasedBoolean": False}),
    ("20240314221500+0000", "Y", {"deceasedDateTime": "2024-03-14T22:15:00+00:00"}),
    ("", "", {}),
])
def test_death_from_pid29_and_pid30(p29, p30, expected):
    patient = one(convert(_a31(p29, p30)), "Patient")
    got = {k: v for k, v in patient.items() if k.startswith("deceased")}
    assert got == expected


def test_pid30_is_read_even_when_pid29_is_valued():
    report = _coverage(_a31("20240314221500+0000", "Y"))
    assert "PID-30" not in dict(report.dropped()) and "PID-30" in report.fields


def test_pid30_contradicting_pid29_is_reported():
    conv = convert(_a31("20240314221500+0000", "N"))
    assert "deceasedDateTime" in one(conv, "Patient")
    assert any(u.startswith("PID-30: 'N' contradicts PID-29") for u in conv.unmapped)

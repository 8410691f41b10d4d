"""Field coverage counts what was carried and what was dropped."""

from __future__ import annotations

from fhir_helpers import hl7

from shcr_sim.fhir import load_mapping
from shcr_sim.fhir.coverage import CoverageReport, add_message


def _report(*texts: str) -> CoverageReport:
    report = CoverageReport()
    config = load_mapping("itk-acute")
    for text in texts:
        add_message(report, text, lambda _m: config)
    return report


A08 = hl7(
    "MSH|^~\\&|PAS|RX1|X|Y|20240315103000+0000||ADT^A08|M1|P|2.4",
    "EVN|A08|20240315102500+0000",
    "PID|1||M1^^^RX1^PI||SMITH^JO||19700101|F|||||||||||||||||||||||||||||||ZZTOP",
    "PV1|1|I|WARD1",
    "ZU1|1|21",
)


def test_dropped_fields_are_counted_and_mapped_ones_are_not():
    report = _report(A08, A08)
    assert report.messages == 2 and report.failed == 0
    dropped = dict(report.dropped())
    assert dropped["PID-39"].carried == 2 and dropped["PID-39"].dropped == 2
    assert dropped["ZU1-2"].dropped == 2
    assert "PV1-3" in dropped  # A08 writes no Encounter, so the ward is dropped
    assert "PID-5" not in dropped and "PID-7" not in dropped
    assert "PID-1" not in report.fields  # set ids are plumbing, never reported


def test_unconvertible_messages_are_counted_not_raised():
    bad = A08.replace("ADT^A08", "SIU^S12")
    report = _report(bad)
    assert report.failed == 1 and "unsupported message type" in report.errors[0]

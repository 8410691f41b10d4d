"""The one event-time rule the engine's ordering key and the converter both read."""

from __future__ import annotations

from shcr_sim.engine.keys import extract
from shcr_sim.event_time import event_time_fields, event_time_source
from shcr_sim.fhir import convert_message, load_mapping
from shcr_sim.hl7 import parse

MSH = "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240105000000+0000||{t}|9|P|2.4"
PID = "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI||SMITH^Ann||19700101|F"


def _msg(mtype: str, *segments: str) -> str:
    return "\r".join([MSH.format(t=mtype), *segments])


def test_candidate_fields_per_message_kind_end_with_msh7() -> None:
    adt = parse(_msg("ADT^A08", "EVN|A08|20240102||||20240101", PID))
    assert event_time_fields(adt) == [("EVN-6", "20240101"), ("EVN-2", "20240102"),
                                      ("MSH-7", "20240105000000+0000")]
    obr22 = "|".join(["OBR", "1", "", "", "C", *[""] * 17, "20240103"])
    oru = parse(_msg("ORU^R01", PID, obr22, "OBR|2|||C|||20231231"))
    assert [p for p, _ in event_time_fields(oru)] == ["OBR-7", "OBR-22", "MSH-7"]
    assert event_time_source(oru) == ("OBR-22", "20240103")  # the first OBR only
    rde = parse(_msg("RDE^O11", PID, "ORC|NW||||||||20240104"))
    assert event_time_source(rde) == ("ORC-9", "20240104")
    other = parse(_msg("QRY^A19", PID))
    assert event_time_source(other) == ("MSH-7", "20240105000000+0000")


def test_engine_and_converter_pick_the_same_field_even_for_a_lower_case_type() -> None:
    # The converter upper-cases MSH-9; the engine used to read the type as sent and
    # fall back to MSH-7 for "adt", so the two disagreed on the event time.
    text = _msg("adt^A08", "EVN|A08|20240102090000+0000||||20240101080000+0000", PID,
                "PV1|1|I|WARD1^^^RXX01")
    keys = extract(parse(text))
    conv = convert_message(parse(text), load_mapping("itk-acute"))
    assert keys.event_time == "20240101080000+0000"
    assert conv.event_time is not None and conv.event_time.startswith("2024-01-01T08:00")

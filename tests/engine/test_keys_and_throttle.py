"""Message keys (patient, event time, ordering) and the release throttle's arithmetic."""

from __future__ import annotations

import asyncio

import pytest
from engine_helpers import adt

from shcr_sim.engine import throttle
from shcr_sim.engine.keys import OTHER_PRECEDENCE, KeysError, extract
from shcr_sim.hl7 import parse
from shcr_sim.nhs_number import is_valid as valid_nhs_number


def test_nhs_number_check_digit() -> None:
    assert valid_nhs_number("9990000018")
    assert not valid_nhs_number("9990000019")
    assert not valid_nhs_number("999000001")


def test_patient_key_prefers_valid_nhs_number_then_mrn() -> None:
    assert extract(parse(adt("1", "20240101120000+0000"))).patient_key == "nhs:9990000018"
    bad_nhs = adt("1", "20240101120000+0000", nhs="9990000019")
    assert extract(parse(bad_nhs)).patient_key == "mrn:RXX01|M123"
    classic = adt("1", "20240101120000+0000").replace(
        "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI", "PID|1|9990000018^^^NHS|M123^^^RXX01^MR")
    assert extract(parse(classic)).patient_key == "nhs:9990000018"
    with pytest.raises(KeysError, match="PID"):
        extract(parse(adt("1", "20240101").replace("\rPID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI",
                                                   "\rPID|1||")))


def test_event_time_local_uk_time_and_results_use_obr7() -> None:
    summer = extract(parse(adt("1", "202407011200")))  # no offset: BST
    winter = extract(parse(adt("2", "202401011200")))  # no offset: GMT
    assert summer.event_epoch % 86400 == 11 * 3600
    assert winter.event_epoch % 86400 == 12 * 3600
    oru = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240105000000+0000||ORU^R01|9|P|2.4",
        "PID|1||9990000018^^^NHS^NH",
        "OBR|1|||CODE|||20240102030405+0000",
    ])
    k = extract(parse(oru))
    assert k.event_time == "20240102030405+0000"


def test_ordering_key_time_then_precedence() -> None:
    t = "20240101120000+0000"
    a01 = extract(parse(adt("9", t, mtype="ADT^A01")))
    a04 = extract(parse(adt("8", t, mtype="ADT^A04")))
    a03 = extract(parse(adt("1", t, mtype="ADT^A03")))
    later = extract(parse(adt("0", "20240101120001+0000", mtype="ADT^A28")))
    assert sorted([later, a03, a01, a04], key=lambda k: k.order_key) == [a04, a01, a03, later]


async def test_token_bucket_waits_in_proportion(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    clock = [1000.0]

    async def fake_sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    monkeypatch.setattr(throttle.asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(throttle.time, "monotonic", lambda: clock[0])
    bucket = throttle.TokenBucket(100)
    for _ in range(5):
        await bucket.take(50)
    assert sum(waits) == pytest.approx(2.5)  # 250 messages at 100/s
    unlimited = throttle.TokenBucket(None)
    await unlimited.take(10_000)
    assert sum(waits) == pytest.approx(2.5)
    assert asyncio.iscoroutinefunction(bucket.take)


def test_malformed_clinical_time_is_an_error_naming_the_field() -> None:
    bad = adt("1", "20240101120000+0000").replace("EVN|A08|20240101120000+0000",
                                                   "EVN|A08|2024-01-01 noon")
    with pytest.raises(KeysError, match=r"EVN-2: not an HL7 timestamp: '2024-01-01 noon'"):
        extract(parse(bad))
    oru = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240105000000+0000||ORU^R01|9|P|2.4",
        "PID|1||9990000018^^^NHS^NH",
        "OBR|1|||CODE|||yesterday",
    ])
    with pytest.raises(KeysError, match="OBR-7: not an HL7 timestamp"):
        extract(parse(oru))


def test_event_time_follows_the_converters_rule_evn6_before_evn2() -> None:
    from shcr_sim.fhir import convert_message, load_mapping

    msg = adt("1", "20240101120000+0000").replace(
        "EVN|A08|20240101120000+0000", "EVN|A08|20240105090000+0000||||20240101080000+0000")
    keys = extract(parse(msg))
    assert keys.event_time == "20240101080000+0000"  # EVN-6: when it occurred
    conv = convert_message(parse(msg), load_mapping("itk-acute"))
    assert conv.event_time is not None and conv.event_time.startswith("2024-01-01T08:00")
    only_evn2 = extract(parse(adt("2", "20240105090000+0000")))
    assert only_evn2.event_time == "20240105090000+0000"


def _mdm(cid: str, event: str, txa6: str, msh7: str) -> str:
    return "\r".join([
        f"MSH|^~\\&|EDMS|RXX01|SHCR|SHCR|{msh7}||MDM^{event}|{cid}|P|2.4",
        f"EVN|{event}|{msh7}",
        "PID|1||9990000018^^^NHS^NH",
        f"TXA|1|CL|TX|{txa6}||{txa6}||||||DOC1^EDMS|||||AU",
    ])


def test_documents_at_one_instant_add_then_replace_then_cancel() -> None:
    """T01/T02 add, T08 replaces, T11 cancels — whatever order MSH-7 (sending) says."""
    t = "20240101120000+0000"
    # sent in the reverse order: the cancel was stamped first
    cancel = extract(parse(_mdm("1", "T11", t, "20240101120100+0000")))
    edit = extract(parse(_mdm("2", "T08", t, "20240101120200+0000")))
    content = extract(parse(_mdm("3", "T02", t, "20240101120300+0000")))
    notice = extract(parse(_mdm("4", "T01", t, "20240101120400+0000")))
    assert {k.event_time for k in (cancel, edit, content, notice)} == {t}
    ordered = sorted([cancel, edit, content, notice], key=lambda k: k.order_key)
    assert [k.message_type for k in ordered] == ["MDM^T01", "MDM^T02", "MDM^T08", "MDM^T11"]
    assert all(k.precedence < OTHER_PRECEDENCE for k in ordered)

"""A08 visit updates: the Encounter follows a consultant or ward change, never reopens."""

from __future__ import annotations

import pytest
from fhir_helpers import by_type, convert, hl7, one

ADMIT = "20240315102500+0000"
DISCHARGE = "20240320160000+0000"


def _pv1(klass: str = "I", ward: str = "WARD2", consultant: str = "C2345678^NEW^CON^^^Dr",
         visit: str = "V1", admit: str = ADMIT, discharge: str = "") -> str:
    f = [""] * 46
    f[1], f[2], f[3], f[7], f[10], f[19] = "1", klass, ward, consultant, "430", visit
    f[44], f[45] = admit, discharge
    return "PV1|" + "|".join(f[1:])


def _msg(event: str, pv1: str, *extra: str) -> str:
    return hl7(
        f"MSH|^~\\&|PAS|RX1|X|Y|20240316103000+0000||ADT^{event}|E{event}|P|2.4",
        f"EVN|{event}|20240316102500+0000",
        "PID|1||9990000018^^^NHS^NH~M1^^^RX1^PI||SMITH^JO||19700101|F",
        pv1, *extra,
    )


def test_a08_during_a_stay_updates_consultant_and_ward_and_stays_in_progress():
    admitted = one(convert(_msg("A01", _pv1(ward="WARD1", consultant="C1234567^OLD^CON"))),
                   "Encounter")
    updated = one(convert(_msg("A08", _pv1(), "DG1|1||I10^Hypertension^I10||" + ADMIT + "|W")),
                  "Encounter")
    assert updated["id"] == admitted["id"]
    assert updated["status"] == admitted["status"] == "in-progress"
    assert updated["participant"][0]["individual"]["identifier"]["value"] == "C2345678"
    assert updated["location"][0]["location"]["display"] == "WARD2"
    assert updated["period"] == {"start": "2024-03-15T10:25:00+00:00"}


def test_a08_diagnosis_lands_on_the_stays_condition():
    dg1 = "DG1|1||I10^Hypertension^I10||" + ADMIT + "|W"
    a01 = one(convert(_msg("A01", _pv1(), dg1)), "Condition")
    a08 = one(convert(_msg("A08", _pv1(), dg1)), "Condition")
    assert a08["id"] == a01["id"] and a08["encounter"] == a01["encounter"]


def test_a08_after_discharge_carries_the_discharge_and_stays_finished():
    enc = one(convert(_msg("A08", _pv1(discharge=DISCHARGE))), "Encounter")
    assert enc["status"] == "finished"
    assert enc["period"]["end"] == "2024-03-20T16:00:00+00:00"


@pytest.mark.parametrize(("klass", "admit"), [
    ("O", ADMIT),  # outpatient attendance: planned or in-progress? the A08 cannot tell
    ("E", ADMIT),  # ED attendance: likewise
    ("I", ""),  # an inpatient visit with no admission time: a booking, not a stay
    ("P", ""),  # pre-admission
])
def test_a08_that_cannot_state_the_status_leaves_the_encounter_alone(klass, admit):
    conv = convert(_msg("A08", _pv1(klass=klass, admit=admit)))
    assert by_type(conv, "Encounter") == []
    assert any(u.startswith("PV1: ADT^A08 for a visit neither admitted") for u in conv.unmapped)
    assert one(conv, "Patient")["id"] == "RX1-M1"  # the Patient update still happens


def test_a08_without_a_visit_writes_no_encounter():
    pv1 = "PV1|1|N"
    conv = convert(_msg("A08", pv1))
    assert by_type(conv, "Encounter") == []

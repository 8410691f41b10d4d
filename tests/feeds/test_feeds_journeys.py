"""Journeys make clinical sense, read back from the files with the project's codec.

Per trust and visit number (PV1-19): the visit starts (A01/A04) before it moves (A02),
is updated (A08) or ends (A03); a discharge is never before its admission; a cancelled
discharge (A13) follows a discharge and is followed by another. Corrections (OBX-11 C)
come after the original report with the same filler order number. A40 merges name an
MRN that was registered at that trust earlier. Patients known at several trusts carry
the same NHS number under different local MRNs.
"""

from __future__ import annotations

from collections import defaultdict

from feeds_helpers import Generated, unique

from shcr_sim.hl7 import parse_ts


def _t(value: str) -> float:
    return parse_ts(value).epoch


def test_visits_follow_admission_transfer_discharge(feeds_messages: list[Generated]) -> None:
    visits: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type.startswith("ADT") and "PV1" in m and m.get("PV1-19"):
            event = m.message_type.split("^")[1]
            visits[(g.ods, m.get("PV1-19.1"))].append((_t(m.get("EVN-2")), event,
                                                      m.get("PV1-44")))
    assert len(visits) > 100
    checked = 0
    booked = 0
    for key, events in visits.items():
        events.sort()
        kinds = [e for _, e, _ in events]
        if kinds[0] == "A05":  # an elective booking, then the admission
            assert kinds.count("A05") == 1
            booked += 1
            if kinds == ["A05"]:  # admission date beyond the simulated window
                checked += 1
                continue
            assert kinds[1] == "A01", (key, kinds)
            events = [e for e in events if e[1] != "A05"]
            kinds = kinds[1:]
        start = kinds[0]
        assert start in ("A01", "A04"), (key, kinds)
        admit_time = _t(events[0][2])
        assert admit_time == events[0][0], "PV1-44 is the admission event time"
        for time, kind, pv1_44 in events:
            assert _t(pv1_44) == admit_time, (key, kinds)
            assert time >= admit_time
            if kind == "A11":  # admitted or arrived in error: nothing follows
                assert kinds[-1] == "A11" and start in ("A01", "A04")
        if "A13" in kinds:
            i = kinds.index("A13")
            assert kinds[i - 1] == "A03"
            assert "A03" in kinds[i + 1 :], "a cancelled discharge is followed by another"
        if "A02" in kinds:
            assert start == "A01"
        checked += 1
    assert checked == len(visits)
    assert booked > 0


def test_bookings_name_the_expected_admission(feeds_messages: list[Generated]) -> None:
    admissions = {(g.ods, g.msg.get("PV1-19.1")): g.msg.get("EVN-2") for g in feeds_messages
                  if g.msg.message_type == "ADT^A01"}
    n = 0
    for g in feeds_messages:
        m = g.msg
        if m.message_type == "ADT^A05":
            assert m.get("PV1-2") == "P" and not m.get("PV1-44")
            admitted = admissions.get((g.ods, m.get("PV1-19.1")))
            if admitted:  # (the admission may fall after the simulated window)
                assert m.get("PV2-8") == admitted
                assert _t(m.get("EVN-2")) < _t(admitted)
                n += 1
    assert n > 0


def test_discharge_never_before_admission(feeds_messages: list[Generated]) -> None:
    n = 0
    for g in feeds_messages:
        m = g.msg
        if "PV1" in m and m.get("PV1-45"):
            assert _t(m.get("PV1-45")) >= _t(m.get("PV1-44"))
            n += 1
    assert n > 100


def test_corrections_follow_their_original(feeds_messages: list[Generated]) -> None:
    reports: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type == "ORU^R01":
            status = m.get("OBR-25")
            reports[(g.ods, m.get("OBR-3.1"))].append((_t(m.get("OBR-22")), status))
            assert _t(m.get("OBR-22")) >= _t(m.get("OBR-7")), "resulted after collection"
            if status == "C":
                flags = {s.get(11) for s in m.all("OBX")}
                assert "C" in flags or flags == {"W"}, flags
    corrected = [r for r in reports.values() if any(s == "C" for _, s in r)]
    assert corrected
    for r in corrected:
        r.sort()
        assert r[0][1] == "F", "the original final report comes first"
        assert all(s == "C" for _, s in r[1:])
        assert len({t for t, _ in r}) == len(r)


def test_merges_reference_registered_mrns(feeds_messages: list[Generated]) -> None:
    registered: dict[tuple[str, str], float] = {}
    merges = []
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type == "ADT^A28":
            for rep in m["PID"].repetitions(3):
                parts = rep.split("^")
                if parts[3:4] == [g.ods]:
                    registered[(g.ods, parts[0])] = _t(m.get("EVN-2"))
        elif m.message_type == "ADT^A40":
            merges.append(g)
    assert merges
    for g in merges:
        m = g.msg
        old = m.get("MRG-1.1")
        assert m.get("MRG-1.4") == g.ods
        survivor = next(r.split("^")[0] for r in m["PID"].repetitions(3)
                        if r.split("^")[3:4] == [g.ods])
        assert old != survivor
        assert (g.ods, old) in registered, "MRG-1 names an MRN the trust registered"
        assert (g.ods, survivor) in registered
        assert registered[(g.ods, old)] < _t(m.get("EVN-2"))


def test_shared_patients_have_one_nhs_number_and_local_mrns(feeds_messages) -> None:
    mrns_by_nhs: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for g in feeds_messages:
        m = g.msg
        if m.message_type != "ADT^A28":
            continue
        nhs = ""
        mrn = ""
        for rep in m["PID"].repetitions(3) + ([m.get("PID-2")] if m.get("PID-2") else []):
            parts = rep.split("^")
            if parts[3:4] == ["NHS"]:
                nhs = parts[0]
            elif parts[3:4] == [g.ods]:
                mrn = parts[0]
        if nhs:
            mrns_by_nhs[nhs].add((g.ods, mrn))
    shared = [v for v in mrns_by_nhs.values() if len({ods for ods, _ in v}) > 1]
    assert len(shared) > 20, "a share of patients is known at several trusts"


def _patient_keys(g: Generated) -> set[str]:
    """NHS number when known, else trust + MRN."""
    m = g.msg
    keys = set()
    for rep in m["PID"].repetitions(3) + ([m.get("PID-2")] if m.get("PID-2") else []):
        parts = rep.split("^")
        if parts[3:4] == ["NHS"]:
            keys.add(parts[0])
        elif parts[3:4] == [g.ods]:
            keys.add(f"{g.ods}/{parts[0]}")
    return keys


def _event_time(m) -> float:
    for path in ("EVN-2", "OBR-22", "ORC-9", "MSH-7"):
        if m.get(path):
            return _t(m.get(path))
    raise AssertionError


def test_nothing_happens_after_a_death(feeds_messages: list[Generated]) -> None:
    deaths: dict[str, float] = {}
    for g in feeds_messages:
        m = g.msg
        if "PID" in m and m.get("PID-30") == "Y":
            assert m.message_type == "ADT^A03"
            assert m.get("PV1-36") == "DIED"
            died = _t(m.get("PID-29"))
            assert died == _t(m.get("PV1-45")) == _t(m.get("EVN-2"))
            assert _t(m.get("PV1-44")) < died
            for key in _patient_keys(g):
                deaths[key] = died
    assert deaths, "some patients die in hospital during the window"
    for g in feeds_messages:
        if "PID" not in g.msg:
            continue
        for key in _patient_keys(g) & deaths.keys():
            assert _event_time(g.msg) <= deaths[key], (key, g.msg.message_type)


def test_specialties_fit_the_patient_age(feeds_messages: list[Generated]) -> None:
    seen = set()
    for g in feeds_messages:
        m = g.msg
        if "PV1" not in m or not m.get("PV1-10") or not m.get("PV1-44"):
            continue
        born = int(m.get("PID-7")[:4])
        year = int(m.get("PV1-44")[:4])
        spec = m.get("PV1-10")
        if year - born < 15:
            assert spec not in ("430", "715", "710"), spec
        if spec in ("430", "715"):
            assert year - born >= 63, (spec, born, year)
        if spec in ("420", "711"):
            assert year - born <= 18, (spec, born, year)
        seen.add(spec)
    assert {"420", "430", "300", "180", "710"} <= seen


def test_every_record_starts_with_its_registration(feeds_messages: list[Generated]) -> None:
    """At each trust, a record's first ADT event (by event time) is its A28."""
    first: dict[tuple[str, str], tuple[float, str]] = {}
    for g in unique(feeds_messages):
        m = g.msg
        if not m.message_type.startswith("ADT") or m.message_type == "ADT^A40":
            continue
        mrn = next(r.split("^")[0] for r in m["PID"].repetitions(3)
                   if r.split("^")[3:4] == [g.ods])
        t = _t(m.get("EVN-2"))
        key = (g.ods, mrn)
        if key not in first or t < first[key][0]:
            first[key] = (t, m.message_type)
    assert len(first) > 500
    assert {kind for _, kind in first.values()} == {"ADT^A28"}


def test_results_and_documents_follow_their_visit(feeds_messages: list[Generated]) -> None:
    admitted: dict[tuple[str, str], float] = {}
    for g in feeds_messages:
        m = g.msg
        if "PV1" in m and m.get("PV1-19.1") and m.get("PV1-44"):
            admitted[(g.ods, m.get("PV1-19.1"))] = _t(m.get("PV1-44"))
    n = 0
    for g in feeds_messages:
        m = g.msg
        if m.message_type in ("ORU^R01", "MDM^T02", "RDE^O11") and m.get("PV1-19.1"):
            start = admitted[(g.ods, m.get("PV1-19.1"))]
            when = m.get("OBR-7") or m.get("TXA-4") or m.get("ORC-9")
            assert _t(when) >= start
            n += 1
    assert n > 1000


def test_gp_requests_come_without_a_hospital_visit(feeds_messages: list[Generated]) -> None:
    gp = [g for g in feeds_messages if g.msg.message_type == "ORU^R01" and "PV1" not in g.msg
          and g.msg.get("OBR-16.1").startswith("G")]
    assert len(gp) > 50
    assert all(g.msg.get("ORC-12.1") == g.msg.get("OBR-16.1") for g in gp)


def test_reference_ranges_and_flags_agree(feeds_messages: list[Generated]) -> None:
    ranges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for g in feeds_messages:
        m = g.msg
        if m.message_type != "ORU^R01":
            continue
        for obx in m.all("OBX"):
            if obx.get(2) != "NM" or not obx.get(7):
                continue
            low, high = (float(x) for x in obx.get(7).split("-"))
            value = float(obx.get(5))
            flag = obx.get(8)
            assert flag == ("H" if value > high else "L" if value < low else "N")
            ranges[(obx.get(3, comp=2), m.get("PID-8"))].add(obx.get(7))
    assert ranges[("Haemoglobin", "F")] == {"115-165"}
    assert ranges[("Haemoglobin", "M")] == {"130-180"}


def test_withdrawn_results_follow_their_original(feeds_messages: list[Generated]) -> None:
    finals: dict[tuple[str, str], float] = {}
    withdrawn = []
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type != "ORU^R01":
            continue
        flags = {s.get(11) for s in m.all("OBX")}
        key = (g.ods, m.get("OBR-3.1"))
        if flags == {"W"}:
            withdrawn.append((key, _t(m.get("OBR-22"))))
            assert "withdrawn" in m.get_text("NTE-3")
        elif m.get("OBR-25") == "F":
            finals[key] = _t(m.get("OBR-22"))
    assert withdrawn
    for key, t in withdrawn:
        assert finals[key] < t

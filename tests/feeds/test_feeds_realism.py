"""What an NHS integration engineer expects of real feeds, read back from the files.

Every message type the converter handles shows up in a small default run; planned
work happens in office hours and unplanned care around the clock; a message's PV1
is the visit as it stood at that message's time; nobody attends a clinic in the
middle of an admission; visit numbers rise with time; each trust has its own
consultants and a letter's author is the visit's clinician.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from feeds_helpers import Generated, local_mrn, read_all, unique

from shcr_sim.feeds.daytime import local_clock
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.hl7 import parse_ts

HOUR = 3600


def _t(value: str) -> int:
    return int(parse_ts(value).epoch)


def _person(g: Generated) -> str:
    """The NHS number when known (joins a duplicate record to its original), else MRN."""
    m = g.msg
    for rep in m["PID"].repetitions(3) + ([m.get("PID-2")] if m.get("PID-2") else []):
        parts = rep.split("^")
        if parts[3:4] == ["NHS"]:
            return parts[0]
    return local_mrn(g)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> list[Generated]:
    """The built-in scenario, about 3,000 messages: what a newcomer generates first."""
    out: Path = tmp_path_factory.mktemp("default-3000")
    generate(load_scenario(None), out, messages=3000)
    return read_all(out)


def _kinds(messages: list[Generated]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for g in messages:
        m = g.msg
        kinds[m.message_type] += 1
        for obx in m.all("OBX"):
            if m.message_type == "ORU^R01" and obx.get(11) in ("C", "W"):
                kinds[f"OBX-11 {obx.get(11)}"] += 1
    return kinds


def test_a_small_default_run_has_every_message_type(default_run: list[Generated]) -> None:
    kinds = _kinds(default_run)
    assert 3000 <= len(default_run) < 3300
    for kind in ("ADT^A28", "ADT^A31", "ADT^A04", "ADT^A05", "ADT^A01", "ADT^A02", "ADT^A08",
                 "ADT^A03", "ADT^A11", "ADT^A13", "ADT^A40", "ORU^R01", "OBX-11 C", "OBX-11 W",
                 "RDE^O11", "MDM^T02", "MDM^T08", "MDM^T11"):
        assert kinds[kind] > 0, (kind, kinds)


def _planned(g: Generated) -> str | None:
    """The kind of planned work this message records (None: unplanned or other)."""
    m = g.msg
    mtype = m.message_type
    if mtype in ("ADT^A28", "ADT^A31", "ADT^A05", "ADT^A40"):
        return mtype
    if mtype == "ADT^A04" and m.get("PV1-2") == "O":
        return "outpatient / community contact"
    if mtype == "MDM^T02" and m.get("TXA-2") in ("CL", "DS", "CPA"):
        return "letter"
    if mtype == "ORU^R01" and m.get("OBR-4.2")[:3] in ("MR ", "US "):  # on the day lists
        return "MR / ultrasound"
    if mtype == "ORU^R01" and "PV1" not in m:  # GP bloods, elective imaging, echo
        return f"elective {m.get('OBR-24')}"
    return None


def _when(g: Generated) -> int:
    m = g.msg
    return _t(m.get("EVN-2") or m.get("OBR-7") or m.get("TXA-6"))


def test_planned_work_happens_in_office_hours(default_run: list[Generated]) -> None:
    planned: Counter[str] = Counter()
    night: Counter[str] = Counter()
    weekend = 0
    for g in default_run:
        kind = _planned(g)
        if kind is None:
            continue
        clock, weekday = local_clock(_when(g))
        planned[kind] += 1
        night[kind] += clock < 7 * HOUR
        weekend += weekday >= 5
    assert {"ADT^A28", "ADT^A05", "letter", "outpatient / community contact",
            "elective CH", "elective RAD"} <= set(planned)
    assert planned["MR / ultrasound"] > 10
    for kind, n in planned.items():
        assert night[kind] <= 0.03 * n, (kind, night[kind], n)
    assert weekend <= 0.03 * sum(planned.values())


def test_unplanned_care_comes_around_the_clock_on_a_daily_curve(
        default_run: list[Generated]) -> None:
    hours: Counter[int] = Counter()
    for g in default_run:
        m = g.msg
        if m.message_type == "ADT^A04" and m.get("PV1-2") == "E":
            hours[local_clock(_t(m.get("EVN-2")))[0] // HOUR] += 1
    night = sum(hours[h] for h in range(0, 7))
    day = sum(hours[h] for h in range(10, 17))
    assert night > 0, "ED is open at night"
    assert day > 2 * night, "but busiest in the day"


def test_each_message_carries_the_visit_as_it_stood_then(
        feeds_messages: list[Generated]) -> None:
    """PV1-3 of an A08, a discharge, a result or a prescription is the ward after the
    last admission/transfer before it, not the ward the patient ended up on."""
    moves: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    msgs = unique(feeds_messages)
    for g in msgs:
        m = g.msg
        if m.message_type in ("ADT^A01", "ADT^A02"):
            moves[(g.ods, m.get("PV1-19.1"))].append((_t(m.get("EVN-2")), m.get("PV1-3.1")))
    for timeline in moves.values():
        timeline.sort()
    checked: Counter[str] = Counter()
    for g in msgs:
        m = g.msg
        if "PV1" not in m or m.get("PV1-2") != "I":
            continue
        timeline = moves.get((g.ods, m.get("PV1-19.1")))
        if not timeline or len(timeline) < 2:
            continue  # never moved: nothing to get wrong
        mtype = m.message_type
        if mtype in ("ADT^A08", "ADT^A02"):
            when = _t(m.get("EVN-2"))
        elif mtype == "ORU^R01":
            when = _t(m.get("OBR-7"))
        elif mtype.startswith("RDE"):
            when = _t(m.get("ORC-9"))
        else:
            continue
        i = bisect.bisect_right([t for t, _ in timeline], when) - 1
        assert m.get("PV1-3.1") == timeline[max(i, 0)][1], (mtype, m.get("PV1-19.1"))
        checked[mtype] += 1
    assert checked["ADT^A02"] > 10 and checked["ORU^R01"] > 10 and checked["ADT^A08"] > 0


def test_no_other_contact_while_admitted(feeds_messages: list[Generated]) -> None:
    """At one trust, a patient in an inpatient bed has no separate attendance (A04), not
    even under a duplicate registration."""
    stays: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    admitted: dict[tuple[str, str, str], int] = {}
    msgs = [g for g in unique(feeds_messages) if g.msg.message_type.startswith("ADT")
            and g.msg.message_type != "ADT^A40"]
    for g in msgs:
        m = g.msg
        key = (g.ods, _person(g), m.get("PV1-19.1"))
        if m.message_type == "ADT^A01":
            admitted[key] = _t(m.get("EVN-2"))
    for g in msgs:  # the last discharge (or cancellation) of each admission ends it
        m = g.msg
        key = (g.ods, _person(g), m.get("PV1-19.1"))
        if key in admitted and m.message_type in ("ADT^A03", "ADT^A11"):
            stays[key[:2]].append((admitted[key], _t(m.get("EVN-2"))))
    attendances = 0
    for g in msgs:
        m = g.msg
        if m.message_type != "ADT^A04":
            continue
        t = _t(m.get("EVN-2"))
        for start, end in stays.get((g.ods, _person(g)), ()):
            assert not start <= t <= end, (g.ods, _person(g), m.get("PV1-19.1"))
        attendances += 1
    assert attendances > 500 and len(stays) > 50


def test_visit_numbers_rise_with_time(feeds_messages: list[Generated]) -> None:
    """Per trust, a later visit number never starts in an earlier hour."""
    starts: dict[str, dict[str, int]] = defaultdict(dict)
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type in ("ADT^A01", "ADT^A04"):
            starts[g.ods][m.get("PV1-19.1")] = _t(m.get("EVN-2"))
    assert len(starts) >= 4
    for ods, visits in starts.items():
        hours = [visits[n] // HOUR for n in sorted(visits)]
        assert hours == sorted(hours), ods
        assert len(visits) > 20


def test_each_trust_has_its_own_consultants(feeds_messages: list[Generated]) -> None:
    codes: dict[str, set[str]] = defaultdict(set)
    for g in feeds_messages:
        m = g.msg
        if "PV1" in m and m.get("PV1-7.1"):
            codes[g.ods].add(m.get("PV1-7.1"))
    assert len(codes) == 5
    for a in codes:
        assert len(codes[a]) >= 5
        for b in codes:
            if a < b:
                assert not codes[a] & codes[b], (a, b)


def test_a_letter_is_written_by_the_visit_clinician(feeds_messages: list[Generated]) -> None:
    n: Counter[str] = Counter()
    for g in feeds_messages:
        m = g.msg
        if m.message_type.startswith("MDM") and m.get("PV1-7"):
            assert m.get("TXA-5") == m.get("PV1-7") == m.get("TXA-9")
            n[g.ods] += 1
    assert n["NZU"] > 10 and len(n) == 5


def test_document_edits_and_cancellations_follow_their_original(
        feeds_messages: list[Generated]) -> None:
    """T08 keeps the document number and origination time, with new content and an edit
    time after it; T11 comes after the original and carries no content."""
    originals: dict[tuple[str, str], Generated] = {}
    later: list[Generated] = []
    for g in unique(feeds_messages):
        m = g.msg
        if m.message_type == "MDM^T02":
            originals[(g.ods, m.get("TXA-12.1"))] = g
        elif m.message_type in ("MDM^T08", "MDM^T11"):
            later.append(g)
    kinds = Counter(g.msg.message_type for g in later)
    assert kinds["MDM^T08"] > 0 and kinds["MDM^T11"] > 0
    for g in later:
        m = g.msg
        first = originals[(g.ods, m.get("TXA-12.1"))].msg
        assert m.get("TXA-6") == first.get("TXA-6")
        assert _t(m.get("EVN-2")) > _t(first.get("EVN-2"))
        if m.message_type == "MDM^T08":
            assert _t(m.get("TXA-8")) == _t(m.get("EVN-2"))
            assert m.all("OBX")
            assert [s.get(5) for s in m.all("OBX")] != [s.get(5) for s in first.all("OBX")]
        else:
            assert not m.all("OBX") and m.get("TXA-19") == "UN"
            assert m.get("MSH-9") == "MDM^T11^MDM_T01"


def test_a_duplicate_registration_never_lands_inside_an_open_visit() -> None:
    """The duplicate record's contact is moved past the original record's open stay."""
    import random

    from shcr_sim.feeds.model import Event, Reg, TrustState, Visit
    from shcr_sim.feeds.records import _free_time

    sc = load_scenario(None)
    st = TrustState(sc.trusts[0])
    person = None
    reg = Reg(st, st.new_mrn(), person, 0)  # type: ignore[arg-type]
    t0 = 1_720_000_000
    stay = Visit("V1", "I", "AMU", "B01", "300", st.consultants[0], t0)
    reg.events += [Event(t0 - 20 * 86400, 1, "adt", "A05", stay),  # booking: not a stay
                   Event(t0, 2, "adt", "A01", stay),
                   Event(t0 + 5 * 86400, 3, "adt", "A03", stay)]
    rng = random.Random(1)
    assert _free_time(reg, t0 - 30 * 86400, rng) == t0 - 30 * 86400  # well before: kept
    for t in (t0 - 4 * HOUR, t0, t0 + 86400, t0 + 5 * 86400):
        moved = _free_time(reg, t, rng)
        assert moved > t0 + 5 * 86400
    assert _free_time(reg, t0 + 6 * 86400, rng) == t0 + 6 * 86400

"""A patient's records across the trusts, with every event of their journeys.

Each trust allocates MRNs (and visit, order and document numbers) as it first meets
a patient, so generating patients in index order gives every trust's extract in
local-id order. All randomness comes from streams seeded by (seed, patient, trust).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .catalogue import load_catalogue, load_people
from .clock import epoch_of
from .daytime import DAY, HOUR, office
from .journeys import Journey
from .model import Event, Reg, TrustState
from .population import Person, make_person
from .scenario import Scenario


@dataclass
class Window:
    """Epoch seconds: backload start, cut-over to live, end of the live window."""

    start: int
    cut: int
    end: int

    @classmethod
    def of(cls, sc: Scenario) -> Window:
        start = epoch_of(sc.backload.start)
        cut = epoch_of(sc.backload.end)
        return cls(start, cut, cut + int(sc.live.hours * 3600))


@dataclass
class PatientRecords:
    """One patient's records, in the order they go to the files (trust, then MRN)."""

    person: Person
    regs: list[Reg] = field(default_factory=list)


def _pick_trusts(rng: random.Random, sc: Scenario) -> list[int]:
    weights = [t.weight for t in sc.trusts]
    n = len(weights)
    first = rng.choices(range(n), weights)[0]
    chosen = {first}
    if n > 1 and rng.random() < sc.population.multi_trust_share:
        extra = 1 if rng.random() < 0.7 else 2
        for _ in range(extra * 3):
            if len(chosen) >= min(n, 1 + extra):
                break
            chosen.add(rng.choices(range(n), weights)[0])
    return sorted(chosen)


def build_patient(
    sc: Scenario, seed: int, index: int, states: list[TrustState], w: Window
) -> PatientRecords:
    """All of one patient's records and their events (allocating ids at each trust)."""
    ref_year = datetime.fromtimestamp(w.cut, UTC).year
    person = make_person(seed, index, sc.population.no_nhs_number_share, ref_year, load_people())
    rng = random.Random(f"{seed}:patient:{index}")
    out = PatientRecords(person)
    cat = load_catalogue()
    span = w.end - w.start
    trusts = _pick_trusts(rng, sc)
    duplicate = rng.random() < sc.population.duplicate_share
    person.died = _death(rng, person, ref_year, w)
    end = w.end if person.died is None else min(w.end, person.died + 1)
    dying_at: int | None = None
    for ti in trusts:
        st = states[ti]
        # registered by the records office on a working day
        registered = office(rng, w.start + int(rng.random() ** 2 * span * 0.95))
        view = person.copy()
        reg = Reg(st, st.new_mrn(), view, registered)
        jrng = random.Random(f"{seed}:journey:{index}:{st.ods}")
        j = Journey(reg, jrng, w.cut, end, sc.live.rate_multiplier, sc.correction_rate, cat)
        final = None
        if (person.died is not None and dying_at is None and st.trust.kind == "acute"
                and registered < person.died - 10 * DAY):
            dying_at = ti  # dies in hospital here, after a short final admission
            final = person.died - jrng.randint(DAY, 10 * DAY)
        j.build(final)
        out.regs.append(reg)
        if duplicate and "adt" in st.sends and registered + 2 * DAY < end:
            duplicate = False
            out.regs.append(_duplicate(sc, reg, jrng, w, end))
    for reg in out.regs:
        reg.events.sort(key=lambda e: (e.time, e.seq))
    return out


def _death(rng: random.Random, person: Person, ref_year: int, w: Window) -> int | None:
    """Whether (and when) this person dies inside the window; older people more often."""
    age = ref_year - person.birth_year
    yearly = 0.001 if age < 50 else 0.006 if age < 70 else 0.03 if age < 85 else 0.1
    years = (w.end - w.start) / (365.25 * DAY)
    if rng.random() < yearly * years:
        return w.start + int(rng.random() * (w.end - w.start))
    return None


def _duplicate(sc: Scenario, orig: Reg, rng: random.Random, w: Window, end: int) -> Reg:
    """A second registration of the same person at the same trust, merged later by A40."""
    st = orig.state
    p = orig.person.copy()
    if rng.random() < 0.6:
        p.nhs = None  # registered in a hurry without tracing the NHS number
    else:
        p.given = p.given[:-1] if len(p.given) > 3 else p.given + "e"
    t_dup = orig.registered + DAY + int(rng.random() * (end - orig.registered - 2 * DAY))
    t_dup = _free_time(orig, t_dup, rng)  # the same person: never while already in a bed
    dup = Reg(st, st.new_mrn(), p, t_dup)
    j = Journey(dup, rng, w.cut, end, sc.live.rate_multiplier, sc.correction_rate)
    j.may_admit = False  # a short contact: nothing to overlap the original record's visits
    j.add(t_dup, "adt", "A28")
    if st.trust.kind == "acute":
        j.ed_attendance(t_dup + 600)
    elif st.trust.kind == "urgent-care":
        j.urgent_care(t_dup + 600)
    else:
        j.mh_contact(t_dup + 600)
    last = max((e.time for e in dup.events), default=t_dup)
    t_merge = office(rng, last + rng.randint(DAY, 21 * DAY))  # data-quality team's work
    if t_merge < end:
        orig.events.append(Event(t_merge, 10_000_000, "adt", "A40", None, {"old_mrn": dup.mrn}))
    return dup


def _free_time(orig: Reg, t: int, rng: random.Random) -> int:
    """The first time at or after ``t`` with no visit of the original record open for the
    next eight hours (a visit spans its ADT events, a booking's A05 aside)."""
    spans: dict[str, list[int]] = {}
    for ev in orig.events:
        if ev.visit is not None and ev.dtype == "adt" and ev.kind != "A05":
            span = spans.setdefault(ev.visit.number, [ev.time, ev.time])
            span[0] = min(span[0], ev.time)
            span[1] = max(span[1], ev.time)
    for start, stop in sorted(spans.values()):
        if stop < t:
            continue
        if start > t + 8 * HOUR:
            break
        t = stop + rng.randint(HOUR, 2 * DAY)
    return t

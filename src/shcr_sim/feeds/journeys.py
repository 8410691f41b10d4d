"""Patient journeys that make clinical sense, as events at one trust.

For each of a patient's records the journey is: registration (A28), then encounters
arriving as Poisson processes (faster in the live window when the scenario says so):
ED attendances (A04 … A03, sometimes admitted), outpatient clinics, inpatient spells
(A01 → A02 transfers → A03, with A08 updates, A11/A13 cancellations), each with the
results, prescriptions and documents that such an encounter produces.

Encounters are played in time order and one never starts while another is still
open at the trust (no clinic visit in the middle of an admission). Planned work
falls in weekday office hours; unplanned care follows a daily curve (``daytime``).
Identifiers (visit numbers, order numbers, document ids) are allocated as events
are created.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import replace

from ..hl7 import escape
from .catalogue import Catalogue, Exam, LabTest, Panel, load_catalogue, load_people
from .daytime import DAY, ED_CURVE, HOUR, URGENT_CURVE, Curve, daytime, morning_round, office
from .model import Event, Reg, TrustState, Visit
from .population import make_address

YEAR = 365.25 * DAY

# encounters per patient-year by kind of trust (scaled by frailty and the trust's
# activity; a scenario may override them per trust with `rates`)
RATES = {
    "acute": {"ed": 0.25, "outpatient": 0.7, "elective": 0.06, "gp_requests": 0.8},
    "mental-health": {"contact": 3.0, "admission": 0.08},
    "urgent-care": {"attendance": 0.6},
    "community": {"contact": 2.0},
}
ACUTE_WARDS = ("AMU", "Ward 7", "Ward 12", "Ward 23", "CCU", "Ward 31", "Ward 4", "SAU")
MH_WARDS = ("Beech Ward", "Hawthorn Ward", "Rowan Ward", "Elm PICU")
CLINICS = {
    "100": "OPD-GSURG", "110": "OPD-TRAUMA", "300": "OPD-MED", "320": "OPD-CARD",
    "340": "OPD-RESP", "430": "OPD-ELD",
}
ADULT_CLINICS = ("100", "110", "300", "320", "340")
CHILD_DIAGNOSES = ("J18.9", "N39.0", "K35.8", "R55")
CHILD_MH_DIAGNOSES = ("F32.2", "F41.1")
MH_TEAMS = ("CMHT-NORTH", "CMHT-SOUTH", "CRISIS-TEAM", "EIP-TEAM", "OLDER-ADULT-CMHT")
# how often things are recorded in error and put right
CANCEL_ATTENDANCE = 0.03  # outpatient arrival recorded in error (A04 then A11)
CANCEL_ADMISSION = 0.03  # admitted in error (A01 then A11)
CANCEL_DISCHARGE = 0.05  # inpatient discharge recorded too early (A03, A13, A03)
CANCEL_ED_DEPARTURE = 0.02  # ED departure recorded too early
AMEND_DOCUMENT = 0.05  # a letter corrected after it was sent (T08)
CANCEL_DOCUMENT = 0.02  # a letter filed against the wrong patient, withdrawn (T11)


class Journey:
    """Builds one record's events; ``rng`` is that record's own stream."""

    def __init__(
        self,
        reg: Reg,
        rng: random.Random,
        cut: int,
        end: int,
        live_mult: float,
        correction_rate: float,
        cat: Catalogue | None = None,
    ) -> None:
        self.reg = reg
        self.st: TrustState = reg.state
        self.rng = rng
        self.cut = cut
        self.end = end
        self.live_mult = live_mult
        self.correction_rate = correction_rate
        self.cat = cat or load_catalogue()
        self.people = load_people()
        self.seq = 0
        self.sends = self.st.sends
        self.kind = self.st.trust.kind
        self.age = 1970 + cut // int(YEAR) - reg.person.birth_year  # age at the cut-over
        self.limit: int | None = None  # a final admission starts here: other stays end before
        self.may_admit = True  # False: ED attendances end in the department

    # --- helpers ------------------------------------------------------------
    def add(self, t: int, dtype: str, kind: str, visit: Visit | None = None, **data) -> None:
        if t >= self.end or dtype not in self.sends:
            return
        self.seq += 1
        self.reg.events.append(Event(int(t), self.seq, dtype, kind, visit, data))

    def arrivals(self, start: int, per_year: float, curve: Curve | None = None) -> list[int]:
        """Poisson arrival times in [start, end), rate × live multiplier after the cut-over;
        with a ``curve``, thinned to its hourly shape (same mean rate)."""
        out: list[int] = []
        rng = self.rng
        rate = per_year * self.reg.person.frailty * self.st.trust.activity / YEAR
        if rate <= 0:
            return out
        if curve is not None:
            rate *= curve.boost
        t = float(start)
        while True:
            live = t >= self.cut
            nt = t + rng.expovariate(rate * self.live_mult if live else rate)
            if not live and nt >= self.cut:
                t = float(self.cut)  # memoryless: restart at the cut-over at the live rate
                continue
            if nt >= self.end:
                return out
            if curve is None or curve.keeps(rng, int(nt)):
                out.append(int(nt))
            t = nt

    def consultant(self) -> tuple[str, str, str]:
        c = self.st.consultants
        return c[self.rng.randrange(len(c))]

    def office(self, t: int) -> int:
        """The first weekday office-hours time (09:00-17:00) at or after t: clinics,
        elective lists, bookings, letters. Never earlier than t."""
        return office(self.rng, t)

    # --- whole journey ------------------------------------------------------
    def build(self, final_admission: int | None = None) -> None:
        """Registration, demographic updates and the encounters of this record's life,
        played in time order; ``final_admission``: the patient dies in hospital here
        after an emergency admission at that time."""
        reg = self.reg
        self.add(reg.registered, "adt", "A28")
        rates = {**RATES.get(self.kind, RATES["acute"]), **self.st.trust.rates}
        rng = self.rng
        # demographic changes the trust hears about (keyed in by the records office)
        for t in self.arrivals(reg.registered, 0.12):
            roll = rng.random()
            if roll < 0.6:
                change = ("address", make_address(rng, self.people))
            elif roll < 0.9:
                change = ("phone", f"01632 {rng.randint(960000, 960999)}")
            else:
                change = ("surname", self.people.surnames[rng.randrange(len(self.people.surnames))])
            self.add(self.office(t), "adt", "A31", change=change)
        start = reg.registered
        todo: list[tuple[int, str]] = []
        if self.kind == "acute":
            todo += [(t, "ed") for t in self.arrivals(start, rates["ed"], ED_CURVE)]
            todo += [(self.office(t), "outpatient") for t in self.arrivals(start,
                                                                           rates["outpatient"])]
            todo += [(self.office(t), "elective") for t in self.arrivals(start, rates["elective"])]
            todo += [(self.office(t), "gp") for t in self.arrivals(start, rates["gp_requests"])]
        elif self.kind == "mental-health":
            todo += [(self.office(t), "contact") for t in self.arrivals(start, rates["contact"])]
            todo += [(t, "admission") for t in self.arrivals(start, rates["admission"], ED_CURVE)]
        elif self.kind == "community":
            todo += [(self.office(t), "community") for t in self.arrivals(start, rates["contact"])]
        else:  # urgent care
            todo += [(t, "urgent") for t in self.arrivals(start, rates["attendance"],
                                                          URGENT_CURVE)]
        if final_admission is not None:
            self.limit = final_admission
        todo.sort()
        busy_until = 0
        last_start = self.end if self.limit is None else self.limit - 2 * DAY
        for t, what in todo:
            # one encounter at a time, and nothing in the two days before a final admission
            if t < busy_until or t >= last_start:
                continue
            if what == "ed":
                busy_until = self.ed_attendance(t)
            elif what == "outpatient":
                busy_until = self.outpatient(t)
            elif what == "elective":
                busy_until = self.spell(t, "C", None)
            elif what == "gp":
                self.gp_request(t)
            elif what == "contact":
                busy_until = self.mh_contact(t)
            elif what == "admission":
                busy_until = self.spell(t, "E", None, mental_health=True)
            elif what == "community":
                busy_until = self.mh_contact(t, community=True)
            else:
                busy_until = self.urgent_care(t)
        if final_admission is not None:
            self.spell(final_admission, "E", None, dies=True)

    # --- encounters ---------------------------------------------------------
    def _visit(self, pclass: str, ward: str, specialty: str, t: int, **kw) -> Visit:
        return Visit(
            number=self.st.new_visit(t),
            pclass=pclass,
            ward=ward,
            bed=kw.pop("bed", ""),
            specialty=specialty,
            consultant=self.consultant(),
            admit=t,
            **kw,
        )

    def _diagnosis(self, mental_health: bool = False) -> tuple[str, str, str]:
        pool = self.cat.mh_diagnoses if mental_health else self.cat.acute_diagnoses
        if self.age < 16:
            allowed = CHILD_MH_DIAGNOSES if mental_health else CHILD_DIAGNOSES
            pool = tuple(d for d in pool if d.icd10 in allowed)
        d = pool[self.rng.randrange(len(pool))]
        return (d.icd10, d.display, d.snomed)

    def ed_attendance(self, t0: int) -> int:
        """An ED attendance (A04 … A03), sometimes admitted; returns when it is over."""
        rng = self.rng
        v = self._visit("E", "ED", "180", t0, admit_type="A")
        diag = self._diagnosis()
        self.add(t0, "adt", "A04", v)
        if rng.random() < 0.7:
            col = t0 + rng.randint(20 * 60, 60 * 60)
            panels = ["FBC", "UE", "CRP"]
            if diag[0] in ("I21.9", "R07.4") or rng.random() < 0.1:
                panels.append("TROP")
            for key in panels:
                self.lab(col, self.cat.panels[key], v)
        if rng.random() < 0.35:
            exam = self.cat.radiology[rng.choice((0, 0, 1, 2))]
            self.imaging(t0 + rng.randint(30 * 60, 2 * HOUR), exam, v)
        if rng.random() < 0.3:
            self.cardiology(t0 + rng.randint(10 * 60, 40 * 60), self.cat.cardiology["ECG"], v)
        t_out = t0 + rng.randint(2 * HOUR, 4 * HOUR)
        admitted = rng.random() < 0.25 and self.may_admit
        done = replace(v, discharge=t_out, disposition="ADM" if admitted else "HOME")
        self.add(t_out, "adt", "A03", done, diagnoses=[diag])
        if admitted:
            return self.spell(t_out + rng.randint(5 * 60, 40 * 60), "E", diag)
        if rng.random() < CANCEL_ED_DEPARTURE:  # still in the department: departure undone
            t_cancel = t_out + rng.randint(10 * 60, 40 * 60)
            self.add(t_cancel, "adt", "A13", replace(v))
            t_out = t_cancel + rng.randint(30 * 60, 2 * HOUR)
            done = replace(v, discharge=t_out, disposition="HOME")
            self.add(t_out, "adt", "A03", done, diagnoses=[diag])
        if rng.random() < 0.6:
            self.document(t_out + rng.randint(10 * 60, 2 * HOUR), done, "EDD",
                          "Emergency department discharge letter", diag)
        return t_out

    def outpatient(self, t0: int) -> int:
        """An outpatient clinic attendance; returns when the patient leaves."""
        rng = self.rng
        if self.age < 16:
            spec, clinic = "420", "OPD-PAED"
        else:
            spec = rng.choice(ADULT_CLINICS + (("430",) if self.age >= 65 else ()))
            clinic = CLINICS[spec]
        v = self._visit("O", clinic, spec, t0, admit_type="R")
        self.add(t0, "adt", "A04", v)
        if rng.random() < CANCEL_ATTENDANCE:  # arrived the wrong patient: cancelled
            t_cancel = t0 + rng.randint(5 * 60, 30 * 60)
            self.add(t_cancel, "adt", "A11", v)
            return t_cancel
        if rng.random() < 0.3:
            col = t0 + rng.randint(30 * 60, 2 * HOUR)
            for key in rng.sample(("HBA1C", "LIPID", "TFT", "UE", "FBC", "LFT"), 2):
                self.lab(col, self.cat.panels[key], v, slow=True)
        if rng.random() < 0.15:
            exam = self.cat.radiology[rng.choice((0, 3, 4))]
            self.imaging(self.office(t0 + rng.randint(2 * DAY, 20 * DAY)), exam, None)
        if spec == "320" and rng.random() < 0.4:
            self.cardiology(self.office(t0 + rng.randint(7 * DAY, 30 * DAY)),
                            self.cat.cardiology["ECHO"], None)
        t_out = t0 + rng.randint(15 * 60, 50 * 60)
        done = replace(v, discharge=t_out, disposition="HOME")
        self.add(t_out, "adt", "A03", done)
        if rng.random() < 0.6:
            self.document(self.office(t_out + rng.randint(3 * DAY, 14 * DAY)), done, "CL",
                          "Clinic letter", None)
        return t_out

    def spell(
        self, t0: int, admit_type: str, diag: tuple[str, str, str] | None,
        mental_health: bool = False, dies: bool = False,
    ) -> int:
        """An inpatient spell: A01 → transfers/updates → A03, with cancellations now and
        then; returns when it is over. Every message carries the visit as it stood at that
        message's time (ward after the transfers before it, consultant after an A08).

        ``dies``: the patient dies at the end of this spell (``person.died``)."""
        rng = self.rng
        diag = diag or self._diagnosis(mental_health)
        if mental_health:
            ward, spec = rng.choice(MH_WARDS), self._mh_specialty()
            legal = self.cat.legal_status[rng.choice((0, 0, 1, 2, 4))]
            los = int(rng.lognormvariate(3.0, 0.7) * DAY)
        else:
            ward = rng.choice(ACUTE_WARDS)
            spec = {"I21.9": "320", "R07.4": "320", "I48.9": "320", "S72.0": "110",
                    "K35.8": "100", "J44.1": "340", "J18.9": "340"}.get(diag[0], "300")
            if self.age < 16:
                ward, spec = "Childrens Ward", "420"
            elif self.age >= 75 and spec == "300":
                ward, spec = "Ward 31", "430"
            legal = None
            los = int(rng.lognormvariate(1.1, 0.9) * DAY) + 4 * HOUR
        died = self.reg.person.died
        if dies and died is not None:
            t_dis = died
        else:  # most patients go home in the day; never into a later final admission
            t_dis = daytime(rng, t0 + los)
            if self.limit is not None:
                t_dis = min(t_dis, self.limit - HOUR)
        los = t_dis - t0
        v = self._visit(
            "I", ward, spec, t0, bed=f"B{rng.randint(1, 28):02d}", admit_type=admit_type,
            legal=(legal.code, legal.display) if legal else None,
        )
        if admit_type == "C" and rng.random() < 0.8:  # elective: booked weeks ahead (A05)
            booked = self.office(t0 - rng.randint(7 * DAY, 60 * DAY))
            if self.reg.registered < booked < t0:
                self.add(booked, "adt", "A05", replace(v, pclass="P"), expected=t0)
        self.add(t0, "adt", "A01", v, diagnoses=[diag])
        if not dies and rng.random() < CANCEL_ADMISSION:  # admitted in error: cancel, stop
            t_cancel = t0 + rng.randint(10 * 60, 90 * 60)
            self.add(t_cancel, "adt", "A11", v)
            return t_cancel
        # the stay as it changes: transfers and an update, in time order
        timeline = [(t0, v)]
        changes: list[tuple[int, str]] = []
        n_moves = rng.choice((0, 0, 1, 1, 2)) if los > DAY else 0
        for k in range(n_moves):
            changes.append((t0 + (los * (k + 1)) // (n_moves + 1), "A02"))
        if rng.random() < (0.4 if mental_health else 0.15) and los > 2 * HOUR:
            # decided on a ward round or at a tribunal: in the day when the stay allows
            tu = daytime(rng, t0 + rng.randint(HOUR, los - HOUR))
            changes.append((tu if tu < t_dis - HOUR else t0 + los // 2, "A08"))
        current = v
        for tc, what in sorted(changes):
            if what == "A02":
                new_ward = rng.choice(MH_WARDS if mental_health else ACUTE_WARDS)
                if self.age < 16 or new_ward == current.ward:
                    continue
                current = replace(current, ward=new_ward, prior_ward=current.ward,
                                  bed=f"B{rng.randint(1, 28):02d}")
                self.add(tc, "adt", "A02", current)
            else:
                if mental_health:
                    new = self.cat.legal_status[rng.randrange(len(self.cat.legal_status))]
                    current = replace(current, legal=(new.code, new.display))
                else:
                    current = replace(current, consultant=self.consultant())
                self.add(tc, "adt", "A08", current, diagnoses=[diag])
            timeline.append((tc, current))
        times = [t for t, _ in timeline]

        def at(t: int) -> Visit:
            return timeline[max(0, bisect.bisect_right(times, t) - 1)][1]

        # medicines on admission
        meds = self.cat.mh_medications if mental_health else self.cat.medications
        for med in rng.sample(meds, min(len(meds), rng.randint(1, 3))):
            tp = t0 + rng.randint(HOUR, 6 * HOUR)
            self.prescription(tp, med, at(tp), t_dis)
        # bloods soon after admission, then on the morning round every day or two
        t = t0 + rng.randint(HOUR, 8 * HOUR)
        labs = ("FBC", "UE", "CRP", "LFT", "COAG", "MSU") if not mental_health else (
            "FBC", "UE", "LFT", "LITH", "LIPID")
        while t < t_dis and "pathology" in self.sends:
            for key in rng.sample(labs, rng.randint(1, 3)):
                self.lab(t, self.cat.panels[key], at(t))
            t = morning_round(rng, t + (DAY if rng.random() < 0.4 else 0))
        if not mental_health and rng.random() < 0.3:
            exam = self.cat.radiology[rng.randrange(len(self.cat.radiology))]
            ti = t0 + rng.randint(2 * HOUR, 30 * HOUR)
            if exam.modality in ("MR", "US"):  # not an emergency: on the day list
                ti = daytime(rng, ti, 8 * HOUR, 10 * HOUR)
            if ti < t_dis:
                self.imaging(ti, exam, at(ti))
        if not mental_health and rng.random() < 0.2:
            te = t0 + rng.randint(HOUR, 20 * HOUR)
            self.cardiology(te, self.cat.cardiology["ECG"], at(te))
        if dies:
            done = replace(current, discharge=t_dis, disposition="DIED")
            self.add(t_dis, "adt", "A03", done, diagnoses=[diag], deceased=True)
            return t_dis
        done = replace(current, discharge=t_dis, disposition="HOME")
        self.add(t_dis, "adt", "A03", done, diagnoses=[diag])
        if rng.random() < CANCEL_DISCHARGE and (self.limit is None
                                                or t_dis + 28 * HOUR < self.limit):
            # discharge recorded too early: cancel it, discharge later
            t_cancel = t_dis + rng.randint(20 * 60, 90 * 60)
            self.add(t_cancel, "adt", "A13", replace(current, discharge=None))
            t_dis = t_cancel + rng.randint(2 * HOUR, 24 * HOUR)
            done = replace(current, discharge=t_dis, disposition="HOME")
            self.add(t_dis, "adt", "A03", done, diagnoses=[diag])
        if rng.random() < 0.5:
            med = meds[rng.randrange(len(meds))]
            self.prescription(t_dis - rng.randint(HOUR, 3 * HOUR), med, done,
                              t_dis + 28 * DAY, tto=True)
        if rng.random() < 0.9:
            self.document(self.office(t_dis + rng.randint(HOUR, 48 * HOUR)), done, "DS",
                          "Discharge summary", diag)
        return t_dis

    def mh_contact(self, t0: int, community: bool = False) -> int:
        """A community mental-health contact; returns when it ends."""
        rng = self.rng
        team = "CAMHS" if self.age < 18 else rng.choice(MH_TEAMS)
        v = self._visit("O", team, self._mh_specialty(), t0, admit_type="R")
        self.add(t0, "adt", "A04", v)
        t_out = t0 + rng.randint(30 * 60, 90 * 60)
        done = replace(v, discharge=t_out, disposition="HOME")
        self.add(t_out, "adt", "A03", done)
        if rng.random() < 0.2:
            meds = self.cat.mh_medications
            self.prescription(t_out - 10 * 60, meds[rng.randrange(len(meds))], v,
                              t_out + 56 * DAY)
        if rng.random() < 0.3:
            self.document(self.office(t_out + rng.randint(DAY, 10 * DAY)), done, "CPA",
                          "Care plan review letter", self._diagnosis(True))
        return t_out

    def gp_request(self, t: int) -> None:
        """Bloods the GP sent to the hospital lab: no hospital visit, the GP orders."""
        rng = self.rng
        keys = ("FBC", "UE", "LFT", "HBA1C", "LIPID", "TFT", "CRP", "MSU")
        for key in rng.sample(keys, rng.randint(1, 3)):
            self.lab(t, self.cat.panels[key], None, slow=True)

    def _mh_specialty(self) -> str:
        return "711" if self.age < 18 else "715" if self.age >= 65 else "710"

    def urgent_care(self, t0: int) -> int:
        rng = self.rng
        v = self._visit("E", "UTC", "180", t0, admit_type="A")
        t_out = t0 + rng.randint(HOUR, 3 * HOUR)
        done = replace(v, discharge=t_out, disposition="HOME")
        self.add(t0, "adt", "A04", v)
        self.add(t_out, "adt", "A03", done)
        self.document(t_out + rng.randint(5 * 60, HOUR), done, "UCR",
                      "Urgent care encounter report", self._diagnosis())
        return t_out

    # --- results, orders, documents -------------------------------------------
    def _value(self, test: LabTest) -> tuple[str, str, str]:
        """(value, abnormal flag, reference range) for this patient."""
        rng = self.rng
        if test.text:
            return test.results[rng.randrange(len(test.results))], "", ""
        low, high = test.low, test.high
        if test.female and self.reg.person.sex == "F":
            low, high = test.female
        x = rng.gauss(test.mean, test.sd)
        x = max(x, low * 0.3 if low > 0 else 0.0)
        value = f"{x:.{test.decimals}f}"
        x = float(value)
        flag = "H" if x > high else "L" if x < low else "N"
        return value, flag, f"{low:g}-{high:g}"

    def lab(self, collected: int, panel: Panel, v: Visit | None, slow: bool = False) -> None:
        if "pathology" not in self.sends:
            return
        rng = self.rng
        st = self.st
        order = st.new_order()
        filler = f"{st.ods}L{order:09d}"
        delay = rng.randint(20 * HOUR, 50 * HOUR) if slow or panel.key == "MSU" else rng.randint(
            45 * 60, 3 * HOUR)
        results = [(t, *self._value(t)) for t in panel.tests]
        resulted = collected + delay
        self.add(resulted, "pathology", "LAB", v, panel=panel, order=order, filler=filler,
                 collected=collected, results=results, status="F")
        if rng.random() < self.correction_rate:
            i = rng.randrange(len(results))
            test = results[i][0]
            fixed = list(results)
            fixed[i] = (test, *self._value(test))
            self.add(resulted + rng.randint(HOUR, 3 * DAY), "pathology", "LAB", v, panel=panel,
                     order=order, filler=filler, collected=collected, results=fixed,
                     status="C", corrected=(test.key,),
                     comment="Result corrected following laboratory review.")
        elif rng.random() < self.correction_rate * 0.2:  # sample mislabelled: withdrawn
            self.add(resulted + rng.randint(HOUR, 2 * DAY), "pathology", "LAB", v, panel=panel,
                     order=order, filler=filler, collected=collected, results=results,
                     status="C", withdrawn=True,
                     comment="Results withdrawn: sample labelling error. Please repeat.")

    def imaging(self, t: int, exam: Exam, v: Visit | None) -> None:
        if "radiology" not in self.sends:
            return
        rng = self.rng
        order = self.st.new_order()
        finding = exam.findings[rng.randrange(len(exam.findings))]
        lines = [f"{exam.display}:", f"Clinical details: {self._clinical()}", finding,
                 f"Reported by Dr {self.consultant()[1]}, Consultant Radiologist."]
        self.add(t + rng.randint(HOUR, 30 * HOUR), "radiology", "RAD", v, exam=exam,
                 order=order, filler=f"{self.st.ods}R{order:09d}", collected=t, lines=lines)

    def cardiology(self, t: int, exam: Exam, v: Visit | None) -> None:
        if "cardiology" not in self.sends:
            return
        rng = self.rng
        order = self.st.new_order()
        measurements = [(m, f"{rng.gauss(m.mean, m.sd):.{m.decimals}f}") for m in exam.measurements]
        finding = exam.findings[rng.randrange(len(exam.findings))]
        self.add(t + rng.randint(5 * 60, 6 * HOUR), "cardiology", "CARD", v, exam=exam,
                 order=order, filler=f"{self.st.ods}C{order:09d}", collected=t,
                 measurements=measurements, lines=[finding])

    def _clinical(self) -> str:
        return self.rng.choice(("Shortness of breath", "Fall, ?fracture", "Chest pain",
                                "Confusion", "Abdominal pain", "Back pain, no red flags"))

    def prescription(self, t: int, med, v: Visit | None, end: int, tto: bool = False) -> None:
        if "prescribing" not in self.sends:
            return
        order = self.st.new_order()
        instruction = f"{med.dose}{med.unit} {med.frequency}" + (" (TTO)" if tto else "")
        self.add(t, "prescribing", "RX", v, med=med, order=order, end=end,
                 instruction=instruction)

    def document(self, t: int, v: Visit, doc_type: str, title: str,
                 diag: tuple[str, str, str] | None) -> None:
        if "documents" not in self.sends:
            return
        rng = self.rng
        p = self.reg.person
        author = v.consultant  # the clinician responsible for the visit writes its letter
        plain = [
            f"{title} - {self.st.trust.name}",
            f"Patient: {p.given} {p.surname}, DOB {p.dob[6:8]}/{p.dob[4:6]}/{p.dob[:4]}",
            f"Diagnosis: {diag[1]} ({diag[0]})" if diag else "Reviewed in clinic.",
            rng.choice(("Plan: continue current medication, GP to review in 2 weeks.",
                        "Plan: follow-up in clinic in 6 weeks; bloods before the appointment.",
                        "Plan: discharged to GP care; re-attend A&E if worse.",
                        "Plan: referred to community team for ongoing support.")),
            f"Dr {author[2]} {author[1]}",
        ]
        pdf = self.st.flavour.name != "classic-pas" and rng.random() < 0.3
        doc = dict(doc_type=doc_type, title=title, title_plain=title, plain_lines=plain,
                   lines=[escape(x) for x in plain], pdf=pdf, doc_id=self.st.new_doc(),
                   author=author, activity=v.discharge or v.admit, originated=t)
        self.add(t, "documents", "DOC", v, **doc)
        roll = rng.random()
        if roll < AMEND_DOCUMENT:  # corrected after it went out: same number, new content
            t_edit = self.office(t + rng.randint(HOUR, 10 * DAY))
            fixed = [*plain[:-1], rng.choice((
                "Addendum: medication list corrected; see the plan above.",
                "Addendum: follow-up date amended following the clinic review.",
                "Addendum: allergy status updated.")), plain[-1]]
            self.add(t_edit, "documents", "DOC", v, **{
                **doc, "event": "T08", "plain_lines": fixed,
                "lines": [escape(x) for x in fixed]})
        elif roll < AMEND_DOCUMENT + CANCEL_DOCUMENT:  # filed against the wrong patient
            self.add(self.office(t + rng.randint(HOUR, 5 * DAY)), "documents", "DOC", v,
                     **{**doc, "event": "T11"})

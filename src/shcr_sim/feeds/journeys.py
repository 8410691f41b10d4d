"""Patient journeys that make clinical sense, as events at one trust.

For each of a patient's records the journey is: registration (A28), then encounters
arriving as a Poisson process (faster in the live window when the scenario says so):
ED attendances (A04 … A03, sometimes admitted), outpatient clinics, inpatient spells
(A01 → A02 transfers → A03, with A08 updates, A11/A13 cancellations), each with the
results, prescriptions and documents that such an encounter produces. Identifiers
(visit numbers, order numbers, document ids) are allocated as events are created.
"""

from __future__ import annotations

import random
from dataclasses import replace

from ..hl7 import escape
from .catalogue import Catalogue, Exam, LabTest, Panel, load_catalogue, load_people
from .model import Event, Reg, TrustState, Visit
from .population import make_address

HOUR = 3600
DAY = 86400
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

    # --- helpers ------------------------------------------------------------
    def add(self, t: int, dtype: str, kind: str, visit: Visit | None = None, **data) -> None:
        if t >= self.end or dtype not in self.sends:
            return
        self.seq += 1
        self.reg.events.append(Event(int(t), self.seq, dtype, kind, visit, data))

    def arrivals(self, start: int, per_year: float) -> list[int]:
        """Poisson arrival times in [start, end), rate × live multiplier after the cut-over."""
        out: list[int] = []
        rng = self.rng
        rate = per_year * self.reg.person.frailty * self.st.trust.activity / YEAR
        if rate <= 0:
            return out
        t = float(start)
        while True:
            live = t >= self.cut
            nt = t + rng.expovariate(rate * self.live_mult if live else rate)
            if not live and nt >= self.cut:
                t = float(self.cut)  # memoryless: restart at the cut-over at the live rate
                continue
            if nt >= self.end:
                return out
            out.append(int(nt))
            t = nt

    def consultant(self) -> tuple[str, str, str]:
        c = self.people.consultants
        return c[self.rng.randrange(len(c))]

    def daytime(self, t: int) -> int:
        """The first working-hours time (09:00-16:00) at or after t: clinics, elective lists.

        Never earlier than t, so nothing moves before the registration."""
        day, clock = t - t % DAY, t % DAY
        if clock < 9 * HOUR:
            return day + 9 * HOUR + self.rng.randrange(7 * HOUR)
        if clock >= 16 * HOUR:
            return day + DAY + 9 * HOUR + self.rng.randrange(7 * HOUR)
        return t

    # --- whole journey ------------------------------------------------------
    def build(self) -> None:
        """Registration, demographic updates and the encounters of this record's life."""
        reg = self.reg
        self.add(reg.registered, "adt", "A28")
        rates = {**RATES.get(self.kind, RATES["acute"]), **self.st.trust.rates}
        rng = self.rng
        # demographic changes the trust hears about
        for t in self.arrivals(reg.registered, 0.12):
            roll = rng.random()
            if roll < 0.6:
                change = ("address", make_address(rng, self.people))
            elif roll < 0.9:
                change = ("phone", f"01632 {rng.randint(960000, 960999)}")
            else:
                change = ("surname", self.people.surnames[rng.randrange(len(self.people.surnames))])
            self.add(t, "adt", "A31", change=change)
        if self.kind == "acute":
            for t in self.arrivals(reg.registered, rates["ed"]):
                self.ed_attendance(t)
            for t in self.arrivals(reg.registered, rates["outpatient"]):
                self.outpatient(self.daytime(t))
            for t in self.arrivals(reg.registered, rates["elective"]):
                self.spell(self.daytime(t), "C", None)
            for t in self.arrivals(reg.registered, rates["gp_requests"]):
                self.gp_request(self.daytime(t))
        elif self.kind == "mental-health":
            for t in self.arrivals(reg.registered, rates["contact"]):
                self.mh_contact(self.daytime(t))
            for t in self.arrivals(reg.registered, rates["admission"]):
                self.spell(t, "E", None, mental_health=True)
        elif self.kind == "community":
            for t in self.arrivals(reg.registered, rates["contact"]):
                self.mh_contact(self.daytime(t), community=True)
        else:  # urgent care
            for t in self.arrivals(reg.registered, rates["attendance"]):
                self.urgent_care(t)

    # --- encounters ---------------------------------------------------------
    def _visit(self, pclass: str, ward: str, specialty: str, t: int, **kw) -> Visit:
        return Visit(
            number=self.st.new_visit(),
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

    def ed_attendance(self, t0: int) -> None:
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
        admitted = rng.random() < 0.25
        done = replace(v, discharge=t_out, disposition="ADM" if admitted else "HOME")
        self.add(t_out, "adt", "A03", done, diagnoses=[diag])
        if admitted:
            self.spell(t_out + rng.randint(5 * 60, 40 * 60), "E", diag)
        elif rng.random() < 0.6:
            self.document(t_out + rng.randint(10 * 60, 2 * HOUR), done, "EDD",
                          "Emergency department discharge letter", diag)

    def outpatient(self, t0: int) -> None:
        rng = self.rng
        if self.age < 16:
            spec, clinic = "420", "OPD-PAED"
        else:
            spec = rng.choice(ADULT_CLINICS + (("430",) if self.age >= 65 else ()))
            clinic = CLINICS[spec]
        v = self._visit("O", clinic, spec, t0, admit_type="R")
        self.add(t0, "adt", "A04", v)
        if rng.random() < 0.3:
            col = t0 + rng.randint(30 * 60, 2 * HOUR)
            for key in rng.sample(("HBA1C", "LIPID", "TFT", "UE", "FBC", "LFT"), 2):
                self.lab(col, self.cat.panels[key], v, slow=True)
        if rng.random() < 0.15:
            exam = self.cat.radiology[rng.choice((0, 3, 4))]
            self.imaging(t0 + rng.randint(2 * DAY, 20 * DAY), exam, None)
        if spec == "320" and rng.random() < 0.4:
            self.cardiology(t0 + rng.randint(7 * DAY, 30 * DAY), self.cat.cardiology["ECHO"],
                            None)
        t_out = t0 + rng.randint(15 * 60, 50 * 60)
        done = replace(v, discharge=t_out, disposition="HOME")
        self.add(t_out, "adt", "A03", done)
        if rng.random() < 0.6:
            self.document(t_out + rng.randint(3 * DAY, 14 * DAY), done, "CL", "Clinic letter",
                          None)

    def spell(
        self, t0: int, admit_type: str, diag: tuple[str, str, str] | None,
        mental_health: bool = False, dies: bool = False,
    ) -> None:
        """An inpatient spell: A01 → transfers/updates → A03, with cancellations now and then.

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
            los = died - t0
        v = self._visit(
            "I", ward, spec, t0, bed=f"B{rng.randint(1, 28):02d}", admit_type=admit_type,
            legal=(legal.code, legal.display) if legal else None,
        )
        if admit_type == "C" and rng.random() < 0.8:  # elective: booked weeks ahead (A05)
            booked = t0 - rng.randint(7 * DAY, 60 * DAY)
            if booked > self.reg.registered:
                self.add(booked, "adt", "A05", replace(v, pclass="P"), expected=t0)
        self.add(t0, "adt", "A01", v, diagnoses=[diag])
        if not dies and rng.random() < 0.03:  # admitted in error: cancel the admission and stop
            self.add(t0 + rng.randint(10 * 60, 90 * 60), "adt", "A11", v)
            return
        t_dis = t0 + los
        # medicines on admission
        meds = self.cat.mh_medications if mental_health else self.cat.medications
        for med in rng.sample(meds, min(len(meds), rng.randint(1, 3))):
            self.prescription(t0 + rng.randint(HOUR, 6 * HOUR), med, v, t_dis)
        # bloods every day or two
        t = t0 + rng.randint(HOUR, 8 * HOUR)
        labs = ("FBC", "UE", "CRP", "LFT", "COAG", "MSU") if not mental_health else (
            "FBC", "UE", "LFT", "LITH", "LIPID")
        while t < t_dis and "pathology" in self.sends:
            for key in rng.sample(labs, rng.randint(1, 3)):
                self.lab(t, self.cat.panels[key], v)
            t += rng.randint(DAY, 2 * DAY)
        if not mental_health and rng.random() < 0.3:
            self.imaging(t0 + rng.randint(2 * HOUR, 30 * HOUR), self.cat.radiology[
                rng.randrange(len(self.cat.radiology))], v)
        if not mental_health and rng.random() < 0.2:
            self.cardiology(t0 + rng.randint(HOUR, 20 * HOUR), self.cat.cardiology["ECG"], v)
        # transfers and updates
        current = v
        n_moves = rng.choice((0, 0, 1, 1, 2)) if los > DAY else 0
        for k in range(n_moves):
            tm = t0 + (los * (k + 1)) // (n_moves + 1)
            new_ward = rng.choice(MH_WARDS if mental_health else ACUTE_WARDS)
            if self.age < 16:
                continue
            if new_ward == current.ward:
                continue
            current = replace(current, ward=new_ward, prior_ward=current.ward,
                              bed=f"B{rng.randint(1, 28):02d}")
            self.add(tm, "adt", "A02", current)
        if rng.random() < (0.4 if mental_health else 0.15):
            tu = t0 + rng.randint(HOUR, max(HOUR + 1, los - HOUR))
            if mental_health:
                new = self.cat.legal_status[rng.randrange(len(self.cat.legal_status))]
                updated = replace(current, legal=(new.code, new.display))
            else:
                updated = replace(current, consultant=self.consultant())
            self.add(tu, "adt", "A08", updated, diagnoses=[diag])
            current = updated
        if dies:
            done = replace(current, discharge=t_dis, disposition="DIED")
            self.add(t_dis, "adt", "A03", done, diagnoses=[diag], deceased=True)
            return
        done = replace(current, discharge=t_dis, disposition="HOME")
        self.add(t_dis, "adt", "A03", done, diagnoses=[diag])
        if rng.random() < 0.03:  # discharge recorded too early: cancel it, discharge later
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
            self.document(t_dis + rng.randint(HOUR, 48 * HOUR), done, "DS", "Discharge summary",
                          diag)

    def mh_contact(self, t0: int, community: bool = False) -> None:
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
            self.document(t_out + rng.randint(DAY, 10 * DAY), done, "CPA",
                          "Care plan review letter", self._diagnosis(True))

    def gp_request(self, t: int) -> None:
        """Bloods the GP sent to the hospital lab: no hospital visit, the GP orders."""
        rng = self.rng
        keys = ("FBC", "UE", "LFT", "HBA1C", "LIPID", "TFT", "CRP", "MSU")
        for key in rng.sample(keys, rng.randint(1, 3)):
            self.lab(t, self.cat.panels[key], None, slow=True)

    def _mh_specialty(self) -> str:
        return "711" if self.age < 18 else "715" if self.age >= 65 else "710"

    def urgent_care(self, t0: int) -> None:
        rng = self.rng
        v = self._visit("E", "UTC", "180", t0, admit_type="A")
        t_out = t0 + rng.randint(HOUR, 3 * HOUR)
        done = replace(v, discharge=t_out, disposition="HOME")
        self.add(t0, "adt", "A04", v)
        self.add(t_out, "adt", "A03", done)
        self.document(t_out + rng.randint(5 * 60, HOUR), done, "UCR",
                      "Urgent care encounter report", self._diagnosis())

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
        author = self.consultant()
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
        self.add(t, "documents", "DOC", v, doc_type=doc_type, title=title, title_plain=title,
                 plain_lines=plain, lines=[escape(x) for x in plain], pdf=pdf,
                 doc_id=self.st.new_doc(), author=author, activity=v.discharge or v.admit)

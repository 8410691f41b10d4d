"""ER7 message writers: plain string building, CR between segments.

Each writer takes the trust's state, the patient's record there and one event, and
returns ``(message type, ER7 text)``. Free text is escaped where it is created (the
catalogue and the journeys), so nothing here needs to escape again.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from .model import Event, Reg, TrustState, Visit
from .pdf import make_pdf

# ADT trigger event → message structure (as in HL7 v2.4+; v2.3.1 has no ADT_A05)
_ADT_STRUCTURE = {
    "A01": "ADT_A01",
    "A02": "ADT_A02",
    "A03": "ADT_A03",
    "A04": "ADT_A01",
    "A05": "ADT_A05",
    "A08": "ADT_A01",
    "A11": "ADT_A09",
    "A13": "ADT_A01",
    "A28": "ADT_A05",
    "A31": "ADT_A05",
    "A40": "ADT_A39",
}
_V231_STRUCTURE = {"ADT_A05": "ADT_A01"}


def _structure(st: TrustState, code: str) -> str:
    s = _ADT_STRUCTURE[code]
    if st.flavour.version == "2.3.1":
        return _V231_STRUCTURE.get(s, s)
    return s


def msh(st: TrustState, t: int, mtype: str, dtype: str) -> str:
    """MSH as the system sending this data type writes it (its MSH-3, its MSH-10)."""
    f = st.flavour
    cid, n = st.new_control_id(st.apps[dtype])
    ts = f.ts(t)
    if f.name == "mh-epr" and (n + 1) % 5 == 0:
        ts = f"{ts}.{(t * 7 + n + 1) % 1000:03d}"  # this EPR sometimes sends milliseconds
    return f"{st.msh_heads[dtype]}{ts}||{mtype}|{cid}|P|{f.version}{f.msh_tail}"


def pid(st: TrustState, reg: Reg, deceased: bool = False) -> str:
    if reg.pid_er7 and not deceased:
        return reg.pid_er7
    p = reg.person
    a = p.address
    name = f"{p.surname.upper()}^{p.given}^{p.middle}^^{p.title}"
    address = f"{a.line1}^{a.line2}^{a.town}^^{a.postcode}^GBR^H"
    if st.flavour.version == "2.3.1":
        phones = f"{p.phone}~{p.mobile}"
    else:
        phones = f"{p.phone}^PRN^PH~{p.mobile}^PRN^CP"
    death = st.flavour.ts(p.died) if deceased and p.died else ""
    er7 = st.flavour.pid(
        p.nhs, p.verification, reg.mrn, st.ods, name, p.dob, p.sex, address, phones, p.ethnicity,
        death,
    )
    if not deceased:
        reg.pid_er7 = er7
    return er7


def pd1(st: TrustState, reg: Reg) -> str:
    """GP practice (PD1-3) and GP (PD1-4). XON-10 holds the practice code from v2.5;
    before that XON-3 is numeric, so older feeds put the code in XON-1."""
    if reg.pd1_er7:
        return reg.pd1_er7
    p = reg.person
    code, name, _ = p.practice
    gcode, gsur, ggiven = p.gp
    practice = f"{name}^^^^^^^^^{code}" if st.flavour.version == "2.5.1" else code
    reg.pd1_er7 = f"PD1|||{practice}|{gcode}^{gsur}^{ggiven}^^^Dr"
    return reg.pd1_er7


_NK1_EVENTS = frozenset(("A28", "A31", "A01", "A04", "A05", "A08"))
_RELATIONS = {"SPO": "Spouse", "PAR": "Parent", "CHD": "Child", "SIB": "Sibling",
              "FND": "Friend"}


def nk1(st: TrustState, reg: Reg) -> str:
    """Next of kin: name, relationship (HL7 table 0063), phone."""
    nok = reg.person.next_of_kin
    assert nok is not None
    surname, given, rel, phone = nok
    tel = phone if st.flavour.version == "2.3.1" else f"{phone}^PRN^CP"
    return f"NK1|1|{surname.upper()}^{given}|{rel}^{_RELATIONS[rel]}^HL70063||{tel}"


def _xcn(c: tuple[str, str, str]) -> str:
    return f"{c[0]}^{c[1]}^{c[2]}^^^Dr"


def pv1(st: TrustState, v: Visit) -> str:
    if v.er7:
        return v.er7
    ts = st.flavour.ts
    loc = f"{v.ward}^^{v.bed}^{st.ods}" if v.bed else f"{v.ward}^^^{st.ods}"
    prior = f"{v.prior_ward}^^^{st.ods}" if v.prior_ward else ""
    discharge = ts(v.discharge) if v.discharge else ""
    f = [""] * 46  # f[n] is PV1-n
    f[1] = "1"
    f[2] = v.pclass
    f[3] = loc
    f[4] = v.admit_type
    f[6] = prior
    f[7] = _xcn(v.consultant)
    f[10] = v.specialty
    f[19] = f"{v.number}^^^{st.ods}^VN"
    f[36] = v.disposition
    f[44] = ts(v.admit) if v.pclass != "P" else ""  # a pre-admission has no admit time yet
    f[45] = discharge
    if not discharge:
        f.pop()
    v.er7 = "PV1|" + "|".join(f[1:])
    return v.er7


def zseg(st: TrustState, v: Visit, t: int) -> str:
    z = st.flavour.zsegment
    if z == "ZU1":  # ITK: admission method, intended management, local patient category
        method = {"C": "11", "E": "21", "A": "21"}.get(v.admit_type, "")
        return f"ZU1|1|{method}|{'1' if v.pclass == 'I' else '4'}|01"
    if z == "ZMH" and v.legal:
        return f"ZMH|1|{v.legal[0]}^{v.legal[1]}^{st.ods}-MHA|{st.flavour.ts(v.admit)}"
    return ""


def _adt(st: TrustState, reg: Reg, ev: Event, tail: list[str]) -> tuple[str, str]:
    code = ev.kind
    t = ev.time
    f = st.flavour
    mtype = f"ADT^{code}^{_structure(st, code)}"
    segs = [msh(st, t + ev.data.get("lag", 30), mtype, "adt"), f"EVN|{code}|{f.ts(t)}||||{f.ts(t)}"]
    segs.append(pid(st, reg, ev.data.get("deceased", False)))
    segs.append(pd1(st, reg))
    if code in _NK1_EVENTS and reg.person.next_of_kin:
        segs.append(nk1(st, reg))
    v = ev.visit
    if code in ("A28", "A31"):
        segs.append("PV1|1|N")
    elif v is not None:
        segs.append(pv1(st, v))
        if code == "A05":  # pre-admission: PV2-8 expected admission date/time
            segs.append(f"PV2||||||||{f.ts(ev.data['expected'])}")
        if f.zsegment:
            z = zseg(st, v, t)
            if z:
                segs.append(z)
    segs.extend(tail)
    return f"ADT^{code}", "\r".join(segs) + "\r"


def _al1(st: TrustState, reg: Reg) -> list[str]:
    from .catalogue import load_catalogue

    allergens = load_catalogue().allergens
    out = []
    for i, a_idx in enumerate(reg.person.allergies, 1):
        a = allergens[a_idx]
        out.append(f"AL1|{i}|{a.type}|{a.snomed}^{a.display}^SCT|MO|{a.reactions[0]}")
    return out


def _dg1(st: TrustState, diags: list[tuple[str, str, str]], t: int, dtype: str) -> list[str]:
    ts = st.flavour.ts(t)
    return [
        f"DG1|{i}|I10|{code}^{text}^I10|{text}|{ts}|{dtype}"
        for i, (code, text, _) in enumerate(diags, 1)
    ]


def adt_person(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """A28 add person / A31 update person (the update is applied to the record first)."""
    change = ev.data.get("change")
    if change is not None:
        kind, value = change
        if kind == "address":
            reg.person.address = value
        elif kind == "phone":
            reg.person.phone = value
        elif kind == "surname":
            reg.person.surname = value
        reg.pid_er7 = ""
    tail = _al1(st, reg) if ev.kind == "A28" else []
    return _adt(st, reg, ev, tail)


def adt_visit(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    tail: list[str] = []
    if ev.kind in ("A01", "A04", "A05"):
        tail.extend(_al1(st, reg))
    diags = ev.data.get("diagnoses")
    if diags and ev.kind in ("A01", "A03", "A08"):
        tail.extend(_dg1(st, diags, ev.time, "F" if ev.kind == "A03" else "W"))
    return _adt(st, reg, ev, tail)


def adt_merge(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """A40: this record (the survivor) absorbs the duplicate MRN given in MRG-1."""
    f = st.flavour
    t = ev.time
    old = ev.data["old_mrn"]
    segs = [
        msh(st, t + 30, f"ADT^A40^{_structure(st, 'A40')}", "adt"),
        f"EVN|A40|{f.ts(t)}||||{f.ts(t)}",
        pid(st, reg),
        pd1(st, reg),
        f"MRG|{old}^^^{st.ods}^{f.mrn_type}",
    ]
    return "ADT^A40", "\r".join(segs) + "\r"


def _pv1_or_none(st: TrustState, v: Visit | None) -> list[str]:
    return [pv1(st, v)] if v is not None else []


def _orc_obr(
    st: TrustState,
    ev: Event,
    service: str,
    section: str,
    status: str,
    consultant: tuple[str, str, str],
) -> list[str]:
    f = st.flavour
    d = ev.data
    placer = f"{st.ods}P{d['order']:09d}^{st.ods}-ICE"
    filler = f"{d['filler']}^{st.ods}-{section}"
    collected = f.ts(d["collected"])
    resulted = f.ts(ev.time)
    orc_status = "CM"
    return [
        f"ORC|RE|{placer}|{filler}||{orc_status}||||{collected}|||{_xcn(consultant)}",
        f"OBR|1|{placer}|{filler}|{service}|||{collected}|||||||{collected}||{_xcn(consultant)}"
        f"||||||{resulted}||{section}|{status}",
    ]


def oru_lab(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """Pathology: a panel of numeric results (or a text culture report); OBX-11 F or C."""
    f = st.flavour
    d = ev.data
    panel = d["panel"]
    status = d["status"]  # F or C
    v = ev.visit
    consultant = v.consultant if v else reg.person.gp
    sys = st.lab_system
    service = f"{panel.local[f.name]}^{panel.display}^{sys}"
    segs = [msh(st, ev.time + 20, "ORU^R01^ORU_R01", "pathology"), pid(st, reg),
            *_pv1_or_none(st, v)]
    segs.extend(_orc_obr(st, ev, service, "CH" if panel.key != "MSU" else "MB", status,
                         consultant))
    obs_ts = f.ts(d["collected"])
    corrected = d.get("corrected", ())
    withdrawn = d.get("withdrawn", False)
    for i, (test, value, flag, ref_range) in enumerate(d["results"], 1):
        ident = f"{test.local[f.name]}^{test.display}^{sys}"
        obx_status = "W" if withdrawn else "C" if test.key in corrected else "F"
        if test.text:
            segs.append(f"OBX|{i}|TX|{ident}|1|{value}||||||{obx_status}|||{obs_ts}")
        else:
            segs.append(
                f"OBX|{i}|NM|{ident}|1|{value}|{test.unit}^{test.unit}^UCUM|{ref_range}|{flag}|||"
                f"{obx_status}|||{obs_ts}"
            )
    if d.get("comment"):
        segs.append(f"NTE|1|L|{d['comment']}")
    return "ORU^R01", "\r".join(segs) + "\r"


def oru_report(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """Radiology or cardiology report: measurements (NM) then report text (TX lines)."""
    f = st.flavour
    d = ev.data
    exam = d["exam"]
    radiology = ev.dtype == "radiology"
    sys = st.rad_system if radiology else st.card_system
    v = ev.visit
    consultant = v.consultant if v else reg.person.gp
    service = f"{exam.local[f.name]}^{exam.display}^{sys}"
    segs = [msh(st, ev.time + 20, "ORU^R01^ORU_R01", ev.dtype), pid(st, reg),
            *_pv1_or_none(st, v)]
    segs.extend(_orc_obr(st, ev, service, "RAD" if radiology else "EC", "F", consultant))
    obs_ts = f.ts(d["collected"])
    i = 0
    for m, value in d.get("measurements", ()):
        i += 1
        segs.append(
            f"OBX|{i}|NM|{m.loinc}^{m.display}^LN|1|{value}|{m.unit}^{m.unit}^UCUM|||||F|||"
            f"{obs_ts}"
        )
    code = f"{exam.local[f.name]}-REP^{exam.display} report^{sys}"
    for n, line in enumerate(d["lines"], 1):
        i += 1
        segs.append(f"OBX|{i}|TX|{code}|{n}|{line}||||||F|||{obs_ts}")
    return "ORU^R01", "\r".join(segs) + "\r"


def rde(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """ePrescribing: a new medication order (RDE^O11; RDE^O01 on v2.3.1)."""
    f = st.flavour
    d = ev.data
    med = d["med"]
    v = ev.visit
    consultant = v.consultant if v else reg.person.gp
    event = "O01" if f.version == "2.3.1" else "O11"
    mtype = f"RDE^{event}^RDE_{event}"
    placer = f"{st.ods}RX{d['order']:09d}^{st.ods}-EPMA"
    start = f.ts(ev.time)
    end = f.ts(d["end"]) if d.get("end") else ""
    timing = f"1^{med.frequency}^^{start}^{end}"
    give = f"{med.local[f.name]}^{med.display}^{st.drug_system}^{med.dmd}^{med.display}^DMD"
    segs = [
        msh(st, ev.time + 15, mtype, "prescribing"),
        pid(st, reg),
        *_pv1_or_none(st, v),
        f"ORC|NW|{placer}|||||{timing}||{start}|||{_xcn(consultant)}",
        f"RXE|{timing}|{give}|{med.dose}||{med.unit}^{med.unit}^UCUM|{med.form}^^{st.drug_system}"
        f"|{d['instruction']}",
    ]
    if f.version == "2.5.1":  # v2.5 moved timing to TQ1, which RDE_O11 then requires
        segs.append(f"TQ1|1||{med.frequency}||||{start}|{end}")
    segs.append(f"RXR|{med.route}^^HL70162")
    return f"RDE^{event}", "\r".join(segs) + "\r"


def txa(st: TrustState, d: dict, event: str, ts: str, activity: str) -> str:
    """TXA: an edit (T08) keeps the document number and origination time and gives the
    edit time in TXA-8; a cancellation (T11) makes the document unavailable."""
    f = [""] * 20  # f[n] is TXA-n
    f[1] = "1"
    f[2] = d["doc_type"]
    f[3] = "AP" if d["pdf"] else "TX"
    f[4] = activity  # the clinical activity the document is about
    f[5] = _xcn(d["author"])
    f[6] = st.flavour.ts(d["originated"]) if event != "T02" else ts  # origination
    if event == "T08":
        f[8] = ts  # edit date/time
    f[9] = _xcn(d["author"])  # originator
    f[12] = f"{d['doc_id']}^{st.ods}"  # unique document number
    f[17] = "AU"  # authenticated
    f[19] = "UN" if event == "T11" else "AV"  # available for patient care, or no longer
    return "TXA|" + "|".join(f[1:])


_MDM_STRUCTURE = {"T02": "MDM_T02", "T08": "MDM_T02", "T11": "MDM_T01"}


def mdm(st: TrustState, reg: Reg, ev: Event) -> tuple[str, str]:
    """Document: discharge summary, clinic letter, ED or urgent-care report (TX or PDF);
    T02 original, T08 amended (same document number, new content), T11 cancelled (no
    content: filed against the wrong patient)."""
    f = st.flavour
    d = ev.data
    v = ev.visit
    event = d.get("event", "T02")
    ts = f.ts(ev.time)
    activity = f.ts(d["activity"])
    segs = [
        msh(st, ev.time + 60, f"MDM^{event}^{_MDM_STRUCTURE[event]}", "documents"),
        f"EVN|{event}|{ts}",
        pid(st, reg),
        pv1(st, v) if v is not None else "PV1|1|N",
        txa(st, d, event, ts, activity),
    ]
    title = d["title"]
    if event == "T11":  # a cancellation carries no content
        return f"MDM^{event}", "\r".join(segs) + "\r"
    if d["pdf"]:
        raw = make_pdf(d["title_plain"], d["plain_lines"])
        data = base64.b64encode(raw).decode("ascii")
        segs.append(f"OBX|1|ED|{d['doc_type']}^{title}^{st.ods}-DOC|1|^AP^PDF^Base64^{data}"
                    f"||||||F|||{ts}")
    else:
        for n, line in enumerate(d["lines"], 1):
            segs.append(f"OBX|{n}|TX|{d['doc_type']}^{title}^{st.ods}-DOC|{n}|{line}||||||F|||{ts}")
    return f"MDM^{event}", "\r".join(segs) + "\r"


WRITERS: dict[str, Callable[[TrustState, Reg, Event], tuple[str, str]]] = {
    "A28": adt_person,
    "A31": adt_person,
    "A01": adt_visit,
    "A02": adt_visit,
    "A03": adt_visit,
    "A04": adt_visit,
    "A05": adt_visit,
    "A08": adt_visit,
    "A11": adt_visit,
    "A13": adt_visit,
    "A40": adt_merge,
    "LAB": oru_lab,
    "RAD": oru_report,
    "CARD": oru_report,
    "RX": rde,
    "DOC": mdm,
}


def render(reg: Reg, ev: Event) -> tuple[str, str]:
    """The message for one event, written the way this trust's system writes it."""
    return WRITERS[ev.kind](reg.state, reg, ev)

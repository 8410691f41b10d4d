"""PV1 / PV2 → Encounter; the trigger event decides Encounter.status.

Status per the HL7 v2-to-FHIR IG event table (A01/A02/A13 in-progress, A03
finished, A04/A05 planned, A11 cancelled).
"""

from __future__ import annotations

from ..hl7 import Segment
from .datatypes import Ctx, codeable, coding, org_ref, practitioner_ref
from .ids import stable_id

EVENT_STATUS = {
    "A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "planned",
    "A05": "planned", "A06": "in-progress", "A07": "in-progress", "A11": "cancelled",
    "A12": "in-progress", "A13": "in-progress",
}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_CLASS = {
    "I": ("IMP", "inpatient encounter"), "O": ("AMB", "ambulatory"),
    "E": ("EMER", "emergency"), "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"), "B": ("IMP", "inpatient encounter"),
    "C": ("AMB", "ambulatory"), "N": ("AMB", "ambulatory"), "U": ("AMB", "ambulatory"),
}
PLANNED_START = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedStartDate"
PLANNED_END = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_PARTICIPANTS = ((7, "ATND", "attender"), (8, "REF", "referrer"), (9, "CON", "consultant"),
                 (17, "ADM", "admitter"))


def encounter_id(ctx: Ctx, pv1: Segment, patient_id: str) -> str | None:
    visit = ctx.text(pv1.get(19, comp=1))
    if visit:
        return stable_id(ctx.ods, visit)
    admit = pv1.get(44, comp=1)
    if admit:  # no visit number: the admission time identifies the stay
        return stable_id(patient_id, "adm", admit)
    return None


def location_text(ctx: Ctx, raw: str) -> str:
    """PL: point of care ^ room ^ bed ^ facility → 'WARD1 / R2 / B3'."""
    c = ctx.comps(raw)
    parts = [ctx.text(x.split(ctx.delims.subcomponent, 1)[0]) for x in c[:3]]
    return " / ".join(p for p in parts if p)


def update_status(pv1: Segment) -> str | None:
    """The Encounter.status a visit update (A08) can state from its PV1 alone, else None.

    The store keeps whole resources, so an A08 that writes the Encounter must
    carry a status. Only two are safe to read off the visit's own state: a
    discharge time (PV1-45) means finished, and an inpatient class with an
    admission time (PV1-44) and no discharge means in-progress. Anything else
    (an outpatient or ED attendance, a booking) would be a guess that could
    overwrite planned/cancelled, so the A08 leaves the Encounter alone.
    """
    if pv1.get(45, comp=1):
        return "finished"
    klass = _CLASS.get(pv1.get(2, comp=1).upper(), ("", ""))[0]
    if klass == "IMP" and pv1.get(44, comp=1):
        return "in-progress"
    return None


def encounter_resource(ctx: Ctx, pv1: Segment, pv2: Segment | None, event: str,
                       enc_id: str, patient_id: str, status: str | None = None) -> dict:
    status = status or EVENT_STATUS.get(event, "unknown")
    klass = _CLASS.get(pv1.get(2, comp=1).upper(), ("AMB", "ambulatory"))
    res: dict = {
        "resourceType": "Encounter",
        "id": enc_id,
        "status": status,
        "class": coding(ACT_CODE, klass[0], klass[1]),
        "subject": {"reference": f"Patient/{patient_id}"},
        "serviceProvider": org_ref(ctx.ods),
    }
    visit = ctx.text(pv1.get(19, comp=1))
    if visit:
        res["identifier"] = [{"use": "official", "system": ctx.system(ctx.config.visit_system),
                              "value": visit}]
    service = pv1.get(10)
    if service:
        res["serviceType"] = codeable(ctx, service, "PV1-10")
    adm_type = pv1.get(4)
    if adm_type:
        res["type"] = [codeable(ctx, adm_type, "PV1-4")]
    participants = []
    for n, code, display in _PARTICIPANTS:
        for rep in ctx.reps(pv1.field(n)):
            ref = practitioner_ref(ctx, rep)
            if ref:
                participants.append({
                    "type": [{"coding": [coding(PARTICIPATION, code, display)]}],
                    "individual": ref,
                })
    if participants:
        res["participant"] = participants
    period: dict = {}
    start = ctx.datetime(pv1.get(44, comp=1), "PV1-44")
    expected = ctx.datetime(pv2.get(8, comp=1), "PV2-8") if pv2 is not None else None
    if start:
        period["start"] = start
    elif expected and status == "planned":
        period["start"] = expected  # a booking: when the admission is expected
    end = ctx.datetime(pv1.get(45, comp=1), "PV1-45")
    if end and event not in ("A13",):
        period["end"] = end
    if period:
        res["period"] = period
    locations = []
    loc = location_text(ctx, pv1.get(3))
    if loc:
        locations.append({"location": {"display": loc},
                          "status": "completed" if status == "finished" else "active"})
    prior = location_text(ctx, pv1.get(6))
    if prior and prior != loc:
        locations.append({"location": {"display": prior}, "status": "completed"})
    if locations:
        res["location"] = locations
    hosp: dict = {}
    source = pv1.get(14)
    if source:
        hosp["admitSource"] = codeable(ctx, source, "PV1-14")
    disposition = pv1.get(36)
    if disposition:
        hosp["dischargeDisposition"] = codeable(ctx, disposition, "PV1-36")
    if hosp:
        res["hospitalization"] = hosp
    if pv2 is not None:
        reason = pv2.get(3)
        if reason:
            res["reasonCode"] = [codeable(ctx, reason, "PV2-3")]
        # v2-to-FHIR IG: PV2-8/9 → R5 plannedStartDate/plannedEndDate (cross-version extensions)
        planned = [(PLANNED_START, expected),
                   (PLANNED_END, ctx.datetime(pv2.get(9, comp=1), "PV2-9"))]
        ext = [{"url": url, "valueDateTime": v} for url, v in planned if v]
        if ext:
            res["extension"] = ext
    return res

"""AL1 → AllergyIntolerance and DG1 → Condition (patient-level facts on ADT)."""

from __future__ import annotations

from ..hl7 import Segment
from .datatypes import Ctx, codeable, coding
from .ids import stable_id

_ALLERGY_CAT = {"DA": "medication", "FA": "food", "EA": "environment", "MA": "environment",
                "AA": "biologic", "PA": "environment", "LA": "environment"}
_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
_SEVERITY = {"SV": "severe", "MO": "moderate", "MI": "mild"}
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def allergy(ctx: Ctx, al1: Segment, patient_id: str) -> dict | None:
    code = codeable(ctx, al1.get(3), "AL1-3")
    if code is None:
        ctx.unmapped.append("AL1-3: allergy without an allergen code or text")
        return None
    key = al1.get(3, comp=1) or code.get("text", "")
    res: dict = {
        "resourceType": "AllergyIntolerance",
        "id": stable_id(patient_id, "allergy", ctx.text(key)),
        "clinicalStatus": {"coding": [coding(CLINICAL, "active", "Active")]},
        "verificationStatus": {"coding": [coding(VERIFICATION, "confirmed", "Confirmed")]},
        "code": code,
        "patient": {"reference": f"Patient/{patient_id}"},
    }
    cat = _ALLERGY_CAT.get(al1.get(2, comp=1).upper())
    if cat:
        res["category"] = [cat]
    sev = al1.get(4, comp=1).upper()
    if sev in _CRITICALITY:
        res["criticality"] = _CRITICALITY[sev]
    reactions = [ctx.text(r) for r in ctx.reps(al1.field(5))]
    reactions = [r for r in reactions if r]
    if reactions:
        reaction: dict = {"manifestation": [{"text": r} for r in reactions]}
        if sev in _SEVERITY:
            reaction["severity"] = _SEVERITY[sev]
        res["reaction"] = [reaction]
    onset = ctx.datetime(al1.get(6, comp=1), "AL1-6")
    if onset:
        res["onsetDateTime"] = onset
    return res


_DG_VER = {"A": "provisional", "W": "provisional", "F": "confirmed"}


def condition(ctx: Ctx, dg1: Segment, patient_id: str, encounter_id: str | None) -> dict | None:
    raw = dg1.get(3)
    code = codeable(ctx, raw, "DG1-3")
    desc = ctx.text(dg1.get(4))
    if code is None and desc:
        code = {"text": desc}
    if code is None:
        ctx.unmapped.append("DG1-3: diagnosis without a code or description")
        return None
    key = ctx.text(dg1.get(3, comp=1)) or code.get("text", "")
    owner = encounter_id or patient_id
    res: dict = {
        "resourceType": "Condition",
        "id": stable_id(owner, "dx", key),
        "clinicalStatus": {"coding": [coding(COND_CLINICAL, "active", "Active")]},
        "category": [{"coding": [coding(COND_CATEGORY, "encounter-diagnosis",
                                        "Encounter Diagnosis")]}],
        "code": code,
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    ver = _DG_VER.get(dg1.get(6, comp=1).upper())
    if ver:
        res["verificationStatus"] = {"coding": [coding(COND_VERIFICATION, ver)]}
    if encounter_id:
        res["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    recorded = ctx.datetime(dg1.get(5, comp=1), "DG1-5")
    if recorded:
        res["recordedDate"] = recorded
    return res

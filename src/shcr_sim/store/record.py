"""A patient's shared record read back from the store, as a timeline.

The record joins a person's Patient resources at every trust on the NHS number
(and follows merge links), then collects everything indexed under those Patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..nhs_number import SYSTEM as NHS_SYSTEM
from .base import Resource
from .sqlite import SqliteStore

CLINICAL_ORDER = ("Encounter", "DiagnosticReport", "Observation", "DocumentReference",
                  "MedicationRequest", "AllergyIntolerance", "Condition")


@dataclass(slots=True)
class PatientRecord:
    nhs_number: str
    patients: list[Resource] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)  # everything else, deduplicated

    def bundle(self) -> dict:
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in self.patients + self.resources],
        }


async def _follow_links(store: SqliteStore, patients: dict[str, Resource]) -> None:
    """Add the Patients linked by merges, both ways, until nothing new turns up."""
    todo = list(patients.values())
    while todo:
        p = todo.pop()
        for link in p.get("link") or []:
            ref = (link.get("other") or {}).get("reference", "")
            if ref.startswith("Patient/") and ref[8:] not in patients:
                other = await store.current("Patient", ref[8:])
                if other is not None:
                    patients[other["id"]] = other
                    todo.append(other)


async def _collect(store: SqliteStore, rec: PatientRecord, patients: dict[str, Resource]) -> None:
    await _follow_links(store, patients)
    rec.patients = sorted(patients.values(), key=lambda p: p["id"])
    seen: set[str] = set()
    for pid in sorted(patients):
        for r in await store.by_patient(f"Patient/{pid}"):
            key = f"{r['resourceType']}/{r['id']}"
            if r["resourceType"] == "Patient" or key in seen:
                continue
            seen.add(key)
            rec.resources.append(r)


async def load_record(store: SqliteStore, nhs_number: str) -> PatientRecord:
    rec = PatientRecord(nhs_number)
    patients: dict[str, Resource] = {
        p["id"]: p for p in await store.patients_by_identifier(NHS_SYSTEM, nhs_number)
        if p.get("resourceType") == "Patient"
    }
    await _collect(store, rec, patients)
    return rec


async def most_shared_patient(store: SqliteStore) -> str | None:
    """The NHS number with Patient records at the most trusts (then most resources).

    Counts Patient resources carrying the NHS number identifier, then everything
    indexed under those Patients; ties go to the lowest number. None: no NHS numbers.
    """
    prefix = f"{NHS_SYSTEM}|"
    async with store.conn.execute(
        "SELECT substr(i.ident, ?), COUNT(DISTINCT i.rkey) AS trusts, "
        "(SELECT COUNT(*) FROM patient_index p WHERE p.patient_key IN "
        "  (SELECT j.rkey FROM identifier_index j WHERE j.ident = i.ident)) AS n "
        "FROM identifier_index i WHERE i.ident LIKE ? AND i.rkey LIKE 'Patient/%' "
        "GROUP BY i.ident ORDER BY trusts DESC, n DESC, i.ident LIMIT 1",
        (len(prefix) + 1, prefix + "%"),
    ) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


def _is_local_mrn(ident: dict, ods: str, mrn: str) -> bool:
    if ident.get("value") != mrn or ident.get("system") == NHS_SYSTEM:
        return False
    assigner = ((ident.get("assigner") or {}).get("identifier") or {}).get("value")
    return assigner == ods or (assigner is None and ods in str(ident.get("system", "")))


async def load_record_by_mrn(store: SqliteStore, ods: str, mrn: str) -> PatientRecord:
    """The record of the patient a trust knows by its local MRN.

    When that Patient carries an NHS number, this is the whole shared record
    (every trust's Patient joined on it); otherwise that trust's record alone.
    """
    async with store.conn.execute(
        "SELECT DISTINCT rkey FROM identifier_index WHERE ident LIKE ? ESCAPE '\\' "
        "AND rkey LIKE 'Patient/%'",
        ("%|" + mrn.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"),),
    ) as cur:
        rkeys = [k for (k,) in await cur.fetchall()]
    found = [p for p in (await store.current_many(rkeys)).values()
             if any(_is_local_mrn(i, ods, mrn) for i in p.get("identifier") or [])]
    nhs = next((i["value"] for p in found for i in p.get("identifier") or []
                if i.get("system") == NHS_SYSTEM and i.get("value")), None)
    if nhs is not None:
        return await load_record(store, nhs)
    rec = PatientRecord(f"{ods}:{mrn}")
    await _collect(store, rec, {p["id"]: p for p in found})
    return rec


def address_text(p: Resource) -> str:
    """The Patient's home (else first) address in full: lines, town, county, postcode."""
    addresses = p.get("address") or []
    addr = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses
                else None)
    if not isinstance(addr, dict):
        return ""
    if addr.get("text"):
        return str(addr["text"])
    parts = [*(addr.get("line") or []), addr.get("city"), addr.get("district"),
             addr.get("postalCode"), addr.get("country")]
    return ", ".join(str(x) for x in parts if x)


def document_title(r: Resource) -> str:
    """A document's title (TXA-2 display / attachment title), not its type code."""
    for c in r.get("content") or []:
        title = (c.get("attachment") or {}).get("title")
        if title:
            return str(title)
    typ = r.get("type") or {}
    if typ.get("text"):
        return str(typ["text"])
    for c in typ.get("coding") or []:
        if c.get("display"):
            return str(c["display"])
    return r.get("description") or _text(typ) or "document"


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for c in concept.get("coding") or []:
        if c.get("display") or c.get("code"):
            return str(c.get("display") or c.get("code"))
    return ""


def when(r: Resource) -> str:
    """The date a resource belongs at on the timeline."""
    for path in (("period", "start"), ("effectiveDateTime",), ("effectivePeriod", "start"),
                 ("issued",), ("date",), ("authoredOn",), ("recordedDate",),
                 ("onsetDateTime",)):
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, str) and v:
            return v
    return ""


def summary(r: Resource) -> str:
    t = r.get("resourceType")
    if t == "Encounter":
        cls = r.get("class") or {}
        where = ", ".join(
            (loc.get("location") or {}).get("display", "") for loc in r.get("location") or []
        )
        return f"{cls.get('display') or cls.get('code', '')} — {r.get('status', '')}" + (
            f" — {where}" if where.strip(", ") else "")
    if t == "Observation":
        val = ""
        if "valueQuantity" in r:
            q = r["valueQuantity"]
            val = f"{q.get('value', '')} {q.get('unit', '')}".strip()
        elif "valueString" in r:
            val = str(r["valueString"])[:60]
        elif "valueCodeableConcept" in r:
            val = _text(r["valueCodeableConcept"])
        flag = " ".join(_text(i) for i in r.get("interpretation") or [])
        return f"{_text(r.get('code'))} = {val} {flag}".strip() + (
            f" [{r['status']}]" if r.get("status") not in (None, "final") else "")
    if t == "DiagnosticReport":
        return f"{_text(r.get('code'))} [{r.get('status', '')}]"
    if t == "DocumentReference":
        return f"{document_title(r)} [{r.get('status', '')}]"
    if t == "MedicationRequest":
        dose = ""
        for d in r.get("dosageInstruction") or []:
            dose = d.get("text", "") or dose
        return f"{medication_name(r)} {dose} [{r.get('status', '')}]"
    if t in ("AllergyIntolerance", "Condition"):
        return _text(r.get("code"))
    return _text(r.get("code")) or r.get("id", "")


def medication_name(r: Resource) -> str:
    """The drug a MedicationRequest is for: its concept, else its medicationReference.

    The converter writes ``medicationCodeableConcept`` when no dose form is known,
    otherwise a contained Medication (code + form) referenced with the drug name
    as ``display``; the contained Medication's code is the fallback.
    """
    if "medicationCodeableConcept" in r:
        return _text(r["medicationCodeableConcept"])
    ref = r.get("medicationReference") or {}
    if ref.get("display"):
        return str(ref["display"])
    target = str(ref.get("reference", ""))
    for c in r.get("contained") or []:
        if target.startswith("#") and c.get("id") == target[1:]:
            return _text(c.get("code"))
    return ""


def patient_name(p: Resource) -> str:
    for n in p.get("name") or []:
        given = " ".join(n.get("given") or [])
        return f"{given} {n.get('family', '')}".strip()
    return "(no name)"

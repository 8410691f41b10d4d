"""PID / PD1 / NK1 / MRG → Patient, Practitioner, Organization, RelatedPerson."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..hl7 import Segment
from ..nhs_number import SYSTEM as NHS_NUMBER
from ..patient_identity import IdentifierRules, identify, pid_reps
from .config import MappingConfig
from .datatypes import (
    GMP,
    ODS,
    Ctx,
    address,
    codeable,
    coding,
    human_name,
    org_ref,
    telecom,
)
from .ids import stable_id
from .memo import PATIENT_ENTRIES, put, remember, thaw

VERIFICATION_EXT = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
VERIFICATION_CS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
VERIFICATION_DISPLAY = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS Number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}
SSN = "http://hl7.org/fhir/sid/us-ssn"
ETHNIC_EXT = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
ETHNIC_CS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland"
ETHNIC_DISPLAY = {
    "A": "White - British", "B": "White - Irish", "C": "White - Any other White background",
    "D": "Mixed - White and Black Caribbean", "E": "Mixed - White and Black African",
    "F": "Mixed - White and Asian", "G": "Mixed - Any other mixed background",
    "H": "Asian or Asian British - Indian", "J": "Asian or Asian British - Pakistani",
    "K": "Asian or Asian British - Bangladeshi",
    "L": "Asian or Asian British - Any other Asian background",
    "M": "Black or Black British - Caribbean", "N": "Black or Black British - African",
    "P": "Black or Black British - Any other Black background",
    "R": "Other Ethnic Groups - Chinese", "S": "Other Ethnic Groups - Any other ethnic group",
    "Z": "Not stated", "99": "Not known",
}
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown",
           "N": "unknown", "I": "unknown", "9": "unknown", "1": "male", "2": "female"}
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass(slots=True)
class PatientKey:
    """The business identifiers a Patient id is derived from."""

    nhs: str = ""
    mrn: str = ""
    authority: str = ""
    id: str = ""


@lru_cache(maxsize=64)
def _rules(nhs_fields: tuple[str, ...], authorities: tuple[str, ...], types: tuple[str, ...],
           mrn_types: tuple[str, ...]) -> IdentifierRules:
    return IdentifierRules(tuple(int(f.split("-")[1]) for f in nhs_fields), authorities, types,
                           mrn_types)


def identifier_rules(cfg: MappingConfig) -> IdentifierRules:
    """The mapping's identifier rules in the shared form (``shcr_sim.patient_identity``)."""
    return _rules(cfg.nhs_fields, cfg.nhs_authorities, cfg.nhs_type_codes, cfg.mrn_type_codes)


# Memo tables (see ``memo``), keyed by (memo token, raw segment text, …). Only plain
# Segments are memoised: coverage mode's recording segments must see every read.
_KEYS: dict[tuple[int, str, str], tuple[tuple[str, str, str, str], tuple[str, ...]]] = {}
_RECORDS: dict[tuple[int, str], bytes] = {}


def patient_key(ctx: Ctx, pid: Segment, where: str = "PID") -> tuple[PatientKey, list[dict]]:
    """Find NHS number and local MRN wherever the flavour puts them; build identifiers.

    Which identifier is which is ``patient_identity.identify`` — the same rule the
    engine's patient key uses.
    """
    return _patient_key(ctx, pid, where)


def patient_ids(ctx: Ctx, pid: Segment, where: str = "PID") -> PatientKey:
    """``patient_key`` without the identifiers (memoised on the segment text: a
    patient's PID repeats in message after message)."""
    if type(pid) is not Segment:
        return _patient_key(ctx, pid, where)[0]
    mkey = (ctx.memo.token, pid.raw, where)
    hit = _KEYS.get(mkey)
    if hit is not None:
        if hit[1]:
            ctx.unmapped.extend(hit[1])
        return PatientKey(*hit[0])
    start = len(ctx.unmapped)
    key = _patient_key(ctx, pid, where)[0]
    put(_KEYS, mkey, ((key.nhs, key.mrn, key.authority, key.id), tuple(ctx.unmapped[start:])),
        PATIENT_ENTRIES)
    return key


def patient_record(ctx: Ctx, pid: Segment) -> tuple[PatientKey, dict]:
    """``patient_key`` and ``patient_resource`` of one PID together (memoised as a pair)."""
    if type(pid) is not Segment:
        key, identifiers = _patient_key(ctx, pid, "PID")
        return key, patient_resource(ctx, pid, key, identifiers)
    mkey = (ctx.memo.token, pid.raw)
    frozen = _RECORDS.get(mkey)
    if frozen is not None:
        fields, patient, notes = thaw(frozen)
        if notes:
            ctx.unmapped.extend(notes)
        return PatientKey(*fields), patient
    start = len(ctx.unmapped)
    key, identifiers = _patient_key(ctx, pid, "PID")
    fields = (key.nhs, key.mrn, key.authority, key.id)
    # the same PID's later results/documents want the key alone: remember it too
    put(_KEYS, (mkey[0], mkey[1], "PID"), (fields, tuple(ctx.unmapped[start:])),
        PATIENT_ENTRIES)
    patient = patient_resource(ctx, pid, key, identifiers)
    remember(_RECORDS, mkey, (fields, patient, ctx.unmapped[start:]), PATIENT_ENTRIES)
    return key, patient


def _patient_key(ctx: Ctx, pid: Segment, where: str) -> tuple[PatientKey, list[dict]]:
    cfg = ctx.config
    rules = identifier_rules(cfg)
    found = identify(pid_reps(((n, pid.field(n)) for n in rules.fields), ctx.delims),
                     ctx.ods, ctx.delims, rules)
    key = PatientKey(nhs=found.nhs, mrn=found.mrn, authority=found.authority)
    for n, value in found.invalid_nhs:
        # UK practice: an invalid number is never shown as an NHS number
        ctx.unmapped.append(f"{where}-{n}: NHS number {value!r} fails the modulus-11 "
                            "check; not used (patient keyed by local MRN)")
    bad_nhs = found.invalid_nhs[0][1] if found.invalid_nhs else ""
    identifiers: list[dict] = []
    others = [{"system": SSN, "value": value} if typ == "SS"
              else _local_ident(ctx, value, authority, typ)
              for value, authority, typ in found.others]
    if key.mrn:
        authority = key.authority
        identifiers.append({
            "use": "usual",
            "type": {"coding": [coding(_V2_0203, "MR", "Medical record number")]},
            "system": cfg.mrn_system.replace("{ods}", authority),
            "value": key.mrn,
            "assigner": {"identifier": {"system": ODS, "value": authority}},
        })
    if key.nhs:
        nhs_ident: dict = {"use": "official", "system": NHS_NUMBER, "value": key.nhs}
        status = _verification(ctx, pid)
        if status:
            nhs_ident["extension"] = [status]
        identifiers.insert(0, nhs_ident)
    identifiers.extend(others)
    ssn = ctx.text(pid.get(19))
    if ssn and not any(i["system"] == SSN for i in identifiers):
        identifiers.append({"system": SSN, "value": ssn})
    if key.mrn:
        key.id = stable_id(key.authority, key.mrn)
    elif key.nhs:
        key.id = stable_id("nhs", key.nhs)
    elif bad_nhs:
        raise ctx.error(where, f"{where}-3", f"no patient identifier: NHS number {bad_nhs!r} "
                        "fails the modulus-11 check and there is no local MRN")
    else:
        raise ctx.error(where, f"{where}-3", "no patient identifier (neither NHS number nor MRN)")
    return key, identifiers


def _local_ident(ctx: Ctx, value: str, authority: str, typ: str) -> dict:
    ident: dict = {"system": ctx.config.mrn_system.replace("{ods}", authority), "value": value}
    if typ:
        ident["type"] = {"coding": [coding(_V2_0203, typ)]}
    ident["assigner"] = {"identifier": {"system": ODS, "value": authority}}
    return ident


def _verification(ctx: Ctx, pid: Segment) -> dict | None:
    n = int(ctx.config.verification_field.split("-")[1])
    raw = pid.get(n, comp=1)
    if not raw:
        return None
    code = raw.upper().removeprefix("NSTS")
    if code not in VERIFICATION_DISPLAY:
        ctx.unmapped.append(f"PID-{n}: unknown NHS number verification status {raw!r}")
        return None
    return {
        "url": VERIFICATION_EXT,
        "valueCodeableConcept": {
            "coding": [coding(VERIFICATION_CS, code, VERIFICATION_DISPLAY[code])]
        },
    }


def patient_resource(ctx: Ctx, pid: Segment, key: PatientKey, identifiers: list[dict]) -> dict:
    res: dict = {"resourceType": "Patient", "id": key.id, "identifier": identifiers,
                 "active": True}
    names = [n for n in (human_name(ctx, r) for r in ctx.reps(pid.field(5))) if n]
    if names:
        res["name"] = names
    tels = [t for t in (telecom(ctx, r) for f in (13, 14) for r in ctx.reps(pid.field(f))) if t]
    if tels:
        res["telecom"] = tels
    gender = _GENDER.get(pid.get(8, comp=1).upper())
    if gender:
        res["gender"] = gender
    birth = ctx.date(pid.get(7, comp=1), "PID-7")
    if birth:
        res["birthDate"] = birth
    # PID-29 date of death wins; PID-30 (Y/N) alone gives deceasedBoolean (v2-to-FHIR IG)
    death_raw = pid.get(29, comp=1)
    died = pid.get(30, comp=1).upper()
    if death_raw:
        res["deceasedDateTime"] = ctx.datetime(death_raw, "PID-29")
        if died == "N":
            ctx.unmapped.append("PID-30: 'N' contradicts PID-29 (date of death); the date is kept")
    elif died in ("Y", "N"):
        res["deceasedBoolean"] = died == "Y"
    elif died:
        ctx.unmapped.append(f"PID-30: death indicator {died!r} is not Y or N")
    addrs = [a for a in (address(ctx, r) for r in ctx.reps(pid.field(11))) if a]
    if addrs:
        res["address"] = addrs
    marital = pid.get(16)
    if marital:
        res["maritalStatus"] = codeable(ctx, marital, "PID-16")
    ethnic = pid.get(22, comp=1).upper()
    if ethnic in ETHNIC_DISPLAY:  # NHS Data Dictionary ethnic category (UK Core extension)
        res["extension"] = [{"url": ETHNIC_EXT, "valueCodeableConcept": {
            "coding": [coding(ETHNIC_CS, ethnic, ETHNIC_DISPLAY[ethnic])]}}]
    elif ethnic:
        ctx.unmapped.append(f"PID-22: ethnic group {ethnic!r} is not an NHS ethnic category")
    res["managingOrganization"] = org_ref(ctx.ods)
    return res


def mrg_key(ctx: Ctx, mrg: Segment) -> tuple[str, list[dict]]:
    """MRG-1 (prior patient identifier list) → the merged-away Patient id + identifiers."""
    fake = Segment(f"PID||{mrg.field(4)}|{mrg.field(1)}", ctx.delims)
    key, identifiers = patient_key(ctx, fake, where="MRG")
    return key.id, identifiers


_PD1: dict[tuple[int, str], bytes] = {}


def general_practitioner(ctx: Ctx, pd1: Segment) -> tuple[list[dict], list[dict]]:
    """PD1-3 practice (ODS) and PD1-4 GP (national code) → resources and references.

    Memoised on the segment text (a patient's PD1 repeats), like ``patient_ids``.
    """
    if type(pd1) is not Segment:
        return _general_practitioner(ctx, pd1)
    mkey = (ctx.memo.token, pd1.raw)
    frozen = _PD1.get(mkey)
    if frozen is not None:
        resources, refs = thaw(frozen)
        return resources, refs
    out = _general_practitioner(ctx, pd1)
    remember(_PD1, mkey, out, PATIENT_ENTRIES)
    return out


def _general_practitioner(ctx: Ctx, pd1: Segment) -> tuple[list[dict], list[dict]]:
    resources: list[dict] = []
    refs: list[dict] = []
    gp = ctx.comps(pd1.get(4))
    gp_code = ctx.text(gp[0]) if gp else ""
    if gp_code:
        pr_id = stable_id(gp_code)
        pr: dict = {"resourceType": "Practitioner", "id": pr_id,
                    "identifier": [{"system": GMP, "value": gp_code}]}
        family = ctx.text(gp[1]) if len(gp) > 1 else ""
        given = ctx.text(gp[2]) if len(gp) > 2 else ""
        prefix = ctx.text(gp[5]) if len(gp) > 5 else ""
        if family or given:
            name: dict = {}
            if family:
                name["family"] = family
            if given:
                name["given"] = [given]
            if prefix:
                name["prefix"] = [prefix]
            pr["name"] = [name]
        resources.append(pr)
        refs.append({"reference": f"Practitioner/{pr_id}"})
    practice = ctx.comps(pd1.get(3))
    if practice:
        # XON: name ^ type ^ id(v2.3) … ^ organisation identifier (10, v2.4+)
        ods = ctx.text(practice[9]) if len(practice) > 9 else ""
        ods = ods or (ctx.text(practice[2]) if len(practice) > 2 else "")
        pname = ctx.text(practice[0])
        if ods:
            org_id = stable_id(ods)
            org: dict = {"resourceType": "Organization", "id": org_id,
                         "identifier": [{"system": ODS, "value": ods}]}
            if pname:
                org["name"] = pname
            resources.append(org)
            refs.append({"reference": f"Organization/{org_id}"})
    return resources, refs


_V2_0063 = "http://terminology.hl7.org/CodeSystem/v2-0063"


_NK1: dict[tuple[int, str, str], bytes] = {}


def related_person(ctx: Ctx, nk1: Segment, patient_id: str) -> dict | None:
    """NK1 → RelatedPerson (memoised on the segment text and patient, like PD1)."""
    if type(nk1) is not Segment:
        return _related_person(ctx, nk1, patient_id)
    mkey = (ctx.memo.token, nk1.raw, patient_id)
    frozen = _NK1.get(mkey)
    if frozen is not None:
        return thaw(frozen)
    out = _related_person(ctx, nk1, patient_id)
    remember(_NK1, mkey, out, PATIENT_ENTRIES)
    return out


def _related_person(ctx: Ctx, nk1: Segment, patient_id: str) -> dict | None:
    names = [n for n in (human_name(ctx, r) for r in ctx.reps(nk1.field(2))) if n]
    rel_raw = nk1.get(3)
    rel_code = ctx.text(rel_raw.split(ctx.delims.component, 1)[0]) if rel_raw else ""
    if not names and not rel_code:
        return None
    first = names[0] if names else {}
    name_key = f"{first.get('family', '')}|{' '.join(first.get('given', []))}"
    res: dict = {
        "resourceType": "RelatedPerson",
        "id": stable_id(patient_id, "nk", name_key, rel_code),
        "patient": {"reference": f"Patient/{patient_id}"},
        "active": True,
    }
    if rel_raw:
        c = ctx.comps(rel_raw)
        rel: dict = {"coding": [coding(_V2_0063, rel_code, ctx.text(c[1]) if len(c) > 1 else "")]}
        if len(c) > 1 and c[1]:
            rel["text"] = ctx.text(c[1])
        res["relationship"] = [rel]
    if names:
        res["name"] = names
    tels = [t for t in (telecom(ctx, r) for f in (5, 6) for r in ctx.reps(nk1.field(f))) if t]
    if tels:
        res["telecom"] = tels
    addrs = [a for a in (address(ctx, r) for r in ctx.reps(nk1.field(4))) if a]
    if addrs:
        res["address"] = addrs
    return res

"""One HL7 v2 message → one FHIR R4 transaction Bundle (plain dicts).

A pure function of (message, mapping config, merged-patient map): no I/O, no
clock, no randomness, so replays give byte-identical Bundles. Anything that
cannot be converted raises ConversionError naming message, segment and field;
internal failures are wrapped the same way, so callers catch one type and never
see half a Bundle.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from ..event_time import event_time_source
from ..hl7 import Message, Segment
from ..nhs_number import SYSTEM as NHS_NUMBER
from .clinical import allergy, condition
from .config import MappingConfig
from .datatypes import ODS, Ctx, org_ref
from .documents import document_reference
from .encounter import EVENT_STATUS, encounter_id, encounter_resource, update_status
from .errors import ConversionError
from .ids import fresh_id, stable_id
from .medication import medication_request
from .patient import (
    general_practitioner,
    mrg_key,
    patient_ids,
    patient_key,
    patient_record,
    patient_resource,
    related_person,
)
from .results import (
    attachment,
    diagnostic_report,
    merge_line_status,
    observation,
    raise_status,
    report_category,
    report_key,
)

FHIR_BASE = "https://shcr-sim.example/fhir"
MESSAGE_SYSTEM = "urn:shcr-sim:hl7v2:msh10"
ADT_ENCOUNTER_EVENTS = frozenset(EVENT_STATUS)
_TEXT_TYPES = frozenset({"TX", "FT", "ST"})
ADT_PATIENT_EVENTS = frozenset({"A08", "A31", "A28"})
ADT_VISIT_UPDATE_EVENTS = frozenset({"A08"})  # also update the Encounter (see _visit_update)
ADT_MERGE_EVENTS = frozenset({"A40", "A34", "A30", "A39", "A18"})
MDM_EVENTS = frozenset({f"T{n:02d}" for n in range(1, 12)})
KNOWN_SEGMENTS = frozenset({
    "MSH", "EVN", "PID", "PD1", "NK1", "PV1", "PV2", "AL1", "DG1", "MRG", "OBR", "OBX",
    "NTE", "ORC", "TXA", "RXE", "RXR", "TQ1",
})


@dataclass(slots=True)
class Conversion:
    """The result of converting one message.

    ``bundle`` is built on first access: the engine stores ``resources`` and reads
    the Bundle only when it validates, so most messages never pay for it.
    """

    resources: list[dict]
    patient_id: str | None
    merge: tuple[str, str] | None = None
    unmapped: list[str] = field(default_factory=list)
    event_time: str | None = None  # FHIR dateTime of the clinically relevant time
    # (Bundle id, identifier system, message id, timestamp, entries) for ``bundle``
    envelope: tuple[str, str, str, str, tuple[dict, ...]] | None = field(
        default=None, repr=False, compare=False)
    _bundle: dict | None = field(default=None, repr=False, compare=False)

    @property
    def bundle(self) -> dict:
        """The transaction Bundle (the same resource dicts as ``resources``)."""
        if self._bundle is None:
            if self.envelope is None:
                raise ValueError("conversion has no Bundle envelope")
            self._bundle = _bundle(*self.envelope)
        return self._bundle


def _bundle(bundle_id: str, system: str, mid: str, recorded: str,
            resources: tuple[dict, ...]) -> dict:
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "identifier": {"system": system, "value": mid},
        "type": "transaction",
        "timestamp": recorded,
        "entry": [
            {
                "fullUrl": f"{FHIR_BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def convert_message(msg: Message, config: MappingConfig, *,
                    merged: Mapping[str, str] | None = None) -> Conversion:
    """Convert one parsed message; raises ConversionError (only) on bad input."""
    try:
        return _convert(msg, config, merged)
    except ConversionError:
        raise
    except Exception as exc:  # never let another exception type escape
        try:
            mid = msg.control_id
        except Exception:
            mid = ""
        raise ConversionError(mid, "", "", internal_error_reason(exc)) from exc


INTERNAL_ERROR = "internal error (converter bug)"


def internal_error_reason(exc: BaseException, limit: int = 300) -> str:
    """The dead letter's reason for a bug: the exception and where it was raised.

    Bounded (the message text to ``limit`` characters, then only the innermost
    frame) so a reason stays one readable line in ``deadletter list``.
    """
    text = str(exc)
    if len(text) > limit:
        text = text[:limit] + "…"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" \
        if frames else ""
    return f"{INTERNAL_ERROR}: {type(exc).__name__}: {text}{where}"


class _Entries:
    """Resources keyed by (type, id), in first-seen order; repeats merge or replace."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.items: dict[tuple[str, str], dict] = {}

    def add(self, res: dict | None) -> None:
        if res is None:
            return
        key = (res["resourceType"], res["id"])
        old = self.items.get(key)
        if old is None:
            self.items[key] = res
            return
        if key[0] == "Observation" and "valueString" in old and "valueString" in res:
            old["valueString"] = f"{old['valueString']}\n{res['valueString']}"
            raise_status(old, res["status"])
            return
        if old != res:
            self.ctx.unmapped.append(f"{key[0]}/{key[1]}: repeated in the message, last one kept")
        self.items[key] = res


def _convert(msg: Message, config: MappingConfig, merged) -> Conversion:
    msh = msg.msh
    mid = msh.get_text(10).strip()
    if not mid:
        raise ConversionError("", "MSH", "MSH-10", "no message control id")
    ods = config.ods or msh.get_text(4, comp=1).strip()
    if not ods:
        raise ConversionError(mid, "MSH", "MSH-4", "no sending facility (ODS code)")
    ctx = Ctx(msg, config, ods, merged)
    # MSH-9 read once: code ^ trigger (as Message.message_type, which repeats the reads)
    type_parts = msh.get(9).split(ctx.delims.component)
    message_type = f"{type_parts[0]}^{type_parts[1]}" if len(type_parts) > 1 and type_parts[1] \
        else type_parts[0]
    code = type_parts[0].upper()
    event = type_parts[1].upper() if len(type_parts) > 1 else ""
    if not event and "EVN" in msg:
        event = msg["EVN"].get(1).upper()
    recorded = ctx.instant(msh.get(7, comp=1), "MSH-7")
    if not recorded:
        raise ctx.error("MSH", "MSH-7", "no message date/time")
    entries = _Entries(ctx)
    trust: dict = {"resourceType": "Organization", "id": stable_id(ods),
                   "identifier": [{"system": ODS, "value": ods}]}
    if config.trust_name:
        trust["name"] = config.trust_name
    entries.add(trust)

    if code == "ADT":
        result = _adt(ctx, event, entries)
    elif code == "ORU" and event in ("R01", "R30", "R31", "R32", ""):
        result = _oru(ctx, entries)
    elif code == "MDM" and event in MDM_EVENTS:
        result = _mdm(ctx, event, entries)
    elif code == "RDE" and event in ("O11", "O01", "O25", ""):
        result = _rde(ctx, entries)
    else:
        raise ctx.error("MSH", "MSH-9", f"unsupported message type {message_type or code!r}")
    patient_id, merge, event_time = result

    names = [s.name for s in msg.segments]
    if not KNOWN_SEGMENTS.issuperset(names):
        for seg_name in dict.fromkeys(names):
            if seg_name not in KNOWN_SEGMENTS:
                ctx.unmapped.append(f"{seg_name}: segment not mapped")

    resources = list(entries.items.values())
    app = msh.get_text(3, comp=1).strip()
    prov_id = fresh_id(app or "-", ods, mid)
    system = _message_system(app, ods)
    provenance = {
        "resourceType": "Provenance",
        "id": prov_id,
        "target": [{"reference": f"{r['resourceType']}/{r['id']}"} for r in resources],
        "recorded": recorded,
        "activity": {"coding": [_activity(msg, code, event)]},
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author", "display": "Author"}]},
            "who": org_ref(ods),
        }],
        "entity": [{"role": "source", "what": {
            "identifier": {"system": system, "value": mid},
            "display": f"HL7 v2 {message_type} message {mid}",
        }}],
    }
    resources.append(provenance)
    return Conversion(resources=resources, patient_id=patient_id, merge=merge,
                      unmapped=ctx.unmapped, event_time=event_time,
                      envelope=(prov_id, system, mid, recorded, tuple(resources)))


@lru_cache(maxsize=1024)
def _message_system(app: str, ods: str) -> str:
    """The identifier system of a sender's message control ids (MSH-3, MSH-4)."""
    return f"{MESSAGE_SYSTEM}:{quote(app, safe='')}:{quote(ods, safe='')}"


# -- Provenance.activity ------------------------------------------------------------
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
CREATE_EVENTS = frozenset({"ADT^A01", "ADT^A04", "ADT^A05", "ADT^A28", "MDM^T01", "MDM^T02"})
_REVISED_RESULT = frozenset({"C", "D", "W", "A"})  # OBR-25 / OBX-11: corrected, deleted …


def _activity(msg: Message, code: str, event: str) -> dict:
    """CREATE for messages that bring something new, UPDATE (revise) for the rest.

    New: admission, registration, booking, new person, new document (A01 A04 A05
    A28 T01 T02), results none of whose OBR-25/OBX-11 marks a correction or
    withdrawal, and new orders (every ORC-1 NW).
    """
    if code == "ORU":
        new = not any(seg.get(25 if seg.name == "OBR" else 11).upper() in _REVISED_RESULT
                      for seg in msg.segments if seg.name in ("OBR", "OBX"))
    elif code == "RDE":
        new = all(seg.get(1).upper() == "NW" for seg in msg.all("ORC"))
    else:
        new = f"{code}^{event}" in CREATE_EVENTS
    return ({"system": DATA_OPERATION, "code": "CREATE", "display": "create"} if new else
            {"system": DATA_OPERATION, "code": "UPDATE", "display": "revise"})


# -- shared: the patient --------------------------------------------------------
def _pid(ctx: Ctx) -> Segment:
    pid = ctx.msg.segment("PID")
    if pid is None:
        raise ctx.error("PID", "", "no PID segment")
    return pid


def _patient(ctx: Ctx, pid: Segment, entries: _Entries | None) -> tuple[str, dict]:
    """Build (and add, when entries is given) the Patient; return (id to reference, ref)."""
    if entries is None:
        key = patient_ids(ctx, pid)
        survivor = ctx.merged.get(key.id)
    else:
        key, patient = patient_record(ctx, pid)
        survivor = ctx.merged.get(key.id)
        if survivor and survivor != key.id:
            patient["active"] = False
            patient["link"] = [{"other": {"reference": f"Patient/{survivor}"},
                                "type": "replaced-by"}]
        _add_patient_extras(ctx, entries, patient)
    target = survivor or key.id
    ref: dict = {"reference": f"Patient/{target}"}
    if key.nhs:
        ref["identifier"] = {"system": NHS_NUMBER, "value": key.nhs}
    return target, ref


def _add_patient_extras(ctx: Ctx, entries: _Entries, patient: dict) -> None:
    pd1 = ctx.msg.segment("PD1")
    gp_refs: list[dict] = []
    extras: list[dict] = []
    if pd1 is not None:
        extras, gp_refs = general_practitioner(ctx, pd1)
    if gp_refs:
        patient["generalPractitioner"] = gp_refs
    for res in extras:
        entries.add(res)
    entries.add(patient)


def _event_time(ctx: Ctx) -> str | None:
    """The clinical event time (FHIR dateTime): the engine's rule, ``event_time_source``."""
    where, raw = event_time_source(ctx.msg)
    return ctx.datetime(raw, where)


# -- ADT --------------------------------------------------------------------------
def _adt(ctx: Ctx, event: str, entries: _Entries):
    msg = ctx.msg
    pid = _pid(ctx)
    event_time = _event_time(ctx)
    if event in ADT_MERGE_EVENTS:
        return _merge(ctx, pid, entries, event_time)
    if event not in ADT_ENCOUNTER_EVENTS and event not in ADT_PATIENT_EVENTS:
        raise ctx.error("MSH", "MSH-9", f"unsupported ADT event {event or '(none)'!r}")
    patient_id, patient_ref = _patient(ctx, pid, entries)
    for nk1 in msg.all("NK1"):
        entries.add(related_person(ctx, nk1, patient_id))
    enc_id = None
    if event in ADT_ENCOUNTER_EVENTS:
        pv1 = msg.segment("PV1")
        if pv1 is None:
            raise ctx.error("PV1", "", f"ADT^{event} without a PV1 segment")
        enc_id = encounter_id(ctx, pv1, patient_id)
        if enc_id is None:
            raise ctx.error("PV1", "PV1-19", "no visit number (PV1-19) or admit time (PV1-44)")
        entries.add(encounter_resource(ctx, pv1, msg.segment("PV2"), event, enc_id, patient_id))
    elif event in ADT_VISIT_UPDATE_EVENTS and msg.segment("PV1") is not None:
        enc_id = _visit_update(ctx, msg.segment("PV1"), event, patient_id, entries)
    for al1 in msg.all("AL1"):
        entries.add(allergy(ctx, al1, patient_id))
    for dg1 in msg.all("DG1"):
        entries.add(condition(ctx, dg1, patient_id, enc_id))
    return patient_id, None, event_time


def _visit_update(ctx: Ctx, pv1: Segment, event: str, patient_id: str,
                  entries: _Entries) -> str | None:
    """A08 with a visit: update the Encounter when its PV1 states the status safely.

    Returns the visit's Encounter id (its diagnoses belong to it) even when the
    Encounter itself is left alone.
    """
    enc_id = encounter_id(ctx, pv1, patient_id)
    if enc_id is None:
        return None
    status = update_status(pv1)
    if status is None:
        ctx.unmapped.append(f"PV1: ADT^{event} for a visit neither admitted (inpatient PV1-2 "
                            "with PV1-44) nor discharged (PV1-45); Encounter not updated")
        return enc_id
    entries.add(encounter_resource(ctx, pv1, ctx.msg.segment("PV2"), event, enc_id,
                                   patient_id, status))
    return enc_id


def _merge(ctx: Ctx, pid: Segment, entries: _Entries, event_time):
    mrg = ctx.msg.segment("MRG")
    if mrg is None:
        raise ctx.error("MRG", "", "merge message without an MRG segment")
    key, identifiers = patient_key(ctx, pid)
    old_id, old_identifiers = mrg_key(ctx, mrg)
    if old_id == key.id:
        raise ctx.error("MRG", "MRG-1", "merge of a patient record into itself")
    survivor = patient_resource(ctx, pid, key, identifiers)
    survivor["link"] = [{"other": {"reference": f"Patient/{old_id}"}, "type": "replaces"}]
    _add_patient_extras(ctx, entries, survivor)
    old = {
        "resourceType": "Patient",
        "id": old_id,
        "identifier": old_identifiers,
        "active": False,
        "link": [{"other": {"reference": f"Patient/{key.id}"}, "type": "replaced-by"}],
        "managingOrganization": org_ref(ctx.ods),
    }
    entries.add(old)
    if len(ctx.msg.all("MRG")) > 1:
        ctx.unmapped.append("MRG: only the first PID/MRG pair of a multi-merge is applied")
    return key.id, (old_id, key.id), event_time


# -- ORU --------------------------------------------------------------------------
def _encounter_ref(ctx: Ctx, patient_id: str) -> dict | None:
    pv1 = ctx.msg.segment("PV1")
    if pv1 is None:
        return None
    enc_id = encounter_id(ctx, pv1, patient_id)
    return {"reference": f"Encounter/{enc_id}"} if enc_id else None


def _oru(ctx: Ctx, entries: _Entries):
    msg = ctx.msg
    patient_id, patient_ref = _patient(ctx, _pid(ctx), None)
    enc_ref = _encounter_ref(ctx, patient_id)
    groups: list[tuple[Segment, list[Segment], list[str]]] = []
    current: tuple[Segment, list[Segment], list[str]] | None = None
    last_obx: dict | None = None
    notes_for: dict[int, list[str]] = {}
    for seg in msg.segments:
        name = seg.name
        if name == "OBR":
            current = (seg, [], [])
            groups.append(current)
            last_obx = None
        elif name == "OBX":
            if current is None:
                raise ctx.error("OBX", "", "OBX before any OBR")
            current[1].append(seg)
            last_obx = {"seg": seg}
        elif name == "NTE" and current is not None:
            text = ctx.text(seg.get(3))
            if last_obx is None:
                current[2].append(text)
            else:
                notes_for.setdefault(id(last_obx["seg"]), []).append(text)
    if not groups:
        raise ctx.error("OBR", "", "result message without an OBR segment")
    event_time = None
    for obr, obxs, notes in groups:
        number = report_key(ctx, obr)
        report_id = stable_id(ctx.ods, number)
        section, obs_cat = report_category(obr)
        results: list[str] = []
        forms: list[dict] = []
        prev_text: tuple[str, dict] | None = None  # (OBX-3 code, Observation) of a text run
        for obx in obxs:
            vtype = obx.get(2, comp=1).upper()
            raw_code = obx.get(3)
            code = raw_code.split(ctx.delims.component, 1)[0]  # OBX-3.1, as get(3, comp=1)
            if vtype in _TEXT_TYPES and prev_text and prev_text[0] == code:
                # report lines: consecutive text OBX with one OBX-3 form one Observation
                line = "\n".join(ctx.text(r) for r in ctx.reps(obx.field(5)))
                prev = prev_text[1]
                prev["valueString"] = f"{prev.get('valueString', '')}\n{line}"
                merge_line_status(prev, obx)
                continue
            prev_text = None
            if vtype == "ED":
                for rep in ctx.reps(obx.field(5)):
                    att = attachment(ctx, rep, "OBX-5")
                    title = ctx.text(obx.get(3, comp=2))
                    if title:
                        att["title"] = title
                    forms.append(att)
                continue
            obs_id, obs = observation(ctx, obx, obr, number, patient_ref, enc_ref, obs_cat,
                                      vtype, raw_code)
            obx_notes = [n for n in notes_for.get(id(obx), []) if n]
            if obx_notes:
                obs["note"] = [{"text": n} for n in obx_notes]
            entries.add(obs)
            if obs_id not in results:
                results.append(obs_id)
            if vtype in _TEXT_TYPES:
                prev_text = (code, entries.items[("Observation", obs_id)])
        entries.add(diagnostic_report(ctx, obr, report_id, number, patient_ref, enc_ref,
                                      results, forms, [n for n in notes if n], section))
        if event_time is None:
            event_time = _event_time(ctx)
    return patient_id, None, event_time


# -- MDM --------------------------------------------------------------------------
def _mdm(ctx: Ctx, event: str, entries: _Entries):
    msg = ctx.msg
    patient_id, patient_ref = _patient(ctx, _pid(ctx), None)
    txa = msg.segment("TXA")
    if txa is None:
        raise ctx.error("TXA", "", "document message without a TXA segment")
    enc_ref = _encounter_ref(ctx, patient_id)
    entries.add(document_reference(ctx, event, txa, msg.all("OBX"), patient_ref, enc_ref))
    event_time = _event_time(ctx)
    return patient_id, None, event_time


# -- RDE --------------------------------------------------------------------------
def _rde(ctx: Ctx, entries: _Entries):
    msg = ctx.msg
    patient_id, patient_ref = _patient(ctx, _pid(ctx), None)
    enc_ref = _encounter_ref(ctx, patient_id)
    orders: list[tuple[Segment, list[Segment]]] = []
    for seg in msg.segments:
        if seg.name == "ORC":
            orders.append((seg, []))
        elif seg.name in ("RXE", "RXR", "TQ1") and orders:
            orders[-1][1].append(seg)
    if not orders:
        raise ctx.error("ORC", "", "pharmacy order without an ORC segment")
    event_time = None
    for orc, segs in orders:
        rxe = next((s for s in segs if s.name == "RXE"), None)
        rxrs = [s for s in segs if s.name == "RXR"]
        tq1 = next((s for s in segs if s.name == "TQ1"), None)
        entries.add(medication_request(ctx, orc, rxe, rxrs, patient_ref, enc_ref, tq1))
        if event_time is None:
            event_time = _event_time(ctx)
    return patient_id, None, event_time

"""RDE^O11: each ORC with its RXE/RXR → MedicationRequest."""

from __future__ import annotations

from ..hl7 import Segment
from .datatypes import Ctx, codeable, practitioner_ref
from .ids import stable_id
from .results import decimal_text
from .timing import as_needed, fhir_timing, order_timing, priority

_STATUS = {"NW": "active", "XO": "active", "RP": "active", "RL": "active", "SC": "active",
           "OK": "active", "CA": "cancelled", "OC": "cancelled", "CR": "cancelled",
           "DC": "stopped", "OD": "stopped", "DR": "stopped", "HD": "on-hold",
           "OH": "on-hold"}


def medication_request(ctx: Ctx, orc: Segment, rxe: Segment | None, rxrs: list[Segment],
                       patient_ref: dict, encounter_ref: dict | None,
                       tq1: Segment | None = None) -> dict:
    number = ctx.text(orc.get(2, comp=1)) or ctx.text(orc.get(3, comp=1))
    if not number:
        raise ctx.error("ORC", "ORC-2", "no placer (ORC-2) or filler (ORC-3) order number")
    if rxe is None:
        raise ctx.error("RXE", "", "order without an RXE segment")
    med = codeable(ctx, rxe.get(2), "RXE-2")
    if med is None:
        raise ctx.error("RXE", "RXE-2", "no give code (medication)")
    res: dict = {
        "resourceType": "MedicationRequest",
        "id": stable_id(ctx.ods, number),
        "identifier": [{"system": ctx.system(ctx.config.order_system), "value": number}],
        "status": _STATUS.get(orc.get(1).upper(), "unknown"),
        "intent": "order",
    }
    # RXE-6 give dosage form lives on Medication.form (v2-to-FHIR IG; UK Core Medication),
    # so a form makes the drug a contained Medication; without one it stays a concept.
    form = codeable(ctx, rxe.get(6), "RXE-6")
    if form:
        res["contained"] = [{"resourceType": "Medication", "id": "med", "code": med,
                             "form": form}]
        ref: dict = {"reference": "#med"}
        name = med.get("text") or next((c.get("display") for c in med.get("coding", [])
                                        if c.get("display")), "")
        if name:
            ref["display"] = name
        res["medicationReference"] = ref
    else:
        res["medicationCodeableConcept"] = med
    res["subject"] = patient_ref
    if encounter_ref:
        res["encounter"] = encounter_ref
    authored = ctx.datetime(orc.get(9, comp=1), "ORC-9")
    if authored:
        res["authoredOn"] = authored
    requester = practitioner_ref(ctx, ctx.reps(orc.field(12))[0]) if orc.field(12) else None
    if requester:
        res["requester"] = requester
    dosage: dict = {}
    timing, where = order_timing(ctx, orc, rxe, tq1)
    instructions = ctx.text(rxe.get(7, comp=2)) or ctx.text(rxe.get(7, comp=1))
    special = ctx.text(rxe.get(21))
    text = "; ".join(x for x in dict.fromkeys((instructions, special, timing.text)) if x)
    if text:
        dosage["text"] = text
    if timing.condition:
        dosage["additionalInstruction"] = [{"text": timing.condition}]
    fhir = fhir_timing(ctx, timing, where)
    if fhir:
        dosage["timing"] = fhir
    if as_needed(timing):
        dosage["asNeededBoolean"] = True
    urgency = priority(timing)
    if urgency:
        res["priority"] = urgency
    # RXE-3 give amount; the TQ quantity only when the order has none (it is usually "1")
    dose = decimal_text(ctx.text(rxe.get(3)))
    unit = ctx.text(rxe.get(5, comp=2)) or ctx.text(rxe.get(5, comp=1))
    if dose is None:  # RXE-5 is the unit of RXE-3, not of the TQ quantity
        dose, unit = decimal_text(timing.quantity), ""
    if dose is not None:
        q: dict = {"value": dose}
        if unit:
            q["unit"] = unit
        dosage["doseAndRate"] = [{"doseQuantity": q}]
    if rxrs:
        route = codeable(ctx, rxrs[0].get(1), "RXR-1")
        if route:
            dosage["route"] = route
    if dosage:
        res["dosageInstruction"] = [dosage]
    amount = decimal_text(ctx.text(rxe.get(10)))
    if amount is not None:
        qty: dict = {"value": amount}
        unit = ctx.text(rxe.get(11, comp=2)) or ctx.text(rxe.get(11, comp=1))
        if unit:
            qty["unit"] = unit
        res["dispenseRequest"] = {"quantity": qty}
    return res

"""RDE^O11: each ORC with its RXE/RXR → MedicationRequest."""

from __future__ import annotations

from ..hl7 import Segment
from .datatypes import Ctx, codeable, practitioner_ref
from .ids import stable_id
from .results import decimal_text

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
        "medicationCodeableConcept": med,
        "subject": patient_ref,
    }
    if encounter_ref:
        res["encounter"] = encounter_ref
    authored = ctx.datetime(orc.get(9, comp=1), "ORC-9")
    if authored:
        res["authoredOn"] = authored
    requester = practitioner_ref(ctx, ctx.reps(orc.field(12))[0]) if orc.field(12) else None
    if requester:
        res["requester"] = requester
    dosage: dict = {}
    instructions = ctx.text(rxe.get(7, comp=2)) or ctx.text(rxe.get(7, comp=1))
    special = ctx.text(rxe.get(21))
    text = "; ".join(x for x in (instructions, special) if x)
    if text:
        dosage["text"] = text
    # timing: RXE-1 (TQ, up to v2.4) or TQ1 (v2.5+): repeat pattern, start, end
    if tq1 is not None:
        interval = ctx.text(tq1.get(3, comp=1))
        start_raw, start_where = tq1.get(7, comp=1), "TQ1-7"
        end_raw, end_where = tq1.get(8, comp=1), "TQ1-8"
    else:
        interval = ctx.text(rxe.get(1, comp=2))
        start_raw, start_where = rxe.get(1, comp=4), "RXE-1"
        end_raw, end_where = rxe.get(1, comp=5), "RXE-1"
    timing: dict = {}
    if interval:
        timing["code"] = {"text": interval}
    bounds: dict = {}
    start = ctx.datetime(start_raw.split(ctx.delims.subcomponent, 1)[0], start_where)
    end = ctx.datetime(end_raw.split(ctx.delims.subcomponent, 1)[0], end_where)
    if start:
        bounds["start"] = start
    if end:
        bounds["end"] = end
    if bounds:
        timing["repeat"] = {"boundsPeriod": bounds}
    if timing:
        dosage["timing"] = timing
    dose = decimal_text(ctx.text(rxe.get(3)))
    if dose is not None:
        q: dict = {"value": dose}
        unit = ctx.text(rxe.get(5, comp=2)) or ctx.text(rxe.get(5, comp=1))
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

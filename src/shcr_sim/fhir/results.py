"""ORU^R01: each OBR and its OBX/NTE → DiagnosticReport + Observations.

Numeric, text, coded, date and embedded-document (ED) OBX values; OBX-11
``C`` keeps the same Observation id (a new version), ``D``/``W`` mark it
entered-in-error. An ED OBX (e.g. a base64 PDF) becomes the report's
presentedForm rather than an Observation.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from ..hl7 import Segment
from .datatypes import UCUM, Ctx, codeable, coding, org_ref, practitioner_ref
from .ids import fresh_id
from .memo import put

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_OBX_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary",
               "I": "registered", "S": "preliminary", "D": "entered-in-error",
               "W": "entered-in-error", "X": "cancelled", "N": "cancelled", "U": "final",
               "A": "amended", "O": "registered"}
# When report lines (one Observation) disagree, the most significant status wins:
# a withdrawal or correction on any line concerns the whole report text.
_STATUS_RANK = {"entered-in-error": 6, "cancelled": 5, "corrected": 4, "amended": 4,
                "final": 3, "preliminary": 2, "registered": 1}
_OBR_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "A": "partial",
               "R": "partial", "I": "registered", "O": "registered", "S": "registered",
               "X": "cancelled", "Y": "unknown", "Z": "unknown"}
# diagnostic service section (OBR-24) → (DiagnosticReport.category, Observation category)
_SECTION = {"RAD": "imaging", "RX": "imaging", "CT": "imaging", "US": "imaging",
            "NMR": "imaging", "MR": "imaging", "XRC": "imaging", "NMS": "imaging",
            "VUS": "imaging", "CUS": "imaging", "EC": "procedure", "CG": "procedure",
            "PF": "procedure", "OUS": "imaging"}
_INTERP = {"H": "High", "L": "Low", "N": "Normal", "A": "Abnormal", "HH": "Critical high",
           "LL": "Critical low", "AA": "Critical abnormal", "<": "Off scale low",
           ">": "Off scale high", "S": "Susceptible", "R": "Resistant", "I": "Intermediate",
           "POS": "Positive", "NEG": "Negative"}
_MIME = {"PDF": "application/pdf", "RTF": "application/rtf", "HTML": "text/html",
         "XML": "application/xml", "JPEG": "image/jpeg", "JPG": "image/jpeg",
         "PNG": "image/png", "TIFF": "image/tiff", "GIF": "image/gif",
         "TEXT": "text/plain", "PLAIN": "text/plain", "MSWORD": "application/msword",
         "DOC": "application/msword", "OCTET-STREAM": "application/octet-stream"}
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")
_SN_COMPARATORS = {"<", "<=", ">=", ">"}


def report_key(ctx: Ctx, obr: Segment) -> str:
    filler = ctx.text(obr.get(3, comp=1))
    placer = ctx.text(obr.get(2, comp=1))
    number = filler or placer
    if not number:
        raise ctx.error("OBR", "OBR-3", "no filler (OBR-3) or placer (OBR-2) order number")
    return number


@lru_cache(maxsize=8192)
def decimal_text(text: str) -> int | float | None:
    """A JSON number for a v2 NM value (int when written without a point).

    Memoised (bounded; the result is immutable): results repeat their values.
    """
    text = text.strip()
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    return int(d) if "." not in text and "e" not in text.lower() else float(d)


def attachment(ctx: Ctx, raw: str, where: str) -> dict:
    """ED: source ^ type ^ subtype ^ encoding ^ data → Attachment (base64 data)."""
    c = ctx.comps(raw)
    subtype = (c[2] if len(c) > 2 else "").upper()
    typ = (c[1] if len(c) > 1 else "").upper()
    encoding = (c[3] if len(c) > 3 else "").upper()
    data = c[4] if len(c) > 4 else ""
    if ctx.delims.escape in data:
        data = ctx.text(data)
    if encoding in ("BASE64", "B64"):
        data = "".join(data.split())
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ctx.error(where.split("-")[0], where, "ED data is not valid base64") from None
        b64 = data
    elif encoding == "HEX":
        try:
            b64 = base64.b64encode(bytes.fromhex(data)).decode("ascii")
        except ValueError:
            raise ctx.error(where.split("-")[0], where, "ED data is not valid hex") from None
    else:  # A (ASCII) or none: the text itself
        b64 = base64.b64encode(data.encode("utf-8")).decode("ascii")
    mime = _MIME.get(subtype) or ("text/plain" if typ in ("TEXT", "TX") else
                                  "application/octet-stream")
    out = {"contentType": mime}
    if b64:
        out["data"] = b64
    return out


def text_attachment(text: str, title: str = "") -> dict:
    out = {"contentType": "text/plain",
           "data": base64.b64encode(text.encode("utf-8")).decode("ascii")}
    if title:
        out["title"] = title
    return out


def _value(ctx: Ctx, obx: Segment, obs: dict, vtype: str | None = None) -> None:
    if vtype is None:
        vtype = obx.get(2, comp=1).upper()
    reps = ctx.reps(obx.field(5))
    if not reps:
        return
    first = reps[0]
    if vtype in ("NM",):
        num = decimal_text(ctx.text(first))
        if num is not None:
            obs["valueQuantity"] = _quantity(ctx, obx, num)
            return
        obs["valueString"] = ctx.text(first)
        return
    if vtype == "SN":
        c = ctx.comps(first)
        comparator = c[0] if c else ""
        num = decimal_text(ctx.text(c[1])) if len(c) > 1 else None
        if num is not None and (len(c) < 3 or not c[2]):
            q = _quantity(ctx, obx, num)
            if comparator in _SN_COMPARATORS:
                q["comparator"] = comparator
            obs["valueQuantity"] = q
            return
        obs["valueString"] = "".join(ctx.text(x) for x in c)
        return
    if vtype in ("CE", "CWE", "CNE", "CF"):
        cc = codeable(ctx, first, "OBX-5")
        if cc:
            obs["valueCodeableConcept"] = cc
        return
    if vtype in ("DT", "TS", "DTM"):
        obs["valueDateTime"] = ctx.datetime(first, "OBX-5")
        return
    if vtype == "TM":
        obs["valueString"] = ctx.text(first)
        return
    # ST, TX, FT and anything unknown: text, repetitions as lines
    text = "\n".join(ctx.text(r) for r in reps)
    if text:
        obs["valueString"] = text


_UNITS: dict[tuple[int, str], tuple[str, str]] = {}


def _quantity(ctx: Ctx, obx: Segment, value: int | float) -> dict:
    q: dict = {"value": value}
    raw = obx.get(6)
    mkey = (ctx.memo.token, raw)
    units = _UNITS.get(mkey)
    if units is None:
        units = _units(ctx, raw)
        put(_UNITS, mkey, units)
    unit_text, ucum_code = units
    if unit_text:
        q["unit"] = unit_text
    if ucum_code:
        q["system"] = UCUM
        q["code"] = ucum_code
    return q


def _units(ctx: Ctx, raw: str) -> tuple[str, str]:
    """OBX-6 → (unit text, UCUM code or "")."""
    units = ctx.comps(raw)
    unit_code = ctx.text(units[0]) if units else ""
    unit_text = (ctx.text(units[1]) if len(units) > 1 else "") or unit_code
    if unit_code:
        system = units[2] if len(units) > 2 else ""
        if system in ("UCUM", "ANSI+") or not system:
            return unit_text, unit_code
    return unit_text, ""


@lru_cache(maxsize=4096)
def _range_bounds(text: str) -> tuple[int | float | None, int | float | None] | None:
    """'low - high' → the two numbers, or None when the text is not a range."""
    m = _RANGE.match(text)
    return (decimal_text(m.group(1)), decimal_text(m.group(2))) if m else None


def _reference_range(ctx: Ctx, obx: Segment, unit: dict | None) -> list[dict] | None:
    raw = ctx.text(obx.get(7))
    if not raw:
        return None
    bounds = _range_bounds(raw)
    if bounds is not None:
        low: dict = {"value": bounds[0]}
        high: dict = {"value": bounds[1]}
        for q in (low, high):
            if unit:
                for k in ("unit", "system", "code"):
                    if k in unit:
                        q[k] = unit[k]
        return [{"low": low, "high": high, "text": raw}]
    return [{"text": raw}]


def observation(ctx: Ctx, obx: Segment, obr: Segment, order_number: str, patient_ref: dict,
                encounter_ref: dict | None, category: str,
                vtype: str | None = None, raw_code: str | None = None) -> tuple[str, dict]:
    """One OBX → (id, Observation).

    ``vtype`` (OBX-2.1 upper-cased) and ``raw_code`` (``obx.get(3)``): when the
    caller has read them already.
    """
    if raw_code is None:
        raw_code = obx.get(3)
    code = codeable(ctx, raw_code, "OBX-3")
    if code is None:
        raise ctx.error("OBX", "OBX-3", "observation without an identifier (OBX-3)")
    # OBX-3.1 (what obx.get(3, comp=1) returns, without reading the field again)
    code_key = ctx.text(raw_code.split(ctx.delims.component, 1)[0]) or code.get("text", "")
    sub_id = ctx.text(obx.get(4))
    obs_id = fresh_id(ctx.ods, order_number, code_key, sub_id or "0")
    status = obx_status(obx)
    obs: dict = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": status,
        "category": [{"coding": [coding(OBS_CATEGORY, category)]}],
        "code": code,
        "subject": patient_ref,
        "performer": [org_ref(ctx.ods)],
    }
    if encounter_ref:
        obs["encounter"] = encounter_ref
    effective = ctx.datetime(obx.get(14, comp=1), "OBX-14") or ctx.datetime(
        obr.get(7, comp=1), "OBR-7")
    if effective:
        obs["effectiveDateTime"] = effective
    _value(ctx, obx, obs, vtype)
    rr = _reference_range(ctx, obx, obs.get("valueQuantity"))
    if rr:
        obs["referenceRange"] = rr
    flags = obx.field(8)
    if flags:
        interp = [coding(INTERPRETATION, f, _INTERP[f]) for f in ctx.reps(flags) if f in _INTERP]
        if interp:
            obs["interpretation"] = [{"coding": [c]} for c in interp]
    return obs_id, obs


def obx_status(obx: Segment) -> str:
    """OBX-11 → Observation.status (final when empty or unknown)."""
    return _OBX_STATUS.get(obx.get(11).upper(), "final")


def merge_line_status(obs: dict, obx: Segment) -> None:
    """A further report line's OBX-11 raises the Observation's status if it outranks it."""
    raise_status(obs, obx_status(obx))


def raise_status(obs: dict, status: str) -> None:
    if _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(obs["status"], 0):
        obs["status"] = status


def report_category(obr: Segment) -> tuple[str, str]:
    """(DiagnosticReport category code in v2-0074, Observation category)."""
    section = obr.get(24, comp=1).upper()
    if not section:
        return "LAB", "laboratory"
    obs_cat = _SECTION.get(section, "laboratory")
    return section, obs_cat


def diagnostic_report(ctx: Ctx, obr: Segment, report_id: str, order_number: str,
                      patient_ref: dict, encounter_ref: dict | None,
                      results: list[str], forms: list[dict], notes: list[str],
                      section: str | None = None) -> dict:
    """One OBR → DiagnosticReport; ``section``: ``report_category(obr)[0]`` if known."""
    if section is None:
        section = report_category(obr)[0]
    code = codeable(ctx, obr.get(4), "OBR-4") or {"text": "Unknown test"}
    res: dict = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "identifier": [{"system": ctx.system(ctx.config.order_system), "value": order_number}],
        "status": _OBR_STATUS.get(obr.get(25).upper(), "final"),
        "category": [{"coding": [coding(V2_0074, section)]}],
        "code": code,
        "subject": patient_ref,
        "performer": [org_ref(ctx.ods)],
    }
    if encounter_ref:
        res["encounter"] = encounter_ref
    effective = ctx.datetime(obr.get(7, comp=1), "OBR-7")
    if effective:
        res["effectiveDateTime"] = effective
    issued = ctx.instant(obr.get(22, comp=1), "OBR-22")
    if issued:
        res["issued"] = issued
    interpreter = practitioner_ref(ctx, obr.get(32, comp=1).replace(ctx.delims.subcomponent,
                                                                      ctx.delims.component))
    if interpreter:
        res["resultsInterpreter"] = [interpreter]
    if results:
        res["result"] = [{"reference": f"Observation/{r}"} for r in results]
    if notes:
        res["conclusion"] = "\n".join(notes)
    if forms:
        res["presentedForm"] = forms
    return res

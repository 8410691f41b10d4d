"""Quantity/timing → FHIR Timing: TQ1 (v2.5+), RXE-1 and ORC-7 (TQ, up to v2.4).

The three carry the same facts in the feeds we see (a v2.5.1 EPR still fills
RXE-1/ORC-7 next to TQ1), so each element is taken from the first source that
has it (TQ1, then RXE-1, then ORC-7); a source that disagrees is reported, not
silently dropped. UK repeat-pattern abbreviations (OD, BD, TDS, QDS, ON …)
become a structured repeat (frequency per period) next to the text as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from ..hl7 import Segment
from .datatypes import Ctx, compact

# pattern → (frequency, period, unit, when)
_PATTERNS: dict[str, tuple[int, int, str, str]] = {
    "OD": (1, 1, "d", ""), "QD": (1, 1, "d", ""), "DAILY": (1, 1, "d", ""),
    "BD": (2, 1, "d", ""), "BID": (2, 1, "d", ""),
    "TDS": (3, 1, "d", ""), "TID": (3, 1, "d", ""),
    "QDS": (4, 1, "d", ""), "QID": (4, 1, "d", ""),
    "ON": (1, 1, "d", "HS"), "NOCTE": (1, 1, "d", "HS"), "HS": (1, 1, "d", "HS"),
    "OM": (1, 1, "d", "MORN"), "MANE": (1, 1, "d", "MORN"),
    "WEEKLY": (1, 1, "wk", ""), "QW": (1, 1, "wk", ""),
    "MONTHLY": (1, 1, "mo", ""), "QM": (1, 1, "mo", ""),
}
_EVERY_N_HOURS = re.compile(r"^Q(\d{1,2})H$")
_PRIORITY = {"S": "stat", "STAT": "stat", "A": "asap", "ASAP": "asap", "R": "routine",
             "ROUTINE": "routine"}


@dataclass(slots=True)
class Timing:
    """One source's timing facts, as text (timestamps still raw)."""

    quantity: str = ""
    pattern: str = ""
    start: str = ""
    end: str = ""
    priority: str = ""
    condition: str = ""
    text: str = ""
    count: str = ""


def _from_tq(ctx: Ctx, raw: str) -> Timing:
    """TQ: quantity ^ interval (RI) ^ duration ^ start ^ end ^ priority ^ condition ^ text
    ^ conjunction ^ order sequencing ^ occurrence duration ^ total occurrences."""
    first = ctx.reps(raw)[0] if raw else ""
    c = ctx.comps(first)

    def comp(n: int, sub: bool = True) -> str:
        v = c[n - 1] if len(c) >= n else ""
        return ctx.text(v.split(ctx.delims.subcomponent, 1)[0] if sub else v)

    return Timing(quantity=comp(1), pattern=comp(2), start=comp(4), end=comp(5),
                  priority=comp(6), condition=comp(7), text=comp(8), count=comp(12))


def _from_tq1(ctx: Ctx, tq1: Segment) -> Timing:
    return Timing(
        quantity=ctx.text(tq1.get(2, comp=1)),
        pattern=ctx.text(tq1.get(3, comp=1).split(ctx.delims.subcomponent, 1)[0]),
        start=ctx.text(tq1.get(7, comp=1)), end=ctx.text(tq1.get(8, comp=1)),
        priority=ctx.text(tq1.get(9, comp=1)), condition=ctx.text(tq1.get(10)),
        text=ctx.text(tq1.get(11)), count=ctx.text(tq1.get(14)))


def order_timing(ctx: Ctx, orc: Segment, rxe: Segment, tq1: Segment | None
                 ) -> tuple[Timing, dict[str, str]]:
    """The merged timing and, per element, where it came from (for dates' error paths)."""
    sources: list[tuple[str, Timing]] = []
    if tq1 is not None:
        sources.append(("TQ1", _from_tq1(ctx, tq1)))
    sources.append(("RXE-1", _from_tq(ctx, rxe.field(1))))
    sources.append(("ORC-7", _from_tq(ctx, orc.field(7))))
    merged = Timing()
    where: dict[str, str] = {}
    for f in fields(Timing):
        for name, src in sources:
            value = getattr(src, f.name)
            if not value:
                continue
            if not getattr(merged, f.name):
                setattr(merged, f.name, value)
                where[f.name] = name
            elif value != getattr(merged, f.name) and f.name not in ("start", "end"):
                ctx.unmapped.append(f"{name}: timing {f.name} {value!r} differs from "
                                    f"{where[f.name]} ({getattr(merged, f.name)!r}); "
                                    f"{where[f.name]} used")
    return merged, where


def fhir_timing(ctx: Ctx, t: Timing, where: dict[str, str]) -> dict:
    """Timing (code text, structured repeat, bounds) for Dosage.timing; {} when nothing."""
    timing: dict = {}
    repeat: dict = {}
    if t.pattern:
        timing["code"] = {"text": t.pattern}
        key = t.pattern.upper().replace(" ", "")
        known = _PATTERNS.get(key)
        every = _EVERY_N_HOURS.match(key)
        if known:
            freq, period, unit, when = known
            repeat.update(frequency=freq, period=period, periodUnit=unit)
            if when:
                repeat["when"] = [when]
        elif every:
            repeat.update(frequency=1, period=int(every.group(1)), periodUnit="h")
    if t.count.isdigit() and int(t.count) > 0:
        repeat["count"] = int(t.count)
    bounds = compact(start=ctx.datetime(t.start, _where(where.get("start", ""), 7)),
                     end=ctx.datetime(t.end, _where(where.get("end", ""), 8)))
    if bounds:
        repeat["boundsPeriod"] = bounds
    if repeat:
        timing["repeat"] = repeat
    return timing




def _where(source: str, tq1_field: int) -> str:
    """The field a timestamp came from, for error messages (TQ1-7/8, RXE-1, ORC-7)."""
    return f"TQ1-{tq1_field}" if source == "TQ1" else (source or "RXE-1")


def priority(t: Timing) -> str:
    """MedicationRequest.priority from TQ-6 / TQ1-9 ('' when not one FHIR knows)."""
    return _PRIORITY.get(t.priority.upper(), "")


def as_needed(t: Timing) -> bool:
    return t.priority.upper() == "PRN" or t.pattern.upper() == "PRN"

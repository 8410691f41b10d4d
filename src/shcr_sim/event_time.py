"""Which field holds a message's clinical event time: one rule for the engine and fhir.

The engine's ordering key (``engine/keys.py``) and the event time the converter
stores with each resource version (``fhir/convert.py``) must come from the same
field, or the store's "older never overwrites newer" guard and the sequencer would
disagree. Like ``patient_identity`` it lives outside both packages: fhir must not
import the engine, and the engine must not hold mapping rules.

- ADT: EVN-6 (event occurred, HL7 v2.4+), then EVN-2 (recorded);
- ORU: the first OBR's OBR-7 (observation time), then OBR-22 (results reported);
- MDM: TXA-6 (origination), then TXA-4 (activity time);
- OMP/RDE/RDS/ORM: the first ORC's ORC-9 (transaction time);
- always last: MSH-7 (message date/time).

The first *valued* field wins; how a valued field that is not a timestamp is
reported is the caller's business (both name the field).
"""

from __future__ import annotations

from .hl7 import Message

FALLBACK = "MSH-7"

# message kind (MSH-9.1, upper case) → (path, segment, field) of its specific time fields
SPECIFIC: dict[str, tuple[tuple[str, str, int], ...]] = {
    "ADT": (("EVN-6", "EVN", 6), ("EVN-2", "EVN", 2)),
    "ORU": (("OBR-7", "OBR", 7), ("OBR-22", "OBR", 22)),
    "MDM": (("TXA-6", "TXA", 6), ("TXA-4", "TXA", 4)),
    "OMP": (("ORC-9", "ORC", 9),),
    "RDE": (("ORC-9", "ORC", 9),),
    "RDS": (("ORC-9", "ORC", 9),),
    "ORM": (("ORC-9", "ORC", 9),),
}


def event_time_fields(msg: Message) -> list[tuple[str, str]]:
    """(path, raw HL7 text) of the candidate time fields, most specific first.

    Always ends with ``("MSH-7", MSH-7.1)``; values are the raw first components
    (of the first repetition, of the first segment of that name).
    """
    msh = msg.msh
    out = []
    for path, name, n in SPECIFIC.get(msh.get(9, comp=1).upper(), ()):
        seg = msg.segment(name)
        out.append((path, seg.get(n, comp=1) if seg is not None else ""))
    out.append((FALLBACK, msh.get(7, comp=1)))
    return out


def event_time_source(msg: Message) -> tuple[str, str]:
    """(path, raw text) of the first valued candidate; MSH-7 (maybe empty) when none is."""
    fields = event_time_fields(msg)
    return next(((p, t) for p, t in fields if t), fields[-1])

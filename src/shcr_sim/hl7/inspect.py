"""A readable, field-numbered view of a message, for people reading extracts.

``describe`` lists each non-empty field as ``PID-3(2).4.1``-style paths an engineer
can paste into ``Message.get``; escape sequences are shown decoded on the right.
"""

from __future__ import annotations

from collections.abc import Iterator

from .escape import unescape
from .message import Message, Segment
from .timestamps import TimestampError, parse_ts


def _paths(seg: Segment, occurrence: int) -> Iterator[tuple[str, str]]:
    name = seg.name if occurrence == 1 else f"{seg.name}[{occurrence}]"
    d = seg.delims
    for n in range(1, len(seg) + 1):
        reps = seg.repetitions(n)
        for r, rep in enumerate(reps, 1):
            rep_tag = f"({r})" if len(reps) > 1 else ""
            if n <= 2 and seg.name in ("MSH", "FHS", "BHS"):
                yield f"{name}-{n}", rep
                continue
            comps = rep.split(d.component)
            if len(comps) == 1 and d.subcomponent not in rep:
                if rep:
                    yield f"{name}-{n}{rep_tag}", rep
                continue
            for c, comp in enumerate(comps, 1):
                subs = comp.split(d.subcomponent)
                for s, sub in enumerate(subs, 1):
                    if sub:
                        tail = f".{s}" if len(subs) > 1 else ""
                        yield f"{name}-{n}{rep_tag}.{c}{tail}", sub


def describe(msg: Message, *, width: int = 60) -> list[str]:
    """One line per non-empty value: path, raw value, and its decoded text if different."""
    lines = [f"{msg.message_type} {msg.control_id} v{msg.version} from {'/'.join(msg.sender)}"]
    seen: dict[str, int] = {}
    esc = msg.delims.escape
    for seg in msg.segments:
        seen[seg.name] = seen.get(seg.name, 0) + 1
        for path, raw in _paths(seg, seen[seg.name]):
            shown = raw if len(raw) <= width else raw[: width - 1] + "…"
            note = ""
            if esc in raw and not path.startswith(("MSH-1", "MSH-2")):
                text = unescape(raw, msg.delims)
                note = f"  → {text[:width]!r}"
            elif raw[:8].isdigit() and len(raw) >= 8 and raw[:2] in ("19", "20"):
                try:
                    ts = parse_ts(raw)
                    note = f"  → {ts.to_fhir()}" if ts else ""
                except TimestampError:
                    pass
            lines.append(f"  {path:<18} {shown}{note}")
    return lines

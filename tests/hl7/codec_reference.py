"""Helpers for the differential tests: the same message seen by our tokenizer and by hl7apy.

hl7apy is the reference. Two of its habits are folded away before comparing, on both
sides, so only real disagreements fail:

- its ``to_er7`` drops trailing empty components/sub-components of typed fields
  (``a^b^^`` → ``a^b``), so trailing empties are stripped from both values;
- it re-escapes an escape character that does not start one of the sequences it knows
  (``\\X0D\\``, ``\\.br\\``, a stray backslash) as ``\\E\\``, so ``\\E\\`` is folded back to
  the escape character in both values;
- it drops a field that is only whitespace (``| |``, or a no-break space: Python's
  ``str.strip`` whitespace) unless it repeats, so such a field counts as empty on both
  sides.

Everything is compared *before* unescaping (hl7apy does not decode escapes).
"""

from __future__ import annotations

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from shcr_sim.hl7 import Delimiters, parse

View = list[tuple[str, dict[int, list[str]]]]


def normalise(value: str, d: Delimiters) -> str:
    value = value.replace(f"{d.escape}E{d.escape}", d.escape)
    comps = [c.rstrip(d.subcomponent) for c in value.split(d.component)]
    while comps and not comps[-1]:
        comps.pop()
    return d.component.join(comps)


def _norm_field(seg: str, n: int, reps: list[str], d: Delimiters) -> list[str]:
    if seg in ("MSH", "FHS", "BHS") and n <= 2:
        return reps
    if len(reps) == 1 and not reps[0].strip():
        return []
    out = [normalise(r, d) for r in reps]
    while out and not out[-1]:
        out.pop()
    return out


def ours(text: str) -> View:
    msg = parse(text)
    d = msg.delims
    view: View = []
    for seg in msg.segments:
        fields = {}
        for n in range(1, len(seg) + 1):
            reps = _norm_field(seg.name, n, seg.repetitions(n), d)
            if reps:
                fields[n] = reps
        view.append((seg.name, fields))
    return view


def reference(text: str) -> View:
    m = parse_message(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    d = parse(text).delims
    view: View = []
    for seg in m.children:
        raw: dict[int, list[str]] = {}
        for f in seg.children:
            assert f.name is not None, f"hl7apy lost the position of a {seg.name} field"
            assert all(c.name is not None for c in f.children), f"hl7apy lost {f.name} parts"
            raw.setdefault(int(f.name.rsplit("_", 1)[1]), []).append(f.to_er7())
        fields = {}
        for n, reps in sorted(raw.items()):
            norm = _norm_field(seg.name, n, reps, d)
            if norm:
                fields[n] = norm
        view.append((seg.name, fields))
    return view

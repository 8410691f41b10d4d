"""Differential test of the accessors against python-hl7 (``hl7`` package).

For every segment occurrence, field, repetition, component and sub-component of a
message (and one past the end of each), ``Message.get("SEG[k]-n(r).c.s")`` and
``Segment.get`` address the same value as python-hl7's ``extract_field``. python-hl7
unescapes what it returns (its own way: ``\\H\\`` → ``_``, ``\\.br\\`` → CR), so our raw
value is passed through python-hl7's own ``unescape`` before comparing; where python-hl7
refuses a path (past a leaf or a missing field) ours must be empty.
"""

from __future__ import annotations

from pathlib import Path

import hl7 as python_hl7
import pytest
from hypothesis import HealthCheck, given, settings
from test_codec_vs_hl7apy import FIXTURES, messages

from shcr_sim.hl7 import iter_messages, parse


def assert_same_accessors(text: str) -> int:
    """Compare every addressable value; returns how many were compared."""
    msg = parse(text)
    ref = python_hl7.parse(text)
    d = msg.delims
    checked = 0
    seen: dict[str, int] = {}
    for seg in msg.segments:
        k = seen[seg.name] = seen.get(seg.name, 0) + 1
        for n in range(1, len(seg) + 2):
            reps = seg.repetitions(n) or [""]
            for r in range(1, len(reps) + 2):
                rep = reps[r - 1] if r <= len(reps) else ""
                comps = [rep] if seg.name == "MSH" and n <= 2 else rep.split(d.component)
                for c in range(1, len(comps) + 2):
                    comp = comps[c - 1] if c <= len(comps) else ""
                    subs = [comp] if seg.name == "MSH" and n <= 2 else comp.split(d.subcomponent)
                    for s in range(1, len(subs) + 2):
                        got = msg.get(f"{seg.name}[{k}]-{n}({r}).{c}.{s}")
                        assert seg.get(n, r, c, s) == got
                        try:
                            expected = ref.extract_field(seg.name, k, n, r, c, s)
                        except IndexError:  # python-hl7: no such value
                            assert got == "", (seg.name, k, n, r, c, s)
                            continue
                        if d.escape in got and not (seg.name == "MSH" and n <= 2):
                            got = ref.unescape(got)
                        assert got == expected, (seg.name, k, n, r, c, s)
                        checked += 1
    return checked


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture_accessors_match_python_hl7(path: Path) -> None:
    (message,) = list(iter_messages(path))
    assert assert_same_accessors(message.text) > 50


def test_field_and_repetition_views_match_python_hl7() -> None:
    (message,) = list(iter_messages(FIXTURES[0]))
    msg, ref = parse(message.text), python_hl7.parse(message.text)
    for seg, ref_seg in zip(msg.segments, ref, strict=True):
        assert str(ref_seg) == seg.raw
        for n in range(3, len(seg) + 1):
            assert str(ref_seg[n]) == seg.field(n)
            if seg.field(n):
                reps = ref_seg[n] if isinstance(ref_seg[n], python_hl7.Repetition) else None
                if reps is not None:
                    assert [str(x) for x in reps] == seg.repetitions(n)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=messages())
def test_generated_accessors_match_python_hl7(text: str) -> None:
    assert assert_same_accessors(text) > 0

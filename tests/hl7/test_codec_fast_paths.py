"""The codec's short paths give exactly what the general code gives.

Keying and mapping read every message through ``Segment.get``, ``Message.msh``,
``Message.peek`` and ``parse_ts``; each has a short path for the common case. These
properties compare them with the straightforward definitions they replace.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shcr_sim.hl7 import Delimiters, Segment, TimestampError, parse, parse_ts
from shcr_sim.hl7.timestamps import _parse_general, fhir_datetime, fhir_instant
from shcr_sim.nhs_number import check_digit, is_valid

DELIMS = [Delimiters(), Delimiters("#", "$", "!", "\\", "%")]


def _nth(parts: list[str], n: int) -> str:
    return parts[n - 1] if 0 < n <= len(parts) else ""


def reference_get(seg: Segment, n: int, rep: int, comp: int, sub: int) -> str:
    """``Segment.get`` as first written: full splits, one level at a time."""
    value = seg.field(n)
    if not value:
        return ""
    if n <= 2 and seg.raw[:3] in ("MSH", "FHS", "BHS"):
        return value if rep == 1 and comp <= 1 and sub <= 1 else ""
    d = seg.delims
    if d.repetition in value:
        value = _nth(value.split(d.repetition), rep)
    elif rep != 1:
        return ""
    if comp:
        if d.component in value:
            value = _nth(value.split(d.component), comp)
        elif comp != 1:
            return ""
        if sub:
            if d.subcomponent in value:
                value = _nth(value.split(d.subcomponent), sub)
            elif sub != 1:
                return ""
    return value


def _field(d: Delimiters) -> st.SearchStrategy[str]:
    """A field built from repetitions of components of sub-components (or raw noise)."""
    part = st.text(alphabet="ab ", max_size=2)
    sub = st.lists(part, min_size=1, max_size=3).map(d.subcomponent.join)
    comp = st.lists(sub, min_size=1, max_size=4).map(d.component.join)
    rep = st.lists(comp, min_size=1, max_size=3).map(d.repetition.join)
    return st.one_of(rep, st.text(alphabet="ab|#^$~!&%\\ ", max_size=12))


@settings(max_examples=300)
@given(data=st.data(), d=st.sampled_from(DELIMS), name=st.sampled_from(["PID", "MSH", "OBX"]))
def test_segment_get_matches_the_reference(data: st.DataObject, d: Delimiters,
                                           name: str) -> None:
    fields = data.draw(st.lists(_field(d), max_size=6))
    seg = Segment(d.field.join([name, *fields]), d)
    for n in range(-1, len(fields) + 3):
        for rep in range(-1, 5):
            for comp in range(-1, 6):
                for sub in range(-1, 5):
                    assert seg.get(n, rep, comp, sub) == reference_get(seg, n, rep, comp, sub)


LINE = st.one_of(
    st.sampled_from(["PID|1||X^^^NHS", "PIDX|2", "PID", "EVN|A01|2024", "OBR|1", "  ", "",
                     "OBX|1|TX|||a\\.br\\b ", "PI", " PID|3", "ZPD|PID"]),
    st.text(alphabet="PIDEVN| ^\n", max_size=8),
)


@settings(max_examples=300)
@given(
    lines=st.lists(LINE, max_size=8),
    sep=st.sampled_from(["\r", "\n", "\r\n", "\r\r", "\r  "]),
    tail=st.sampled_from(["", "\r", "\r\n", "  "]),
)
def test_msh_and_peek_match_the_indexed_segments(lines: list[str], sep: str, tail: str) -> None:
    text = sep.join(["MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.4 ", *lines]) + tail
    fresh, indexed = parse(text), parse(text)
    assert fresh.msh.raw == indexed.segments[0].raw
    for name in ("PID", "EVN", "OBX", "OBR", "MSH", "PI", "ZPD"):
        got, want = parse(text).peek(name), indexed.segment(name)
        assert (got.raw if got else None) == (want.raw if want else None)
    assert fresh.segments[0] is fresh.msh  # the MSH handed out early stays the message's own


def _outcome(f, text: str, tz: str) -> object:
    try:
        return f(text, tz)
    except TimestampError as exc:
        return ("error", str(exc))


@settings(max_examples=500)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789", min_size=8, max_size=14),
        st.builds(lambda a, s, b: a + s + b, st.text(alphabet="0123456789", min_size=8,
                                                     max_size=14),
                  st.sampled_from("+-"), st.text(alphabet="0123456789", min_size=4, max_size=4)),
        st.text(alphabet="0123456789+-. ^", max_size=20),
    ),
    tz=st.sampled_from(["Europe/London", "America/New_York", "UTC"]),
)
def test_parse_ts_short_path_matches_the_general_parser(text: str, tz: str) -> None:
    assert _outcome(parse_ts, text, tz) == _outcome(_parse_general, text, tz)


def _plain_fhir(text: str, tz: str) -> str | None:
    t = parse_ts(text, tz)
    return t.to_fhir() if t else None


def _plain_instant(text: str, tz: str) -> str | None:
    t = parse_ts(text, tz)
    return t.to_instant() if t else None


TS_TEXT = st.one_of(
    st.text(alphabet="0123456789", min_size=8, max_size=14),
    st.builds(lambda a, s, b: a + s + b,
              st.sampled_from(["2024", "1999", "0001", "9999", "2024033101", "2024102701",
                               "20240331", "20241027", "2024063023", "2023123123"]),
              st.text(alphabet="0123456789", max_size=6),
              st.one_of(st.just(""), st.builds(lambda s, d: s + d, st.sampled_from("+-"),
                                               st.text(alphabet="0123456789", min_size=4,
                                                       max_size=4)))),
    st.text(alphabet="0123456789+-. ^", max_size=20),
)
ZONES = st.sampled_from(["Europe/London", "America/New_York", "UTC", "Asia/Kolkata",
                         "Australia/Lord_Howe"])


def _any_outcome(f, text: str, tz: str) -> object:
    try:
        return f(text, tz)
    except Exception as exc:  # noqa: BLE001 - an overflow at year 1 must match too
        return (type(exc), str(exc))


@settings(max_examples=1000)
@given(text=TS_TEXT, tz=ZONES)
def test_fhir_texts_match_the_hl7time_methods(text: str, tz: str) -> None:
    assert _any_outcome(fhir_datetime, text, tz) == _any_outcome(_plain_fhir, text, tz)
    assert _any_outcome(fhir_instant, text, tz) == _any_outcome(_plain_instant, text, tz)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_nhs_check_digit_matches_the_weighted_sum(first9: str) -> None:
    check = 11 - sum(int(c) * w for c, w in zip(first9, range(10, 1, -1), strict=True)) % 11
    want = None if check == 10 else check % 11
    assert check_digit(first9) == want
    for last in "0123456789":
        assert is_valid(first9 + last) == (want is not None and want == int(last))


# Local times around zone changes, as the per-hour offset cache read them before the
# per-day one replaced it (a gap moves forward, an overlap takes its first reading).
ZONE_CHANGES = [
    ("202403310030", "Europe/London", "2024-03-31T00:30:00+00:00", "2024-03-31T00:30:00.000Z"),
    ("202403310130", "Europe/London", "2024-03-31T02:30:00+01:00", "2024-03-31T01:30:00.000Z"),
    ("202403310230", "Europe/London", "2024-03-31T02:30:00+01:00", "2024-03-31T01:30:00.000Z"),
    ("202410270030", "Europe/London", "2024-10-27T00:30:00+01:00", "2024-10-26T23:30:00.000Z"),
    ("202410270130", "Europe/London", "2024-10-27T01:30:00+01:00", "2024-10-27T00:30:00.000Z"),
    ("202410270230", "Europe/London", "2024-10-27T02:30:00+00:00", "2024-10-27T02:30:00.000Z"),
    ("20241027", "Europe/London", "2024-10-27", "2024-10-26T23:00:00.000Z"),
    ("2024102701", "Europe/London", "2024-10-27T01:00:00+01:00", "2024-10-27T00:00:00.000Z"),
    ("202410060230", "Australia/Lord_Howe",
     "2024-10-06T02:30:00+11:00", "2024-10-05T15:30:00.000Z"),
    ("202404070145", "Australia/Lord_Howe",
     "2024-04-07T01:45:00+11:00", "2024-04-06T14:45:00.000Z"),
    ("20240310023000", "America/New_York", "2024-03-10T03:30:00-04:00", "2024-03-10T07:30:00.000Z"),
    ("20241103013000", "America/New_York", "2024-11-03T01:30:00-04:00", "2024-11-03T05:30:00.000Z"),
]


@pytest.mark.parametrize(("text", "tz", "fhir", "instant"), ZONE_CHANGES)
def test_local_times_around_zone_changes(text: str, tz: str, fhir: str, instant: str) -> None:
    t = parse_ts(text, tz)
    assert t is not None and (t.to_fhir(), t.to_instant()) == (fhir, instant)
    assert (fhir_datetime(text, tz), fhir_instant(text, tz)) == (fhir, instant)


def test_a_days_hours_are_worked_out_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A date of birth reads one hour of its day. Working out all 24 on a cache miss cost
    ~120 µs a date, paid again and again once a population's birth dates outnumber the
    cached days (a 1 M extract's 54,000 patients)."""
    from shcr_sim.hl7 import timestamps

    worked: list[tuple[int, int, int, int]] = []
    real = timestamps._hour_offset

    def counting(tz, year, month, day, hour):  # noqa: ANN001, ANN202
        worked.append((year, month, day, hour))
        return real(tz, year, month, day, hour)

    monkeypatch.setattr(timestamps, "_hour_offset", counting)
    timestamps._day_hours.cache_clear()
    assert parse_ts("19620612", "Europe/London").to_fhir_date() == "1962-06-12"
    assert worked == [(1962, 6, 12, 0)]
    assert fhir_datetime("1962061213", "Europe/London") == "1962-06-12T13:00:00+01:00"
    assert fhir_datetime("19620612", "Europe/London") == "1962-06-12"
    assert worked == [(1962, 6, 12, 0), (1962, 6, 12, 13)]

"""TS/DTM parsing: every precision, offsets, GMT/BST and the clock changes, bad values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.hl7 import TimestampError, format_ts, parse_ts


@pytest.mark.parametrize(
    ("text", "precision", "fhir"),
    [
        ("2024", "year", "2024"),
        ("202407", "month", "2024-07"),
        ("20240705", "day", "2024-07-05"),
        ("2024070514", "hour", "2024-07-05T14:00:00+01:00"),
        ("202407051430", "minute", "2024-07-05T14:30:00+01:00"),
        ("20240705143015", "second", "2024-07-05T14:30:15+01:00"),
        ("20240705143015.1", "fraction", "2024-07-05T14:30:15.100+01:00"),
        ("20240705143015.1234", "fraction", "2024-07-05T14:30:15.123+01:00"),
        ("20240105143015", "second", "2024-01-05T14:30:15+00:00"),
        ("20240705143015+0000", "second", "2024-07-05T14:30:15+00:00"),
        ("20240705143015-0500", "second", "2024-07-05T14:30:15-05:00"),
        ("202407051430+0530", "minute", "2024-07-05T14:30:00+05:30"),
        ("20240705143015.12+0100", "fraction", "2024-07-05T14:30:15.120+01:00"),
        ("20240705^S", "day", "2024-07-05"),  # TS with a degree-of-precision component
    ],
)
def test_every_precision(text: str, precision: str, fhir: str) -> None:
    ts = parse_ts(text)
    assert ts is not None
    assert ts.precision == precision
    assert ts.to_fhir() == fhir
    assert ts.value.tzinfo is not None
    assert ts.had_offset == ("+" in text or "-" in text)


def test_empty_is_none() -> None:
    assert parse_ts("") is None
    assert parse_ts("   ") is None


def test_dates_stay_dates_for_birth_dates() -> None:
    ts = parse_ts("19780412")
    assert ts is not None and ts.to_fhir_date() == "1978-04-12"
    assert parse_ts("1978").to_fhir_date() == "1978"  # type: ignore[union-attr]
    # a BST evening with an explicit offset keeps its local calendar date
    assert parse_ts("20240705233000+0100").to_fhir_date() == "2024-07-05"  # type: ignore[union-attr]


def test_instant_and_epoch_are_utc() -> None:
    ts = parse_ts("20240705143015")
    assert ts is not None
    assert ts.to_instant() == "2024-07-05T13:30:15.000Z"
    assert ts.epoch == datetime(2024, 7, 5, 13, 30, 15, tzinfo=UTC).timestamp()


# UK clock changes in 2024: Sun 31 March 01:00 GMT (→ 02:00 BST); Sun 27 October 02:00 BST
# (→ 01:00 GMT). Chosen readings are documented in hl7/timestamps.py.
@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("20240331005959", "2024-03-31T00:59:59.000Z"),  # last GMT second
        ("20240331013000", "2024-03-31T01:30:00.000Z"),  # non-existent: read as GMT
        ("20240331020000", "2024-03-31T01:00:00.000Z"),  # first BST wall time
        ("20241027005959", "2024-10-26T23:59:59.000Z"),  # BST
        ("20241027013000", "2024-10-27T00:30:00.000Z"),  # ambiguous: first (BST) reading
        ("20241027020000", "2024-10-27T02:00:00.000Z"),  # GMT again
        ("20230326013000", "2023-03-26T01:30:00.000Z"),  # 2023: last Sunday of March
        ("20231029013000", "2023-10-29T00:30:00.000Z"),  # 2023: last Sunday of October
    ],
)
def test_gmt_bst_boundaries(text: str, utc: str) -> None:
    ts = parse_ts(text)
    assert ts is not None and ts.to_instant() == utc


def test_non_existent_hour_is_normalised_to_a_real_wall_time() -> None:
    ts = parse_ts("20240331013000")
    assert ts is not None
    assert ts.to_fhir() == "2024-03-31T02:30:00+01:00"


def test_values_compare_as_instants_across_the_october_change() -> None:
    first = parse_ts("20241027015900")  # 00:59 UTC (BST reading)
    later = parse_ts("20241027020000")  # 02:00 UTC
    assert first is not None and later is not None
    assert first.value < later.value
    assert later.value - first.value == timedelta(hours=1, minutes=1)
    assert isinstance(first.value.tzinfo, timezone)


def test_other_default_zone() -> None:
    ts = parse_ts("20240705120000", default_tz="UTC")
    assert ts is not None and ts.to_instant() == "2024-07-05T12:00:00.000Z"


@pytest.mark.parametrize(
    "text",
    [
        "24",
        "20240",
        "2024070",
        "20241305",  # month 13
        "20240230",  # 30 February
        "20240705250000",  # hour 25
        "20240705126000",  # minute 60
        "2024-07-05",
        "20240705T1430",
        "20240705143015+01",
        "20240705143015+0160",
        "20240705143015+1500",
        "202407051430.5",  # fraction needs seconds
        "20240705143015.",
        "20240705143015.1234567",
        "abcd",
    ],
)
def test_bad_timestamps_raise(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_ts(text)


@given(
    dt=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31),
        timezones=st.just(timezone(timedelta(hours=1))) | st.just(UTC),
    ),
    precision=st.sampled_from(["year", "month", "day", "hour", "minute", "second"]),
)
def test_format_then_parse_keeps_precision_and_value(dt: datetime, precision: str) -> None:
    text = format_ts(dt, precision, with_offset=True)
    ts = parse_ts(text)
    assert ts is not None
    assert ts.precision == precision
    digits = {"year": 4, "month": 6, "day": 8, "hour": 10, "minute": 12, "second": 14}[precision]
    assert ts.value.strftime("%Y%m%d%H%M%S")[:digits] == dt.strftime("%Y%m%d%H%M%S")[:digits]
    if digits > 8:
        assert ts.value.utcoffset() == dt.utcoffset()


def test_format_fraction_and_without_offset() -> None:
    dt = datetime(2024, 7, 5, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_ts(dt, "fraction") == "20240705143015.123+0100"
    assert format_ts(dt, "minute", with_offset=False) == "202407051430"
    assert format_ts(dt, "day") == "20240705"


@pytest.mark.parametrize("text", ["2024-01-01", "2024-01-01T10:00:00", "01/02/2024", "abcd0101"])
def test_iso_and_other_formats_are_named_as_not_hl7(text: str) -> None:
    with pytest.raises(TimestampError, match="not an HL7 timestamp"):
        parse_ts(text)

"""HL7 TS/DTM values → timezone-aware datetimes that remember their precision.

``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``. A value without an offset is
local time in the feed's zone (``Europe/London`` unless the trust says otherwise),
so GMT/BST is applied by date. Precision is kept so a birth date stays a date and
a year-only value stays a year when it reaches FHIR.

``HL7Time.value`` always carries a *fixed* UTC offset (never a ZoneInfo), so two
values compare and subtract as instants even across the October change.

Clock changes (UK: last Sunday of March at 01:00 GMT, last Sunday of October at
01:00 GMT), for local times without an offset:

- the repeated hour in October (01:00–01:59 happens twice) is read as the *first*
  occurrence, still BST (+01:00) — the sender cannot tell us which, and the first
  keeps an admission before its discharge more often than not;
- the missing hour in March (01:00–01:59 never happens) is read with the offset in
  force just before the change (GMT) and normalised, so ``01:30`` becomes
  ``02:30+01:00`` (= 01:30 UTC), a real instant rather than an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo

# precision names, in order, with the number of digits each needs
PRECISIONS = ("year", "month", "day", "hour", "minute", "second", "fraction")
_LENGTHS = {4: "year", 6: "month", 8: "day", 10: "hour", 12: "minute", 14: "second"}


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=256)
def _fixed(minutes: int) -> timezone:
    return UTC if minutes == 0 else timezone(timedelta(minutes=minutes))


def _localise(dt: datetime, tz: ZoneInfo) -> datetime:
    """Attach the zone's offset for that wall time (fold=0), as a fixed offset."""
    off = dt.replace(tzinfo=tz).utcoffset()
    assert off is not None
    fixed = dt.replace(tzinfo=_fixed(int(off.total_seconds()) // 60))
    # a wall time in the spring gap does not round-trip: normalise it to a real one
    local = fixed.astimezone(tz)
    if local.replace(tzinfo=None) != dt:
        off2 = local.utcoffset()
        assert off2 is not None
        return fixed.astimezone(_fixed(int(off2.total_seconds()) // 60))
    return fixed


@dataclass(frozen=True, slots=True)
class HL7Time:
    """An instant (or partial date) and how much of it the sender gave us."""

    value: datetime  # always aware
    precision: str  # one of PRECISIONS
    had_offset: bool

    def to_fhir(self) -> str:
        """FHIR dateTime at the sender's precision (hour/minute widen to seconds)."""
        if self.precision in ("year", "month", "day"):
            return self.to_fhir_date()
        timespec = "milliseconds" if self.precision == "fraction" else "seconds"
        return self.value.isoformat(timespec=timespec)

    def to_fhir_date(self) -> str:
        """FHIR date (birthDate and the like): at most day precision, local calendar date."""
        v = self.value
        if self.precision == "year":
            return f"{v.year:04d}"
        if self.precision == "month":
            return f"{v.year:04d}-{v.month:02d}"
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"

    def to_instant(self) -> str:
        """FHIR instant (full precision, UTC)."""
        return self.value.astimezone(UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        )

    @property
    def epoch(self) -> float:
        return self.value.timestamp()


class TimestampError(ValueError):
    pass


def _hour_offset(tz: ZoneInfo, year: int, month: int, day: int, hour: int) -> timezone | None:
    """The fixed offset of a whole local hour, or None if the zone changes within it."""
    offsets = {
        datetime(year, month, day, hour, minute, second, fold=fold, tzinfo=tz).utcoffset()
        for minute, second in ((0, 0), (59, 59))
        for fold in (0, 1)
    }
    if len(offsets) != 1:
        return None
    (off,) = offsets
    assert off is not None
    return _fixed(int(off.total_seconds()) // 60)


_UNREAD = object()  # an hour of a cached day whose offset nobody has asked for yet


@lru_cache(maxsize=8192)
def _day_hours(tz_name: str, year: int, month: int, day: int) -> list[object]:
    """One slot per local hour of a day, filled by ``_local_offset`` when first read.

    An impossible date (or an unknown zone) takes a slot too, left unfilled, before
    ``_hour_offset`` raises: a feed of such values can push real days out of the
    cache, never change an answer.
    """
    return [_UNREAD] * 24


def _local_offset(tz_name: str, year: int, month: int, day: int, hour: int) -> timezone | None:
    """``_hour_offset`` of one local hour, remembered by day (None: the zone changes in it).

    Cached by day: a feed's event times fall in a few thousand distinct days, so the
    zoneinfo look-ups are done once per hour of those days rather than once per value.
    Cached by hour, a 100 k extract's 16,000 distinct hours filled the cache. Each hour
    is worked out only when read: dates of birth are one hour of a day each and, over a
    large population, tens of thousands of days, so a cache miss must stay cheap.
    """
    hours = _day_hours(tz_name, year, month, day)
    off = hours[hour]
    if off is _UNREAD:
        off = hours[hour] = _hour_offset(zone(tz_name), year, month, day, hour)
    return cast("timezone | None", off)


_FAST_PRECISION = {8: "day", 10: "hour", 12: "minute", 14: "second"}
_SCALE = {8: 1_000_000, 10: 10_000, 12: 100, 14: 1}


@lru_cache(maxsize=256)
def _offset(text: str) -> timezone | None:
    """``+HHMM``/``-HHMM`` (digits, MM < 60) → fixed offset; None beyond ±14:00."""
    minutes = int(text[1:3]) * 60 + int(text[3:])
    if minutes > 14 * 60:
        return None
    return _fixed(-minutes if text[0] == "-" else minutes)


def _short(text: str, default_tz: str) -> tuple[datetime, str, bool] | None:
    """``parse_ts``'s short path as parts: (aware datetime, digits, had offset) of a
    plain-digit value (day to second, with or without ``+ZZZZ``) whose offset is
    known; None for anything else, which ``_parse_general`` reads (it owns every
    error, and the local hours a zone change falls in).
    """
    n = len(text)
    if n >= 13 and text[-5] in "+-":
        body, off = text[:-5], text[-4:]
    else:
        body, off = text, ""
    if (
        len(body) not in _SCALE
        or not body.isdigit()  # isdigit alone admits non-ASCII digits: isascii too
        or not body.isascii()
        or (off and not (off.isdigit() and off.isascii() and off[2] < "6"))
    ):
        return None
    try:
        v = int(body) * _SCALE[len(body)]  # one int() and divmods: cheaper than six int()s
        v, second = divmod(v, 100)
        v, minute = divmod(v, 100)
        v, hour = divmod(v, 100)
        v, day = divmod(v, 100)
        year, month = divmod(v, 100)
        if off:
            tzinfo = _offset(text[-5:])
            if tzinfo is None:
                return None
        else:
            tzinfo = _local_offset(default_tz, year, month, day, hour)
            if tzinfo is None:  # the zone changes within this local hour
                return None
        return datetime(year, month, day, hour, minute, second, 0, tzinfo), body, bool(off)
    except Exception:  # noqa: BLE001 - impossible date, unknown zone …: the general path
        return None


def parse_ts(text: str, default_tz: str = "Europe/London") -> HL7Time | None:
    """Parse a TS/DTM value; empty → None; malformed → TimestampError.

    Nearly every value a feed sends is plain digits (day to second) with or without
    a ``+ZZZZ`` offset: those take a short path (``_short``); anything else (and
    anything the short path would reject) takes ``_parse_general``, which owns every
    error.
    """
    if not text:
        return None
    short = _short(text, default_tz)
    if short is None:
        return _parse_general(text, default_tz)
    dt, body, had_offset = short
    return HL7Time(dt, _FAST_PRECISION[len(body)], had_offset)


@lru_cache(maxsize=256)
def _iso_offset(tzinfo: timezone) -> str:
    """The offset as ``datetime.isoformat`` writes it (``+01:00``)."""
    return datetime(2000, 1, 1, tzinfo=tzinfo).isoformat()[19:]


def _local_text(digits: str) -> str:
    """``YYYY-MM-DDThh:mm:ss`` from 10 to 14 plain digits (hour and minute widen)."""
    b = digits.ljust(14, "0")
    return f"{b[:4]}-{b[4:6]}-{b[6:8]}T{b[8:10]}:{b[10:12]}:{b[12:14]}"


def fhir_datetime(text: str, default_tz: str = "Europe/London") -> str | None:
    """``parse_ts(text, default_tz).to_fhir()`` (None when empty).

    The mapping writes one for most timestamps it reads; a plain-digit value's text
    is cut from its own digits (they are its local date and time) instead of
    formatted by ``isoformat``, about a microsecond each.
    """
    if not text:
        return None
    short = _short(text, default_tz)
    if short is None:
        t = _parse_general(text, default_tz)
        return t.to_fhir() if t else None
    dt, b, _ = short
    if len(b) == 8:  # day precision: the date as sent
        return f"{b[:4]}-{b[4:6]}-{b[6:8]}"
    return _local_text(b) + _iso_offset(dt.tzinfo)


def fhir_instant(text: str, default_tz: str = "Europe/London") -> str | None:
    """``parse_ts(text, default_tz).to_instant()`` (None when empty), without the HL7Time.

    Message times (MSH-7, OBR-22) are new in every message, so this runs for nearly
    every one; ``isoformat`` alone cost more than the parse.
    """
    if not text:
        return None
    short = _short(text, default_tz)
    if short is None:
        t = _parse_general(text, default_tz)
        return t.to_instant() if t else None
    dt, b, _ = short
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
        return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
                f"{dt.second:02d}.000Z")
    return _local_text(b) + ".000Z"  # UTC already: the digits are the instant


def _parse_general(text: str, default_tz: str) -> HL7Time | None:
    """Every TS/DTM form, and the errors (see ``parse_ts``)."""
    if not text:
        return None
    s = text.split("^", 1)[0].strip()  # TS may carry a degree-of-precision component
    if not s:
        return None
    if not s[:4].isdigit() or any(c in s for c in ":T /"):
        raise TimestampError(f"not an HL7 timestamp: {text!r}")
    offset: timezone | None = None
    pos = s.find("+", 4)
    if pos == -1:
        pos = s.find("-", 4)
    if pos != -1:
        off = s[pos + 1 :]
        sign = s[pos]
        s = s[:pos]
        if not (off.isascii() and off.isdigit()):
            raise TimestampError(f"not an HL7 timestamp: {text!r}")
        if len(off) != 4 or int(off[2:]) > 59:
            raise TimestampError(f"bad UTC offset in {text!r}")
        minutes = int(off[:2]) * 60 + int(off[2:])
        if minutes > 14 * 60:
            raise TimestampError(f"UTC offset out of range in {text!r}")
        offset = _fixed(-minutes if sign == "-" else minutes)
    frac = ""
    if "." in s:
        s, frac = s.split(".", 1)
        if not (frac.isascii() and frac.isdigit()) or len(s) != 14 or len(frac) > 6:
            raise TimestampError(f"bad fractional seconds in {text!r}")
    n = len(s)
    if n not in _LENGTHS or not (s.isascii() and s.isdigit()):
        raise TimestampError(f"not an HL7 timestamp: {text!r}")
    precision = "fraction" if frac else _LENGTHS[n]
    year = int(s[0:4])
    month = int(s[4:6]) if n >= 6 else 1
    day = int(s[6:8]) if n >= 8 else 1
    hour = int(s[8:10]) if n >= 10 else 0
    try:
        dt = datetime(
            year,
            month,
            day,
            hour,
            int(s[10:12]) if n >= 12 else 0,
            int(s[12:14]) if n >= 14 else 0,
            int((frac + "000000")[:6]) if frac else 0,
        )
    except ValueError as exc:
        raise TimestampError(f"impossible date/time in {text!r}: {exc}") from None
    if offset is not None:
        return HL7Time(dt.replace(tzinfo=offset), precision, True)
    fixed = _local_offset(default_tz, year, month, day, hour)
    if fixed is not None:
        return HL7Time(dt.replace(tzinfo=fixed), precision, False)
    return HL7Time(_localise(dt, zone(default_tz)), precision, False)


def format_ts(dt: datetime, precision: str = "second", with_offset: bool = True) -> str:
    """Write an aware datetime as an HL7 TS at the given precision."""
    digits = {"year": 4, "month": 6, "day": 8, "hour": 10, "minute": 12}.get(precision, 14)
    out = dt.strftime("%Y%m%d%H%M%S")[:digits]
    if precision == "fraction":
        out += f".{dt.microsecond // 1000:03d}"
    if with_offset and digits > 8:
        out += dt.strftime("%z")
    return out

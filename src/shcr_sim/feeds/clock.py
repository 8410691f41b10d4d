"""Fast HL7 timestamps from integer epoch seconds, in UK local time or with an offset.

The generator writes millions of timestamps, so this avoids ``datetime``/``strftime``
on the hot path: BST boundaries are computed once per year, ``time.gmtime`` does the
calendar arithmetic and recent values are cached (a visit's admission time is written
in every message about that visit).
"""

from __future__ import annotations

import calendar
import time
from datetime import date
from functools import lru_cache


@lru_cache(maxsize=256)
def _bst_bounds(year: int) -> tuple[int, int]:
    """UTC epochs when BST starts and ends: last Sundays of March/October, 01:00 UTC
    (the rules since 1996; scenarios before that would need the historic table)."""

    def last_sunday(month: int) -> int:
        last = calendar.monthrange(year, month)[1]
        d = date(year, month, last)
        return last - (d.weekday() + 1) % 7

    start = calendar.timegm((year, 3, last_sunday(3), 1, 0, 0))
    end = calendar.timegm((year, 10, last_sunday(10), 1, 0, 0))
    return start, end


@lru_cache(maxsize=8192)
def _day(day: int) -> tuple[str, int]:
    """Days since the epoch → (``YYYYMMDD``, year)."""
    t = time.gmtime(day * 86400)
    return f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}", t.tm_year


def uk_offset(epoch: int) -> int:
    """Seconds east of UTC for Europe/London at this instant (0 or 3600)."""
    start, end = _bst_bounds(_day(epoch // 86400)[1])
    return 3600 if start <= epoch < end else 0


def _local(epoch: int) -> tuple[str, int, int]:
    """(local date ``YYYYMMDD``, seconds into the local day, offset)."""
    off = uk_offset(epoch)
    day, rest = divmod(epoch + off, 86400)
    return _day(day)[0], rest, off


@lru_cache(maxsize=65536)
def ts_offset(epoch: int) -> str:
    """``YYYYMMDDHHMMSS+0000`` / ``+0100`` (UK local wall time with its offset)."""
    d, r = _local(epoch)[:2]
    off = "+0100" if uk_offset(epoch) else "+0000"
    return f"{d}{r // 3600:02d}{r // 60 % 60:02d}{r % 60:02d}{off}"


@lru_cache(maxsize=65536)
def ts_minutes(epoch: int) -> str:
    """``YYYYMMDDHHMM`` in UK local time, no offset."""
    d, r, _ = _local(epoch)
    return f"{d}{r // 3600:02d}{r // 60 % 60:02d}"


@lru_cache(maxsize=65536)
def ts_seconds(epoch: int) -> str:
    """``YYYYMMDDHHMMSS`` in UK local time, no offset."""
    d, r, _ = _local(epoch)
    return f"{d}{r // 3600:02d}{r // 60 % 60:02d}{r % 60:02d}"


def ts_millis(epoch: int, millis: int) -> str:
    """``YYYYMMDDHHMMSS.sss`` in UK local time, no offset."""
    return f"{ts_seconds(epoch)}.{millis:03d}"


def date_str(epoch: int) -> str:
    """``YYYYMMDD`` (UK local calendar date)."""
    return _local(epoch)[0]


def epoch_of(d: date) -> int:
    """Midnight UTC of a date, as epoch seconds."""
    return calendar.timegm((d.year, d.month, d.day, 0, 0, 0))

"""When things happen in a day: planned work in office hours, unplanned care on a curve.

Planned work (registrations, bookings, clinics, elective lists, letters, GP bloods)
happens on weekdays between 09:00 and 17:00 UK local time. Unplanned care (ED,
emergency admissions, urgent care) arrives around the clock, thinned by an hourly
curve shaped like NHS England A&E arrivals: quiet at 04:00, busiest late morning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .clock import uk_offset

HOUR = 3600
DAY = 86400


def local_clock(t: int) -> tuple[int, int]:
    """(seconds into the UK local day, weekday with Monday = 0)."""
    local = t + uk_offset(t)
    return local % DAY, (local // DAY + 3) % 7  # 1970-01-01 was a Thursday


def office(rng: random.Random, t: int, start: int = 9 * HOUR, hours: int = 8 * HOUR) -> int:
    """``t`` if it falls in weekday office hours, else a time in the next working day's.

    Never earlier than ``t`` (nothing moves before what caused it)."""
    clock, weekday = local_clock(t)
    if weekday < 5 and start <= clock < start + hours:
        return t
    day = t - clock  # local midnight (as an epoch, to the hour around a clock change)
    if weekday >= 5 or clock >= start:
        day += DAY
        weekday = (weekday + 1) % 7
    while weekday >= 5:
        day += DAY
        weekday = (weekday + 1) % 7
    return day + start + rng.randrange(hours)


def daytime(rng: random.Random, t: int, start: int = 10 * HOUR, hours: int = 9 * HOUR) -> int:
    """``t`` if it falls in the day window (any day of the week), else the next window."""
    clock, _ = local_clock(t)
    if start <= clock < start + hours:
        return t
    day = t - clock + (DAY if clock >= start else 0)
    return day + start + rng.randrange(hours)


def morning_round(rng: random.Random, t: int) -> int:
    """The ward's phlebotomy round (06:00-10:00) on the day after ``t``."""
    clock, _ = local_clock(t)
    return t - clock + DAY + 6 * HOUR + rng.randrange(4 * HOUR)


@dataclass(frozen=True, slots=True)
class Curve:
    """Relative arrivals per local hour. Thinning a Poisson process by ``accept`` keeps
    its mean rate when the base rate is multiplied by ``boost``."""

    accept: tuple[float, ...]
    boost: float

    def keeps(self, rng: random.Random, t: int) -> bool:
        return rng.random() < self.accept[local_clock(t)[0] // HOUR]


def curve(weights: tuple[float, ...]) -> Curve:
    top = max(weights)
    return Curve(tuple(w / top for w in weights), top * len(weights) / sum(weights))


# share of A&E arrivals by hour of day (00:00 … 23:00), after NHS England's published
# arrival profiles: lowest 04:00-06:00, peak 10:00-13:00, busy into the evening
ED_CURVE = curve((2.6, 2.1, 1.7, 1.4, 1.2, 1.2, 1.5, 2.4, 3.9, 5.6, 6.4, 6.5,
                  6.3, 6.1, 5.9, 5.8, 5.7, 5.6, 5.4, 5.0, 4.6, 4.1, 3.5, 3.0))
# an urgent treatment centre: open around the clock, most walk-ins 08:00-22:00
URGENT_CURVE = curve((0.8, 0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.5, 4.5, 6.5, 7.0, 6.8,
                      6.4, 6.2, 6.0, 6.0, 6.2, 6.4, 6.3, 5.8, 5.0, 3.8, 2.0, 1.2))

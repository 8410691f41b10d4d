"""NHS numbers: ten digits, the last a modulus-11 check digit. Test numbers start 999."""

from __future__ import annotations

import random

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(first9: str) -> int | None:
    """The modulus-11 check digit for nine digits, or None when 10 (never issued)."""
    total = sum(int(d) * w for d, w in zip(first9, _WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def nhs_number_is_valid(value: str) -> bool:
    """True for a ten-digit number whose last digit is its modulus-11 check digit."""
    if len(value) != 10 or not value.isdigit():
        return False
    return check_digit(value[:9]) == int(value[9])


def make_nhs_number(rng: random.Random) -> str:
    """A random valid test NHS number (999 prefix)."""
    while True:
        body = f"999{rng.randrange(1_000_000):06d}"
        check = check_digit(body)
        if check is not None:
            return f"{body}{check}"

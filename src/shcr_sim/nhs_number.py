"""NHS number modulus-11 check: the one implementation every area shares.

Ten digits; the last is the check digit of the first nine (weights 10..2,
11 - sum mod 11, 11 → 0; a result of 10 is never issued). Keeping one copy
means the generator, the engine's patient key and the converter can never
disagree about which numbers are NHS numbers.
"""

from __future__ import annotations

# The FHIR identifier system of the NHS number (UK Core); the one copy every area imports.
SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def _check(digits: bytes) -> int | None:
    """Check digit of the first nine of ASCII digits (bytes); None when it would be 10.

    ``sum(int(d) * w)`` unrolled over the bytes (48 is ``ord("0")``, 54 the sum of
    the weights): the engine validates an NHS number for every message it keys.
    """
    total = (
        10 * digits[0] + 9 * digits[1] + 8 * digits[2] + 7 * digits[3] + 6 * digits[4]
        + 5 * digits[5] + 4 * digits[6] + 3 * digits[7] + 2 * digits[8] - 48 * 54
    )
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def check_digit(first9: str) -> int | None:
    """The check digit for nine digits; None when it would be 10 or input is not 9 digits."""
    if len(first9) != 9 or not first9.isascii() or not first9.isdigit():
        return None
    return _check(first9.encode())


def is_valid(nhs: str) -> bool:
    """True for exactly ten ASCII digits whose last is the modulus-11 check digit."""
    if len(nhs) != 10 or not nhs.isascii() or not nhs.isdigit():
        return False
    digits = nhs.encode()
    return _check(digits) == digits[9] - 48

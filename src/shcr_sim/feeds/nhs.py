"""NHS numbers for the simulated population: valid modulus-11 test numbers (999 prefix).

The check itself is ``shcr_sim.nhs_number`` (one implementation for the whole
project); ``check_digit`` and ``nhs_number_is_valid`` are re-exported here for
the feeds' public API.
"""

from __future__ import annotations

import random

from ..nhs_number import check_digit
from ..nhs_number import is_valid as nhs_number_is_valid

__all__ = ["check_digit", "make_nhs_number", "nhs_number_is_valid"]


def make_nhs_number(rng: random.Random) -> str:
    """A random valid test NHS number (999 prefix)."""
    while True:
        body = f"999{rng.randrange(1_000_000):06d}"
        check = check_digit(body)
        if check is not None:
            return f"{body}{check}"

"""NHS numbers: every generated number is a valid 999 test number; validation is strict."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.feeds.nhs import check_digit, make_nhs_number, nhs_number_is_valid


def test_known_numbers() -> None:
    assert nhs_number_is_valid("9434765919")  # the NHS Data Dictionary example
    assert not nhs_number_is_valid("9434765918")
    assert not nhs_number_is_valid("943476591")
    assert not nhs_number_is_valid("94347659 9")
    assert not nhs_number_is_valid("")


@given(st.integers(min_value=0, max_value=2**32))
def test_generated_numbers_are_valid_test_numbers(seed: int) -> None:
    n = make_nhs_number(random.Random(seed))
    assert n.startswith("999") and len(n) == 10
    assert nhs_number_is_valid(n)


@given(st.integers(min_value=0, max_value=2**32), st.integers(0, 9), st.integers(1, 9))
def test_any_single_digit_change_is_caught(seed: int, pos: int, delta: int) -> None:
    n = make_nhs_number(random.Random(seed))
    changed = n[:pos] + str((int(n[pos]) + delta) % 10) + n[pos + 1 :]
    assert not nhs_number_is_valid(changed)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_check_digit_agrees_with_validation(first9: str) -> None:
    check = check_digit(first9)
    if check is None:  # remainder 10: no valid number has these nine digits
        assert not any(nhs_number_is_valid(first9 + str(d)) for d in range(10))
    else:
        assert [d for d in range(10) if nhs_number_is_valid(first9 + str(d))] == [check]

"""One modulus-11 check: feeds, the engine and the converter all use ``shcr_sim.nhs_number``."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from shcr_sim import feeds, nhs_number
from shcr_sim.engine.commands import CommandError, record_command
from shcr_sim.feeds import nhs as feeds_nhs

# valid by the weights, but not ASCII digits: str.isdigit() and int() accept them
FULL_WIDTH = "9990000018".translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def test_feeds_reexports_the_shared_check() -> None:
    assert feeds_nhs.check_digit is nhs_number.check_digit
    assert feeds_nhs.nhs_number_is_valid is nhs_number.is_valid
    assert feeds.nhs_number_is_valid is nhs_number.is_valid


def test_non_ascii_digits_are_not_an_nhs_number_anywhere() -> None:
    assert nhs_number.is_valid("9990000018")
    assert not feeds.nhs_number_is_valid(FULL_WIDTH)
    assert feeds_nhs.check_digit("99900000x") is None  # used to raise ValueError


def test_record_command_refuses_non_ascii_digits(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a valid NHS number"):
        record_command(tmp_path / "none.db", FULL_WIDTH, None, False, Console())

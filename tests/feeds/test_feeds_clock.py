"""The generator's fast timestamp writer agrees with zoneinfo (GMT/BST) for any instant."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.feeds import clock
from shcr_sim.hl7 import parse_ts

LONDON = ZoneInfo("Europe/London")


# the current EU-harmonised rules apply from 1996; earlier UK years had their own dates
@given(st.integers(min_value=820_454_400, max_value=4_102_444_800))  # 1996 .. 2100
def test_matches_zoneinfo(epoch: int) -> None:
    local = datetime.fromtimestamp(epoch, UTC).astimezone(LONDON)
    assert clock.ts_offset(epoch) == local.strftime("%Y%m%d%H%M%S%z")
    assert clock.ts_seconds(epoch) == local.strftime("%Y%m%d%H%M%S")
    assert clock.ts_minutes(epoch) == local.strftime("%Y%m%d%H%M")
    assert clock.date_str(epoch) == local.strftime("%Y%m%d")
    assert parse_ts(clock.ts_offset(epoch)).epoch == epoch


def test_bst_boundaries_2025() -> None:
    start = int(datetime(2025, 3, 30, 1, 0, tzinfo=UTC).timestamp())
    end = int(datetime(2025, 10, 26, 1, 0, tzinfo=UTC).timestamp())
    assert clock.ts_offset(start - 1) == "20250330005959+0000"
    assert clock.ts_offset(start) == "20250330020000+0100"
    assert clock.ts_offset(end - 1) == "20251026015959+0100"
    assert clock.ts_offset(end) == "20251026010000+0000"

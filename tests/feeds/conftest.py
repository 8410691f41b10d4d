"""One small generated scenario shared by the feeds tests (generation is deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from feeds_helpers import Generated, read_all, small_scenario

from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import Scenario


@pytest.fixture(scope="session")
def feeds_scenario() -> Scenario:
    # every data type from every hospital, a busy live window with resends: every
    # behaviour shows up in a small run
    return small_scenario(600, every_type=True, hours=48, rate_multiplier=40.0, resend_rate=0.05)


@pytest.fixture(scope="session")
def feeds_run(tmp_path_factory: pytest.TempPathFactory, feeds_scenario: Scenario):
    out: Path = tmp_path_factory.mktemp("feeds-run")
    manifest = generate(feeds_scenario, out)
    return out, manifest


@pytest.fixture(scope="session")
def feeds_messages(feeds_run) -> list[Generated]:
    return read_all(feeds_run[0])

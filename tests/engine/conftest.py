"""Engine test fixtures: one small generated multi-trust scenario for the session."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import cli


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated multi-trust scenario (backload + live), shared read-only."""
    out = tmp_path_factory.mktemp("gen") / "scenario"
    cli("generate", "--out", str(out), "--messages", "1500", "--seed", "7", "-q")
    return out

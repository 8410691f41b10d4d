"""Shared test fixtures: paths to the hand-written HL7 samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Shared, loaded machines: no per-example deadlines. In CI the examples are
# derandomized so a run is repeatable; locally every run explores afresh.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parents[1]
HL7_FIXTURES = ROOT / "fixtures" / "hl7"


def hl7_fixture_paths() -> list[Path]:
    """Every hand-written sample message (one message per file)."""
    return sorted(HL7_FIXTURES.glob("*.hl7"))


@pytest.fixture
def hl7_fixtures() -> Path:
    return HL7_FIXTURES


@pytest.fixture
def adt_a01_text() -> str:
    return (HL7_FIXTURES / "adt_a01_itk_v24.hl7").read_text(encoding="utf-8")

"""Shared test fixtures: paths to the hand-written HL7 samples; connections left open."""

from __future__ import annotations

import os
import threading
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


class ConnectionThreads:
    """aiosqlite connection threads started since ``mark()`` (or the fixture's start)
    and still alive after a short wait: connections left open, each of which would
    keep the process from exiting."""

    def __init__(self) -> None:
        self.mark()

    def mark(self) -> None:
        self._before = set(threading.enumerate())

    def left_open(self) -> list[threading.Thread]:
        opened = [t for t in threading.enumerate()
                  if t not in self._before and "_connection_worker_thread" in t.name]
        for t in opened:
            t.join(5)
        return [t for t in opened if t.is_alive()]


@pytest.fixture
def connection_threads() -> ConnectionThreads:
    return ConnectionThreads()

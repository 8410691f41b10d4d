"""Fixtures for the live tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from shcr_sim.engine.queue import DurableQueue

from .helpers import MemorySink


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def queue(tmp_path: Path):
    q = await DurableQueue.open(tmp_path / "engine.db")
    yield q
    await q.close()

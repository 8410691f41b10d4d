"""Crash safety: SIGKILL a replay part-way, run it again, everything adds up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import (
    cli,
    count_while_running,
    kill_when,
    live_files,
    manifest_total,
    replay_json,
)


def _applied(db: Path) -> int:
    return count_while_running(db, "SELECT COUNT(*) FROM queue WHERE state='applied'")


def test_sigkill_mid_replay_then_resume(generated: Path, tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    args = ["--db", str(db), str(generated), *live_files(generated)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "shcr_sim.cli", "replay", "--json", "--rate", "300",
         "--batch", "50", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    kill_when(proc, db, "SELECT COUNT(*) FROM queue WHERE state='applied'", 200, timeout=60)
    killed_at = _applied(db)
    assert 0 < killed_at < manifest_total(generated)

    report = replay_json(*args)  # resume: same command, no throttle
    total = report["total"]
    assert report["ok"] is True, report
    assert total["pending"] == 0
    assert total["accepted"] == manifest_total(generated)  # nothing read twice, nothing lost
    assert total["accepted"] == total["applied"] + total["duplicate"] + total["dead_lettered"]
    assert "OK" in cli("verify", "--db", str(db), str(generated), *live_files(generated)).stdout


def test_a_missed_kill_window_fails_naming_the_timeout(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with pytest.raises(pytest.fail.Exception, match=r"missed the kill window.*0\.3 s timeout"):
        kill_when(proc, tmp_path / "none.db", "SELECT COUNT(*) FROM queue", 1, timeout=0.3)
    assert proc.poll() is not None  # killed anyway: no stray process left behind

"""Crash safety: SIGKILL a replay part-way, run it again, everything adds up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import cli, count_while_running, live_files, manifest_total, replay_json


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
    deadline = time.monotonic() + 60
    while _applied(db) < 200 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "replay finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = _applied(db)
    assert 0 < killed_at < manifest_total(generated)

    report = replay_json(*args)  # resume: same command, no throttle
    total = report["total"]
    assert report["ok"] is True, report
    assert total["pending"] == 0
    assert total["accepted"] == manifest_total(generated)  # nothing read twice, nothing lost
    assert total["accepted"] == total["applied"] + total["duplicate"] + total["dead_lettered"]
    assert "OK" in cli("verify", "--db", str(db), str(generated), *live_files(generated)).stdout

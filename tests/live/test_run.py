"""``shcr-sim run`` end to end with every fault on, and the terminal monitor."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.engine.liverun import RunFaults, RunOptions, run_simulation, summary
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.monitor.heartbeat import HeartbeatTracker
from shcr_sim.monitor.http import MonitorHTTP
from shcr_sim.monitor.metrics import Monitor
from shcr_sim.monitor.terminal import watch


def resends_of_garbage(result) -> int:
    return sum(r.resends for r in result.sends.values())


async def test_run_with_every_fault_loses_and_doubles_nothing(tmp_path) -> None:
    sc = load_scenario(None)
    first = sc.trusts[0].ods
    faults = RunFaults(store_outage=1.0, store_outage_at=0.0, silent_feed=first, silent_at=0.1,
                       silent_for=1.5, malformed_burst=6, ack_delay=0.5, slow_acks=0.05,
                       drop_acks=0.05, resets=0.05, mid_frame_resets=0.02)
    opts = RunOptions(out=tmp_path / "run", messages=800, live_hours=240, live_rate=200,
                      heartbeat_interval=0.1, silent_after=0.5, http_port=None,
                      ack_timeout=0.3, monitor_tick=0.1, report_every=0.5, faults=faults)
    reports: list[dict] = []
    result = await run_simulation(sc, opts, on_report=reports.append)
    data = summary(result)
    d = result.delivery
    assert result.reconciliation.ok, data["reconciliation"]
    assert d.ok and d.lost == 0 and d.doubled == 0 and d.distinct > 30
    # all six dead-lettered; a garbage frame whose AE was lost to a fault may be there twice
    # (without MSH-10 it cannot be de-duplicated)
    assert 6 <= d.malformed_dead_lettered <= 6 + resends_of_garbage(result)
    assert result.outage_refused > 0  # the store really was down and writes were retried
    resends = sum(r.resends for r in result.sends.values())
    # a resend after a mid-frame reset is a first copy; the others land as duplicates
    assert resends > 0 and d.duplicates_absorbed > 0
    events = [(e["key"], e["state"]) for e in data["alert_events"]]
    assert (f"heartbeat:{first}", "raised") in events
    assert (f"heartbeat:{first}", "cleared") in events
    assert data["live_latency_ms"]["count"] == d.distinct
    during = data["live_latency_during_backload_ms"]  # live messages that met the drain
    assert 0 < during["count"] <= d.distinct and during["p50"] <= during["p99"] <= during["max"]
    assert data["ok"] and reports  # progress was reported while it ran


def test_run_command_prints_a_reconciled_result(tmp_path) -> None:
    res = CliRunner().invoke(app, [
        "run", "--out", str(tmp_path / "r"), "--messages", "300", "--live-hours", "24",
        "--live-rate", "0", "--http-port", "0", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["reconciliation_ok"] and data["live_delivery"]["lost"] == 0
    assert data["reconciliation"]["accepted"] >= data["backload"]["read"]
    assert data["queue_tally_corrected"] == 0  # the engine kept it exact


async def test_terminal_monitor_prints_one_frame(capsys) -> None:
    tracker = HeartbeatTracker(silent_after=0.0)
    tracker.expect(["RXQ"])
    monitor = Monitor(heartbeats=tracker)
    await monitor.tick()
    http = await MonitorHTTP(monitor).start(port=0)
    try:
        code = await asyncio.to_thread(watch, f"http://127.0.0.1:{http.port}", 1.0, True)
    finally:
        await http.close()
    out = capsys.readouterr().out
    assert code == 0
    assert "RXQ" in out and "SILENT" in out and "ALERT heartbeat:RXQ" in out


def test_terminal_monitor_reports_an_unreachable_engine() -> None:
    assert watch("http://127.0.0.1:9", 1.0, True) == 1

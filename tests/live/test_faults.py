"""Each fault as a scenario option (``[faults]`` in the scenario TOML), run as a user runs it.

Every test asserts the same two things besides the fault's own evidence: the
reconciliation adds up (accepted = applied + duplicate + dead-lettered, nothing
pending) and every distinct live message was queued exactly once (nothing lost,
nothing doubled), however the fault made the senders resend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.engine.liverun import RunResult, run_options, run_simulation
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import default_scenario_text, load_scenario
from shcr_sim.feeds.sender import read_stream

# quick feeds: the live stream takes about a second, heartbeats every 0.1 s
RUN = """
[run]
rate = 200
heartbeat_interval = 0.1
silent_after = 0.5
ack_timeout = 0.3
"""


def scenario_file(tmp_path: Path, faults: str) -> Path:
    path = tmp_path / "my-scenario.toml"
    path.write_text(default_scenario_text() + RUN + "\n[faults]\n" + faults)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One generated data folder shared by the runs (each run has its own database)."""
    sc = load_scenario(None)
    sc = sc.model_copy(update={"live": sc.live.model_copy(update={"hours": 240})})
    out = tmp_path_factory.mktemp("faults")
    generate(sc, out, messages=800)
    return out


def live_keys(data: Path) -> int:
    return len({m for p in (data / "live").glob("*.hl7") for m in read_stream(p)})


async def run_with(data: Path, tmp_path: Path, faults: str) -> RunResult:
    sc = load_scenario(scenario_file(tmp_path, faults))
    opts = run_options(sc, data, db=tmp_path / "engine.db", http_port=None, monitor_tick=0.1,
                       report_every=60)
    result = await run_simulation(sc, opts)
    rec, d = result.reconciliation, result.delivery
    assert rec.ok and rec.total.pending == 0, rec.to_json()["total"]
    assert d.ok and d.lost == 0 and d.doubled == 0, d
    assert d.distinct == live_keys(data) > 30
    return result


def total(result: RunResult, what: str) -> int:
    return sum(getattr(r, what) for r in result.sends.values())


async def test_store_down_for_a_second_holds_the_queue_then_drains(data, tmp_path) -> None:
    result = await run_with(data, tmp_path, "store_outage = 1.0\nstore_outage_at = 0.2\n")
    assert result.outage_refused > 0  # the live release really was refused and retried
    assert total(result, "delivered") >= result.delivery.distinct  # ACKed all the while


async def test_slow_and_dropped_acks_are_resent_and_absorbed(data, tmp_path) -> None:
    result = await run_with(data, tmp_path,
                            "ack_delay = 0.6\nslow_acks = 0.05\ndrop_acks = 0.03\n")
    assert total(result, "timeouts") > 0 and total(result, "resends") > 0
    assert result.delivery.duplicates_absorbed > 0  # the resends landed as duplicates


async def test_connections_reset_instead_of_acks(data, tmp_path) -> None:
    result = await run_with(data, tmp_path, "resets = 0.05\n")
    assert total(result, "reconnects") > 0
    assert result.delivery.duplicates_absorbed > 0  # queued before the reset, then resent


async def test_connections_reset_mid_frame(data, tmp_path) -> None:
    result = await run_with(data, tmp_path, "mid_frame_resets = 0.015\n")
    assert total(result, "reconnects") > 0 and total(result, "resends") > 0


async def test_silent_feed_alert_fires_and_clears(data, tmp_path) -> None:
    first = load_scenario(None).trusts[0].ods
    result = await run_with(data, tmp_path,
                            f'silent_feed = "{first}"\nsilent_at = 0.1\nsilent_for = 1.5\n')
    events = [(e["key"], e["state"]) for e in result.status["events"]]
    raised = events.index((f"heartbeat:{first}", "raised"))
    assert (f"heartbeat:{first}", "cleared") in events[raised:]
    assert not [a for a in result.status["alerts"] if a["key"] == f"heartbeat:{first}"]


def test_malformed_burst_from_the_scenario_file_on_the_command_line(data, tmp_path) -> None:
    toml = scenario_file(tmp_path, "malformed_burst = 6\n")
    res = CliRunner().invoke(app, ["run", str(toml), "--out", str(data), "--db",
                                   str(tmp_path / "engine.db"), "--http-port", "0", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    d = out["live_delivery"]
    assert out["reconciliation_ok"] and d["ok"] and d["lost"] == d["doubled"] == 0
    assert d["distinct"] == live_keys(data)
    assert d["dead_lettered"] == 6  # each answered AE and dead-lettered ...
    assert sum(s["errors"] for s in out["senders"].values()) == 6
    assert out["reconciliation"]["dead_lettered"] >= 6  # ... and the rest flowed


def test_command_line_flags_override_the_scenario(tmp_path) -> None:
    sc = load_scenario(scenario_file(tmp_path, "drop_acks = 0.1\nmalformed_burst = 3\n"))
    opts = run_options(sc, tmp_path, drop_acks=None, malformed_burst=0, live_rate=None,
                       heartbeat_interval=2.5)
    assert opts.faults.drop_acks == 0.1  # not given: the scenario's
    assert opts.faults.malformed_burst == 0  # given: the flag's
    assert opts.live_rate == 200 and opts.silent_after == 0.5  # [run]
    assert opts.heartbeat_interval == 2.5
    defaults = run_options(load_scenario(None), tmp_path)
    assert defaults.faults.store_outage == 0 and defaults.live_rate == 20


def test_a_bad_option_is_refused_naming_the_field(tmp_path) -> None:
    cases = (("[faults]\ndrop_acks = 2\n", "faults.drop_acks: Input should be less"),
             ('[faults]\nsilent_feed = "NOPE"\n', "faults.silent_feed: no trust"),
             ("[faults]\nstore_down = 5\n", "faults.store_down: Extra inputs"),
             # ack_timeout 2 + heartbeat 1: a lost ACK alone would look like silence
             ("[run]\nsilent_after = 2.0\n", "run: Value error, silent_after must be more"))
    for table, expected in cases:
        toml = tmp_path / "bad.toml"
        toml.write_text(default_scenario_text() + "\n" + table)
        res = CliRunner().invoke(app, ["run", str(toml), "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and expected in res.output, res.output

"""Engine test helpers: scenarios, hand-made messages, CLI runs, store snapshots."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shcr_sim.engine.queue import TALLY_KEY
from shcr_sim.store.compress import Unpacker

SCENARIO = """
name = "engine tests"
seed = 1
[backload]
start = 2024-01-01
end = 2025-01-01
[[trusts]]
name = "Test Acute"
ods = "RXX01"
sending_application = "PAS"
kind = "acute"
flavour = "itk-acute"
data_types = ["adt", "pathology"]
{extra}
"""

EXTRA_TRUST = """
[[trusts]]
name = "Late Joiner"
ods = "RYY02"
sending_application = "LATE"
kind = "acute"
flavour = "itk-acute"
data_types = ["adt"]
"""


def write_scenario(path: Path, with_late_joiner: bool = False) -> Path:
    path.write_text(SCENARIO.format(extra=EXTRA_TRUST if with_late_joiner else ""))
    return path


def adt(cid: str, evn: str, mtype: str = "ADT^A08", family: str = "SMITH",
        nhs: str = "9990000018", app: str = "PAS", fac: str = "RXX01",
        mrn: str = "M123", visit: str = "V1", pclass: str = "I") -> str:
    """A minimal ITK-flavour ADT message."""
    ev = mtype.split("^")[1]
    pid3 = f"{nhs}^^^NHS^NH~{mrn}^^^{fac}^PI" if nhs else f"{mrn}^^^{fac}^PI"
    return "\r".join([
        f"MSH|^~\\&|{app}|{fac}|SHCR|SHCR|{evn}||{mtype}|{cid}|P|2.4",
        f"EVN|{ev}|{evn}",
        f"PID|1||{pid3}||{family}^Ann||19700101|F",
        "|".join(["PV1", "1", pclass, f"WARD1^^^{fac}", *[""] * 15, f"{visit}^^^{fac}^VN"]),
    ])


def write_messages(path: Path, messages: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(messages) + "\r\n", encoding="utf-8")
    return path


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "shcr_sim.cli", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"shcr-sim {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def replay_json(*args: str) -> dict:
    return json.loads(cli("replay", "--json", *args).stdout)


def snapshot(db: Path) -> dict[str, dict]:
    """Every current resource without meta, keyed Type/id."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rkey, json FROM resource").fetchall()
        unpacker = stored_json(conn)
    out = {}
    for rkey, blob in rows:
        res = json.loads(unpacker.json(blob))
        res.pop("meta", None)
        out[rkey] = res
    return out


def stored_json(conn: sqlite3.Connection) -> Unpacker:
    """Reads the store's compressed JSON column, with the database's own dictionaries."""
    return Unpacker(dict(conn.execute("SELECT dict_id, data FROM store_dictionary")))


def queue_states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM queue GROUP BY state").fetchall())


def tally(db: Path) -> dict[tuple, int]:
    """The queue's tally (kept by the engine), entries at zero left out."""
    with sqlite3.connect(db) as conn:
        return {tuple(r[:4]): r[4] for r in conn.execute(
            f"SELECT {TALLY_KEY}, n FROM queue_tally WHERE n != 0")}


def tally_is_exact(db: Path) -> bool:
    """The queue's tally equals a count of the state rows themselves, staged ones too."""
    with sqlite3.connect(db) as conn:
        counted = {tuple(r[:4]): r[4] for r in conn.execute(
            f"SELECT {TALLY_KEY}, COUNT(*) FROM (SELECT {TALLY_KEY} FROM queue_state "
            f"UNION ALL SELECT {TALLY_KEY} FROM queue_stage) GROUP BY {TALLY_KEY}")}
    return bool(counted) and tally(db) == counted


def live_files(gen: Path) -> list[str]:
    files = sorted(str(p) for p in (gen / "live").glob("*.hl7"))
    return [a for f in files for a in ("--live", f)]


def manifest_total(gen: Path) -> int:
    return int(json.loads((gen / "manifest.json").read_text())["total"])


def count_while_running(db: Path, sql: str) -> int:
    """A COUNT(*) read while another process writes the database; 0 until it exists."""
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def kill_when(proc: subprocess.Popen, db: Path, sql: str, at_least: int,
              timeout: float = 60, poll: float = 0.1) -> None:
    """SIGKILL ``proc`` once ``sql`` counts ``at_least`` rows; fail naming the window if not.

    The kill must land mid-run: a replay that finishes first, or that has not got
    far enough within ``timeout`` seconds (a slow, shared machine), fails the test
    with a message saying which, never a bare assertion on the counts afterwards.
    """
    deadline = time.monotonic() + timeout
    n = count_while_running(db, sql)
    while n < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(poll)
        n = count_while_running(db, sql)
    if proc.poll() is not None:
        pytest.fail(f"the replay finished (exit {proc.returncode}) before it could be killed "
                    f"({n} of the {at_least} rows wanted by then)")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if n < at_least:
        pytest.fail(f"missed the kill window: only {n} of {at_least} rows ({sql!r}) within "
                    f"the {timeout:g} s timeout; the replay was killed anyway")

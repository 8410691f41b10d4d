"""Small hand-made files: live vs backload ordering, bad input, dead-letter retry, merges."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine_helpers import (
    adt,
    cli,
    replay_json,
    snapshot,
    tally_is_exact,
    write_messages,
    write_scenario,
)


def family(db: Path, patient_id: str = "RXX01-M123") -> str:
    res = snapshot(db)[f"Patient/{patient_id}"]
    return res["name"][0]["family"]


def test_live_interleaved_newest_state_wins(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    back = write_messages(tmp_path / "x/backload/RXX01/adt.hl7", [
        adt("b3", "20240103120000+0000", family="MIDDLE"),
        adt("b1", "20240101120000+0000", mtype="ADT^A28", family="OLDEST"),
    ])
    live = write_messages(tmp_path / "live.hl7", [
        adt("l4", "20250101120000+0000", family="NEWEST"),
        adt("l2", "20240102120000+0000", family="LATE-BUT-OLD"),
    ])
    db = tmp_path / "db.sqlite"
    report = replay_json("--db", str(db), str(back.parents[2]), "--live", str(live),
                         "--scenario", str(scen))
    assert report["ok"] and report["total"]["applied"] == 4
    assert family(db) == "NEWEST"
    with sqlite3.connect(db) as conn:
        hist = conn.execute(
            "SELECT message_id, made_current FROM resource_history "
            "WHERE rkey='Patient/RXX01-M123' ORDER BY version").fetchall()
    made_current = dict(hist)
    # the live lane went first; every older backload event became history only
    assert made_current["PAS|RXX01|l4"] == 1
    assert made_current["PAS|RXX01|b1"] == 0 and made_current["PAS|RXX01|b3"] == 0
    assert len(hist) == 4
    cli("verify", "--db", str(db), str(back.parents[2]), "--live", str(live))


def test_bad_input_is_dead_lettered_and_nothing_else_lost(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    good = [adt(f"g{i}", f"2024010{i}120000+0000", family=f"GOOD{i}") for i in range(1, 4)]
    no_patient = adt("np", "20240104120000+0000").replace(
        "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI", "PID|1||")
    unknown_type = adt("ut", "20240105120000+0000", mtype="ZZZ^Z99")
    unknown_sender = adt("us", "20240105120000+0000", app="ROGUE", fac="RZZ99")
    truncated = adt("tr", "20240106120000+0000")[:18]  # "MSH|^~\&|PAS|RXX01"
    path = tmp_path / "x/backload/bad.hl7"
    path.parent.mkdir(parents=True)
    body = "\r\n".join([good[0], no_patient, good[1], unknown_type, unknown_sender,
                        truncated, good[2]]) + "\r\n"
    path.write_bytes(body.encode() + b"\xff\xfe\x00garbage\x01 bytes\r\n")
    db = tmp_path / "db.sqlite"
    report = replay_json("--db", str(db), str(path.parents[1]), "--scenario", str(scen))
    total = report["total"]
    assert report["ok"] and total["applied"] == 3
    assert total["accepted"] == total["applied"] + total["dead_lettered"]
    dead = json.loads(cli("deadletter", "list", "--db", str(db), "--json").stdout)
    reasons = {d["control_id"]: d["reason"] for d in dead}
    assert "PID-3" in reasons["np"]
    assert "MSH-3/MSH-4" in reasons["us"] and "unknown sender" in reasons["us"]
    assert "ZZZ" in reasons["ut"] or "MSH-9" in reasons["ut"]
    assert all(r for r in reasons.values())
    assert family(db) == "GOOD3"
    shown = cli("deadletter", "show", str(dead[0]["id"]), "--db", str(db)).stdout
    assert dead[0]["reason"].split(":")[0] in shown


def test_dead_letter_retry_after_the_sender_is_configured(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    msgs = [
        adt("a1", "20240101120000+0000", family="FIRST"),
        adt("z1", "20240102120000+0000", app="LATE", fac="RYY02", family="AT-LATE", mrn="L9"),
    ]
    src = write_messages(tmp_path / "x/backload/all.hl7", msgs)
    db = tmp_path / "db.sqlite"
    first = cli("replay", "--json", "--db", str(db), str(src.parents[1]), "--scenario", str(scen))
    report = json.loads(first.stdout)
    assert report["total"]["dead_lettered"] == 1
    assert report["tally_corrected"] == 0 and "tally" not in first.stderr
    still = cli("deadletter", "retry", "--all", "--db", str(db), check=False)
    assert still.returncode == 1 and "unknown sender" in still.stdout
    # the fix: the trust is added to the scenario; replaying again records it
    fixed = write_scenario(tmp_path / "s2.toml", with_late_joiner=True)
    replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(fixed))
    dead = json.loads(cli("deadletter", "list", "--db", str(db), "--json").stdout)
    assert tally_is_exact(db)
    with sqlite3.connect(db) as conn:  # as a message unreadable at accept would be counted
        conn.execute("UPDATE queue_state SET sender_fac='', message_type='' WHERE seq=?",
                     (dead[0]["id"],))
    out = cli("deadletter", "retry", str(dead[0]["id"]), "--db", str(db))
    assert "applied 1" in out.stdout
    # the edit went round the tally (its trust's dead letter, and the '' group the retry
    # moved it from): the replay's reconciliation finds both, recounts and says so
    again = cli("replay", "--json", "--db", str(db), str(src.parents[1]))
    report = json.loads(again.stdout)
    assert report["tally_corrected"] == 2 and "queue's tally" in again.stderr
    assert tally_is_exact(db)
    assert report["total"]["applied"] == 2 and report["total"]["dead_lettered"] == 0
    # the reconciliation counts the retried message under its re-read trust and type
    rows = {(r["trust"], r["message_type"]): r for r in report["rows"]}
    assert rows[("RYY02", "ADT^A08")]["applied"] == 1
    assert ("(unknown)", "(unreadable)") not in rows
    assert family(db, "RYY02-L9") == "AT-LATE"
    cli("verify", "--db", str(db), str(src.parents[1]))


def test_retry_of_an_old_message_never_overwrites_newer_state(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    old = adt("o1", "20240101120000+0000", family="OLD")
    newer = adt("n1", "20240301120000+0000", family="NEWER")
    src = write_messages(tmp_path / "x/backload/a.hl7", [old, newer])
    db = tmp_path / "db.sqlite"
    replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(scen))
    # simulate an old message that failed and is retried after the newer one applied
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE queue_state SET state='dead-lettered', reason='test' "
                     "WHERE seq=(SELECT seq FROM queue_msg WHERE control_id='o1')")
        conn.execute("DELETE FROM resource_past WHERE message_id='PAS|RXX01|o1'")
    cli("deadletter", "retry", "--all", "--db", str(db))
    assert family(db) == "NEWER"
    with sqlite3.connect(db) as conn:
        made = conn.execute("SELECT made_current FROM resource_history WHERE "
                            "rkey='Patient/RXX01-M123' AND message_id='PAS|RXX01|o1'").fetchall()
    assert made == [(0,)]


def test_a40_merge_redirects_later_messages_from_its_event_time(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    merge = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240110120000+0000||ADT^A40^ADT_A39|m1|P|2.4",
        "EVN|A40|20240110120000+0000",
        "PID|1||M1^^^RXX01^PI||KEEP^Ann||19700101|F",
        "MRG|M2^^^RXX01^PI",
    ])
    msgs = [  # written newest first: the sequencer must sort them
        adt("late", "20240120120000+0000", mtype="ADT^A01", nhs="", mrn="M2", visit="V9"),
        merge,
        adt("early", "20240105120000+0000", mtype="ADT^A01", nhs="", mrn="M2", visit="V8"),
        adt("reg1", "20240101120000+0000", mtype="ADT^A28", nhs="", mrn="M1", family="KEEP"),
        adt("reg2", "20240101120000+0000", mtype="ADT^A28", nhs="", mrn="M2", family="DUP"),
    ]
    src = write_messages(tmp_path / "x/backload/adt.hl7", msgs)
    db = tmp_path / "db.sqlite"
    report = replay_json("--db", str(db), str(src.parents[1]), "--scenario", str(scen))
    assert report["total"]["applied"] == 5
    snap = snapshot(db)
    encounters = {r["identifier"][0]["value"]: r for k, r in snap.items()
                  if k.startswith("Encounter/")}
    assert encounters["V8"]["subject"]["reference"] == "Patient/RXX01-M2"  # before the merge
    assert encounters["V9"]["subject"]["reference"] == "Patient/RXX01-M1"  # after: survivor
    assert snap["Patient/RXX01-M2"]["active"] is False
    cli("verify", "--db", str(db), str(src.parents[1]))


async def test_merge_learned_late_redirects_what_was_already_applied(tmp_path: Path) -> None:
    from shcr_sim.engine.convert import TrustInfo
    from shcr_sim.engine.pipeline import Engine
    from shcr_sim.engine.queue import Inbound

    engine = await Engine.open(tmp_path / "e.db", [TrustInfo("PAS", "RXX01", "itk-acute", "T")])
    q = engine.queue
    # a live message about M2, after the merge happened, arrives and is applied first
    await q.accept([Inbound(adt("late", "20240120120000+0000", mtype="ADT^A01", nhs="",
                                mrn="M2", visit="V9"), "live")])
    await engine.drain("live")
    enc = await engine.store.current("Encounter", "RXX01-V9")
    assert enc is not None and enc["subject"]["reference"] == "Patient/RXX01-M2"
    # then the backload brings the earlier A40 (M2 merged into M1)
    merge = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240110120000+0000||ADT^A40^ADT_A39|m1|P|2.4",
        "EVN|A40|20240110120000+0000",
        "PID|1||M1^^^RXX01^PI||KEEP^Ann||19700101|F",
        "MRG|M2^^^RXX01^PI",
    ])
    await q.accept([Inbound(merge, "backload")])
    await engine.drain("backload")
    enc = await engine.store.current("Encounter", "RXX01-V9")
    assert enc is not None and enc["subject"]["reference"] == "Patient/RXX01-M1"
    assert engine.stats.reapplied == 1
    assert await q.counts() == {"applied": 2}
    await engine.close()


def test_replay_of_only_unknown_senders_warns_and_fails(tmp_path: Path) -> None:
    scen = write_scenario(tmp_path / "s.toml")
    msgs = [adt(f"u{i}", f"2024010{i}120000+0000", app="APP", fac="FAC") for i in range(1, 4)]
    src = write_messages(tmp_path / "x/backload/rogue.hl7", msgs)
    db = tmp_path / "db.sqlite"
    out = cli("replay", "--db", str(db), str(src.parents[1]), "--scenario", str(scen),
              "--json", check=False)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["total"]["dead_lettered"] == 3  # nothing lost
    assert report["unknown_senders"] == {"APP/FAC": 3}
    assert ("3 messages from senders that are not configured trusts (e.g. APP/FAC) were "
            "dead-lettered") in out.stderr
    assert "shcr-sim deadletter retry --all" in out.stderr
    # one good message alongside: the run did work, so it exits 0 but still warns
    write_messages(tmp_path / "x/backload/good.hl7", [adt("g1", "20240109120000+0000")])
    again = cli("replay", "--db", str(db), str(src.parents[1]), check=False)
    assert again.returncode == 0, again.stderr
    assert "3 messages from senders that are not configured trusts" in again.stderr


def test_replay_into_a_log_prints_a_progress_line_now_and_then(
        tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """Not a terminal (a log file, a pipe): no live table, but plain progress lines on
    stderr, every 30 s by default (here at every step); none with --json."""
    import io

    from rich.console import Console

    from shcr_sim.engine import commands

    msgs = [adt(f"c{i}-{nhs}", f"202401{i + 1:02d}120000+0000", nhs=nhs)
            for i in range(6) for nhs in ("9990000018", "9990000026")]
    src = write_messages(tmp_path / "x/backload/all.hl7", msgs)

    def run(db: str, as_json: bool) -> tuple[int, list[str], str]:
        out = io.StringIO()
        code = commands.replay_command(
            tmp_path / db, [src.parents[1]], [], scenario=None, trusts_file=None,
            trust_specs=["RXX01=PAS:itk-acute"], rate=None, validate="off", batch=4,
            as_json=as_json, console=Console(file=out, width=200))
        captured = capsys.readouterr()  # --json writes to stdout itself
        return code, captured.err.splitlines(), out.getvalue() + captured.out

    code, lines, _ = run("slow.db", False)
    assert code == 0 and lines == []  # a run shorter than the interval: nothing extra
    monkeypatch.setattr(commands, "PLAIN_PROGRESS_EVERY_S", 0.0)
    code, lines, tables = run("log.db", False)
    assert code == 0 and "reconciliation" in tables
    phases = [line.split()[1] for line in lines]
    assert all(line.startswith("replay: ") for line in lines)
    assert "ingest" in phases and "release" in phases and phases[-1] == "done"
    assert "applied 12 " in lines[-1] and "waiting 0 " in lines[-1]
    code, lines, out = run("json.db", True)
    assert code == 0 and lines == [] and json.loads(out)["ok"]


async def test_progress_shows_the_backlog_shrinking_to_nothing(tmp_path: Path) -> None:
    """The progress lines' queue depth (read from the queue's tally) follows the release."""
    from shcr_sim.engine.replay import ReplayOptions, replay

    msgs = [adt(f"c{i}-{nhs}", f"202401{i + 1:02d}120000+0000", nhs=nhs)
            for i in range(6) for nhs in ("9990000018", "9990000026")]
    src = write_messages(tmp_path / "x/backload/all.hl7", msgs)
    seen: list[tuple[str, int, int]] = []
    result = await replay(
        tmp_path / "db.sqlite", [src.parents[1]], options=ReplayOptions(batch=4, workers=0),
        on_progress=lambda p: seen.append((p.phase, p.depth_backload, p.depth_live)))
    assert result.reconciliation.ok
    ingest = [d for phase, d, _ in seen if phase == "ingest"]
    released = [d for phase, d, _ in seen if phase == "release"]
    assert ingest[-1] == 12  # every message queued before any is released
    assert released == sorted(released, reverse=True)  # then batches of four...
    assert any(0 < d < 12 for d in released) and released[-1] == 0  # ...down to none
    assert seen[-1] == ("done", 0, 0)


async def test_reading_starts_before_the_later_files_are_hashed(
        tmp_path: Path, monkeypatch) -> None:
    """A file's key (a hash of all its bytes) is worked out a file ahead of the reader, in
    a thread: the first file's messages are queued while the second is still unhashed,
    where hashing every file first held ingest back (~15 s for ten million messages)."""
    import threading

    from shcr_sim.engine import inbound
    from shcr_sim.engine.replay import ReplayOptions, replay

    first = write_messages(tmp_path / "x/backload/a.hl7", [
        adt(f"a{i}", f"202401{i + 1:02d}120000+0000") for i in range(4)])
    write_messages(tmp_path / "x/backload/b.hl7", [adt("b0", "20240301120000+0000")])
    queued = threading.Event()
    waited: list[bool] = []
    real_key = inbound.file_key

    def key_after_the_first_queued(path: Path, stop: threading.Event | None = None) -> str:
        if path.name == "b.hl7":
            waited.append(queued.wait(timeout=10))
        return real_key(path, stop)

    monkeypatch.setattr(inbound, "file_key", key_after_the_first_queued)
    result = await replay(
        tmp_path / "db.sqlite", [first.parents[1]], options=ReplayOptions(
            batch=2, accept_batch=2, workers=0),
        on_progress=lambda p: queued.set() if p.accepted else None)
    assert waited == [True]  # b.hl7 was hashed only once a.hl7's first batch was queued
    assert result.reconciliation.ok and result.progress.accepted == 5
    again = await replay(tmp_path / "db.sqlite", [first.parents[1]],
                         options=ReplayOptions(workers=0))
    assert again.progress.files_skipped == 2 and again.progress.read == 0  # same keys


async def test_the_backload_is_staged_while_its_files_are_read_and_moved_before_release(
        tmp_path: Path) -> None:
    """While reading, the backload's state rows wait in the stage (appended, not put
    in key order row by row); none is left there once release begins."""
    from shcr_sim.engine.replay import Progress, ReplayOptions, replay

    src = write_messages(tmp_path / "x/backload/a.hl7", [
        adt(f"a{i}", f"202401{9 - i:02d}120000+0000", nhs=f"99900000{i % 2}8")
        for i in range(6)])
    db = tmp_path / "db.sqlite"
    staged: dict[str, list[int]] = {}

    def look(p: Progress) -> None:
        with sqlite3.connect(db) as conn:
            n = conn.execute("SELECT COUNT(*) FROM queue_stage").fetchone()[0]
        staged.setdefault(p.phase, []).append(n)

    result = await replay(db, [src.parents[1]], on_progress=look,
                          options=ReplayOptions(batch=2, accept_batch=2, workers=0))
    assert staged["ingest"][-1] == 6 and staged["release"] == [0] * len(staged["release"])
    assert result.reconciliation.ok and result.progress.applied == 6
    assert tally_is_exact(db)


async def test_a_partly_read_file_resumes_after_its_last_committed_batch(
        tmp_path: Path) -> None:
    """A file's progress is committed with each accepted batch: a replay that stopped
    half-way through a file reads only the rest of it, and a complete one not at all."""
    from shcr_sim.engine.replay import ReplayOptions, replay

    src = write_messages(tmp_path / "x/backload/a.hl7", [
        adt(f"a{i}", f"202401{i + 1:02d}120000+0000") for i in range(7)])
    write_messages(tmp_path / "x/backload/b.hl7", [adt("b0", "20240301120000+0000")])
    db = tmp_path / "db.sqlite"
    opts = ReplayOptions(batch=2, accept_batch=2, workers=0)
    first = await replay(db, [src.parents[1]], options=opts)
    assert first.reconciliation.ok and first.progress.read == 8
    with sqlite3.connect(db) as conn:  # as if the run had stopped after a's 2nd batch
        conn.execute("UPDATE inbound_files SET messages_done=4, complete=0 "
                     "WHERE path LIKE '%a.hl7'")
    again = await replay(db, [src.parents[1]], options=opts)
    assert again.progress.read == 3 and again.progress.files_skipped == 1
    assert again.progress.duplicate_at_accept == 3  # a4..a6 again: duplicates, counted
    assert again.reconciliation.ok


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    """A folder and a file in it, and the same file as a live feed: one file, read once
    (its progress is kept under one key), not a second time as duplicates."""
    src = write_messages(tmp_path / "x/backload/a.hl7", [
        adt(f"a{i}", f"202401{i + 1:02d}120000+0000") for i in range(3)])
    report = replay_json("--db", str(tmp_path / "db.sqlite"), str(src.parents[1]), str(src),
                         "--live", str(src), "--trust", "RXX01=PAS:itk-acute")
    assert report["run"]["files"] == 1 and report["run"]["read"] == 3
    assert report["total"]["duplicate"] == 0 and report["ok"]


def test_an_unreadable_file_stops_the_run_before_anything_is_queued(
        tmp_path: Path, monkeypatch) -> None:
    """Files are opened once when listed: a replay or verify names the one it cannot read
    at the start, where the hashing used to fail, not when it reaches that file."""
    import pytest

    from shcr_sim.engine import commands

    src = write_messages(tmp_path / "x/backload/b.hl7", [adt("b0", "20240301120000+0000")])
    write_messages(tmp_path / "x/backload/a.hl7", [adt("a0", "20240101120000+0000")])
    real_open = Path.open

    def refuse_b(self: Path, *args, **kwargs):  # noqa: ANN202 - Path.open's own signature
        if self.name == "b.hl7":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse_b)  # root reads a file whatever its mode
    with pytest.raises(commands.CommandError, match=r"cannot read .*b\.hl7: Permission"):
        commands.check_inputs([src.parents[1]], [])


def test_hashing_gives_up_once_the_replay_is_over(tmp_path: Path) -> None:
    """``KeysAhead.close`` (a replay ending or failing) stops the file being hashed at its
    next block, rather than the interpreter waiting at exit for a large file's hash."""
    import threading

    from shcr_sim.engine.inbound import file_key

    src = write_messages(tmp_path / "a.hl7", [adt("a0", "20240101120000+0000")])
    stop = threading.Event()
    assert len(file_key(src, stop)) == 32 and file_key(src, stop) == file_key(src)
    stop.set()
    assert file_key(src, stop) == ""

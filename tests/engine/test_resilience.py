"""Idempotence under re-reading and re-application, a kill during ingest, and a live
lane that a draining backload does not starve."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from engine_helpers import (
    adt,
    cli,
    count_while_running,
    kill_when,
    live_files,
    manifest_total,
    queue_states,
    replay_json,
    snapshot,
    tally_is_exact,
    write_messages,
)


def versions(db: Path) -> tuple[dict[str, int], int]:
    """Each resource's current version number, and how many versions exist in all."""
    with sqlite3.connect(db) as conn:
        current = dict(conn.execute("SELECT rkey, version FROM resource").fetchall())
        history = conn.execute("SELECT COUNT(*) FROM resource_history").fetchone()[0]
    return current, int(history)


def _reordered_copy(src: Path, dst: Path, seed: int) -> None:
    """The same messages under new file names, in a different order inside each file."""
    from shcr_sim.engine.inbound import iter_raw

    rng = random.Random(seed)
    for i, f in enumerate(sorted(src.rglob("*.hl7"))):
        msgs = list(iter_raw(f))
        rng.shuffle(msgs)
        write_messages(dst / f"resent-{i:03d}.hl7", msgs)


def test_same_messages_reread_are_duplicates_and_change_nothing(
    generated: Path, tmp_path: Path
) -> None:
    db = tmp_path / "a.db"
    first = replay_json("--db", str(db), str(generated), *live_files(generated))
    before, (current, history) = snapshot(db), versions(db)
    resent = tmp_path / "resent"
    _reordered_copy(generated / "backload", resent / "backload", seed=3)
    _reordered_copy(generated / "live", resent / "live", seed=4)
    again = replay_json("--db", str(db), str(resent), "--live", str(resent / "live"))
    assert again["run"]["files_skipped"] == 0  # re-read, not skipped by content hash
    assert again["run"]["read"] == manifest_total(generated)
    added = again["total"]["accepted"] - first["total"]["accepted"]
    assert added == manifest_total(generated)
    # every re-read copy of an accepted message is a duplicate (dead letters stay dead)
    new_dups = again["total"]["duplicate"] - first["total"]["duplicate"]
    new_dead = again["total"]["dead_lettered"] - first["total"]["dead_lettered"]
    assert new_dups + new_dead == added and new_dups >= first["total"]["applied"]
    assert again["total"]["applied"] == first["total"]["applied"]
    assert snapshot(db) == before
    assert versions(db) == (current, history)  # same versions, no new history


def test_re_applying_applied_messages_writes_nothing_new(generated: Path, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    args = ["--db", str(db), str(generated), *live_files(generated)]
    first = replay_json(*args)
    before, (current, history) = snapshot(db), versions(db)
    states = queue_states(db)
    # as if the process died after the store committed but before the states were
    # recorded: every applied message is released again and goes through the store again
    with sqlite3.connect(db) as conn:
        n = conn.execute("UPDATE queue_state SET state='released' WHERE state='applied'").rowcount
    assert n == first["total"]["applied"] > 0
    again = replay_json(*args)
    assert again["total"] == first["total"]
    assert queue_states(db) == states
    assert snapshot(db) == before
    assert versions(db) == (current, history)  # idempotent: no new version of anything


def test_sigkill_during_ingest_then_resume(generated: Path, tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    args = ["--db", str(db), str(generated), *live_files(generated)]
    # a slow release (--rate) of the live lane holds the run inside the ingest phase
    proc = subprocess.Popen(
        [sys.executable, "-m", "shcr_sim.cli", "replay", "--json", "--rate", "4", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    kill_when(proc, db, "SELECT COUNT(*) FROM queue WHERE state='applied'", 1, timeout=60,
              poll=0.05)
    accepted = count_while_running(db, "SELECT COUNT(*) FROM queue")
    files_done = count_while_running(db, "SELECT COUNT(*) FROM inbound_files WHERE complete=1")
    files = sum(1 for _ in (generated / "backload").rglob("*.hl7"))
    files += len(live_files(generated)) // 2
    assert 0 < accepted < manifest_total(generated)  # killed before every file was accepted
    assert files_done < files

    report = replay_json(*args)
    total = report["total"]
    assert report["ok"] is True and total["pending"] == 0
    assert total["accepted"] == manifest_total(generated)  # nothing read twice, nothing lost
    assert total["accepted"] == total["applied"] + total["duplicate"] + total["dead_lettered"]
    assert tally_is_exact(db)  # kept in the same transactions as the rows, crash or not
    assert "OK" in cli("verify", "--db", str(db), str(generated), *live_files(generated)).stdout
    clean = tmp_path / "clean.db"
    replay_json("--db", str(clean), str(generated), *live_files(generated))
    assert snapshot(db) == snapshot(clean)


async def test_live_lane_is_not_starved_by_a_draining_backload(tmp_path: Path) -> None:
    from shcr_sim.engine.convert import TrustInfo
    from shcr_sim.engine.pipeline import Engine
    from shcr_sim.engine.queue import Inbound
    from shcr_sim.engine.runner import release_forever

    engine = await Engine.open(tmp_path / "e.db", [TrustInfo("PAS", "RXX01", "itk-acute", "T")])
    backload = [Inbound(adt(f"b{i}", f"2024{1 + i % 12:02d}01120000+0000", mtype="ADT^A28",
                            nhs="", mrn=f"B{i}", family=f"BACK{i}"), "backload")
                for i in range(400)]
    await engine.queue.accept(backload)
    live = [Inbound(adt(f"l{i}", "20250101120000+0000", mtype="ADT^A28", nhs="", mrn=f"L{i}",
                        family=f"LIVE{i}"), "live") for i in range(5)]
    claims = {"backload": 0}
    real_claim = engine.queue.claim

    async def claim(lane, limit):  # noqa: ANN001, ANN202
        if lane == "backload":
            claims["backload"] += 1
            if claims["backload"] == 3:  # live messages arrive while the backload drains
                await engine.queue.accept(live)
        return await real_claim(lane, limit)

    applied: list[int] = []  # seqs in the order their terminal state was recorded
    real_apply = engine.store_apply_prepared  # stores a batch and records its terminal states

    async def apply(items, applied_seqs=(), dead=(), keys=None):  # noqa: ANN001, ANN202
        applied_seqs = list(applied_seqs)
        result = await real_apply(items, applied_seqs, dead, keys)
        applied.extend(applied_seqs)
        return result

    engine.queue.claim = claim  # type: ignore[method-assign]
    engine.store_apply_prepared = apply  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(release_forever(engine, stop, batch=20, idle_sleep=0.01))
    for _ in range(3000):  # bounded: a broken release loop fails the test, never hangs it
        if task.done() or (claims["backload"] >= 3 and not await engine.queue.depth()):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert await engine.queue.depth() == 0
    await engine.close()
    live_seqs = {seq for seq in applied if seq > len(backload)}  # accepted after the backload
    assert len(applied) == 405 and len(live_seqs) == 5
    last_live = max(applied.index(s) for s in live_seqs)
    backload_after = sum(1 for s in applied[last_live:] if s <= len(backload))
    # the live messages went in right after the batch in flight, not after the backload
    assert backload_after >= 400 - 4 * 20

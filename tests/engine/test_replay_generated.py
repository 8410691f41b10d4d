"""End to end on a generated multi-trust scenario, through the real CLI in subprocesses."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from engine_helpers import (
    cli,
    live_files,
    manifest_total,
    queue_states,
    replay_json,
    snapshot,
    tally_is_exact,
)


@pytest.fixture(scope="module")
def replayed(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    db = tmp_path_factory.mktemp("replay") / "shcr.db"
    report = replay_json("--db", str(db), str(generated), *live_files(generated))
    return db, report


def test_replay_reconciles_every_message(generated: Path, replayed: tuple[Path, dict]) -> None:
    db, report = replayed
    assert report["ok"] is True
    total = report["total"]
    assert total["accepted"] == manifest_total(generated)
    assert total["accepted"] == total["applied"] + total["duplicate"] + total["dead_lettered"]
    assert total["pending"] == 0
    assert total["applied"] > total["accepted"] // 3
    assert {r["trust"] for r in report["rows"]} >= {"RZ1", "RZ2"}
    assert snapshot(db)
    assert tally_is_exact(db)  # what the monitor counts from


def test_no_dead_letter_is_a_converter_bug(replayed: tuple[Path, dict]) -> None:
    db, report = replayed
    with sqlite3.connect(db) as conn:
        reasons = [r for (r,) in conn.execute(
            "SELECT reason FROM queue WHERE state='dead-lettered'")]
    # a converter bug reads "conversion: <MSH-10>: internal error (converter bug): …"
    bugs = [r for r in reasons if r.split(": ", 2)[-1].startswith("internal error")]
    assert len(reasons) == report["total"]["dead_lettered"] and bugs == []


def test_verify_is_clean(generated: Path, replayed: tuple[Path, dict]) -> None:
    db, _ = replayed
    out = cli("verify", "--db", str(db), str(generated), *live_files(generated))
    assert "OK" in out.stdout


def test_replaying_twice_changes_nothing(generated: Path, replayed: tuple[Path, dict],
                                         tmp_path: Path) -> None:
    db, first = replayed
    copy = tmp_path / "again.db"
    shutil.copy(db, copy)
    before, states = snapshot(copy), queue_states(copy)
    again = replay_json("--db", str(copy), str(generated), *live_files(generated))
    assert again["run"]["files_skipped"] == again["run"]["files"]  # nothing re-read
    assert again["total"] == first["total"]
    assert snapshot(copy) == before
    assert queue_states(copy) == states


def test_resending_the_same_files_under_new_names_only_adds_duplicates(
    generated: Path, replayed: tuple[Path, dict], tmp_path: Path
) -> None:
    db, first = replayed
    copy = tmp_path / "resend.db"
    shutil.copy(db, copy)
    before = snapshot(copy)
    resent = tmp_path / "resent"
    shutil.copytree(generated / "backload", resent)
    for f in resent.rglob("*.hl7"):
        f.rename(f.with_name("resent-" + f.name))
    report = replay_json("--db", str(copy), str(resent))
    assert report["ok"] is True
    assert report["run"]["files_skipped"] == 0
    added = report["total"]["accepted"] - first["total"]["accepted"]
    assert added == report["run"]["read"] > 0
    assert report["total"]["duplicate"] - first["total"]["duplicate"] == added
    assert report["total"]["applied"] == first["total"]["applied"]
    assert snapshot(copy) == before  # duplicates change nothing in the store


def _shuffled_copy(src: Path, dst: Path, seed: int) -> None:
    """Same messages, files renamed into a new order, messages shuffled within files."""
    rng = random.Random(seed)
    from shcr_sim.engine.inbound import iter_raw

    files = sorted(src.rglob("*.hl7"))
    names = [f"{i:03d}.hl7" for i in range(len(files))]
    rng.shuffle(names)
    for f, name in zip(files, names, strict=True):
        msgs = list(iter_raw(f))
        rng.shuffle(msgs)
        out = dst / f.parent.relative_to(src) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\r\n".join(msgs) + "\r\n", encoding="utf-8")


def test_extract_order_does_not_matter(generated: Path, replayed: tuple[Path, dict],
                                       tmp_path: Path) -> None:
    db, first = replayed
    shuffled = tmp_path / "shuffled"
    _shuffled_copy(generated / "backload", shuffled / "backload", seed=11)
    _shuffled_copy(generated / "live", shuffled / "live", seed=12)
    shutil.copy(generated / "manifest.json", shuffled / "manifest.json")
    db2 = tmp_path / "shuffled.db"
    report = replay_json("--db", str(db2), str(shuffled), "--live", str(shuffled / "live"))
    assert report["total"] == first["total"]
    assert snapshot(db2) == snapshot(db)

"""Reading dead letters: the queue only, and a page says how many there are in all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rich.console import Console

from shcr_sim.engine.deadletter import list_dead, show
from shcr_sim.engine.queue import DurableQueue, Inbound
from shcr_sim.engine.views import dead_letter_table


def _adt(cid: str, fac: str) -> str:
    return "\r".join([
        f"MSH|^~\\&|APP|{fac}|SHCR|SHCR|20240101120500+0000||ADT^A01|{cid}|P|2.4",
        "EVN|A01|20240101120000+0000",
        "PID|1||9990000018^^^NHS^NH||Smith^Ann||19700101|F",
    ])


async def _queue_with_dead(db: Path, n: int) -> None:
    q = await DurableQueue.open(db, senders=[("PAS", "RXX01")])
    out = await q.accept([Inbound(_adt(str(i), "FAC"), "backload", "f") for i in range(n)])
    assert {a.status for a in out} == {"dead-lettered"}
    await q.close()


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


async def test_list_and_show_read_the_queue_without_opening_the_engine(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    await _queue_with_dead(db, 3)
    before = _tables(db)
    rows, total = await list_dead(db, limit=2)
    assert [r.control_id for r in rows] == ["0", "1"] and total == 3
    row = await show(db, rows[0].seq)
    assert row is not None and "unknown sender" in row.reason
    assert _tables(db) == before  # no store or merge tables created by a read


def _title(rows: list, total: int | None) -> str:
    console = Console(width=200, record=True)
    console.print(dead_letter_table(rows, total))
    return console.export_text().splitlines()[0].strip()


async def test_a_page_of_dead_letters_says_of_how_many(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    await _queue_with_dead(db, 5)
    rows, total = await list_dead(db, limit=2)
    assert _title(rows, total) == "showing 2 of 5 dead letters"
    rows, total = await list_dead(db, limit=100)
    assert _title(rows, total) == "5 dead letters"

"""Reconciliation: per trust and message type, accepted = applied + duplicate + dead-lettered.

Counted from the durable queue (distinct accepted messages), so a resumed replay
adds up the same as an uninterrupted one.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field

import aiosqlite

from .db import is_table, retry_locked, write_lock
from .queue import TALLY_KEY, UNKNOWN_SENDER, retally


@dataclass(slots=True)
class ReconRow:
    trust: str
    message_type: str
    accepted: int = 0
    applied: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    pending: int = 0  # queued or released: not yet terminal

    @property
    def ok(self) -> bool:
        return self.pending == 0 and self.accepted == (
            self.applied + self.duplicate + self.dead_lettered
        )


@dataclass(slots=True)
class Reconciliation:
    rows: list[ReconRow]
    total: ReconRow
    # dead-lettered because the sender is not a configured trust: "APP/FAC" → count
    unknown_senders: dict[str, int] = field(default_factory=dict)
    # groups of the queue's tally (what the monitor counts) found wrong and set right
    tally_corrected: int = 0

    @property
    def ok(self) -> bool:
        return self.total.ok and all(r.ok for r in self.rows)

    @property
    def all_dead(self) -> bool:
        """Something was dead-lettered and nothing applied: a run that did no work."""
        t = self.total
        return t.dead_lettered > 0 and t.applied == 0 and t.pending == 0

    def to_json(self) -> dict:
        def row(r: ReconRow) -> dict:
            return {**asdict(r), "ok": r.ok}

        return {"ok": self.ok, "rows": [row(r) for r in self.rows], "total": row(self.total),
                "unknown_senders": self.unknown_senders,
                "tally_corrected": self.tally_corrected}


Groups = Counter[tuple[str, str, str, str]]  # (lane, state, trust, type) → messages


def _count(db: sqlite3.Connection, correct: bool) -> tuple[Groups, int]:
    """Messages per (lane, state, trust, type), counted from the state rows themselves in
    one streaming pass (a GROUP BY without an index would sort every row in memory,
    ``temp_store=MEMORY``), and the tally groups that differ from them, in one snapshot.
    A read takes no lock, so live accepts go on meanwhile; ``correct`` takes the write
    lock and sets the tally right."""
    db.execute("BEGIN IMMEDIATE" if correct else "BEGIN")
    try:
        counts: Groups = Counter(db.execute(
            f"SELECT {TALLY_KEY} FROM queue_state UNION ALL SELECT {TALLY_KEY} FROM queue_stage"))
        wrong = retally(db, counts, correct=correct) if is_table(db, "queue_tally") else 0
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return counts, wrong


def _count_rows(db: sqlite3.Connection) -> tuple[Groups, int]:
    """The counts and how many tally groups were wrong: the proof does not rest on the
    engine's own bookkeeping, and a tally found wrong (rare: an edit made outside the
    engine) is recounted under the write lock and set right."""
    counts, wrong = _count(db, correct=False)
    if wrong:
        counts, wrong = _count(db, correct=True)
    return counts, wrong


async def reconcile(conn: aiosqlite.Connection) -> Reconciliation:
    async with write_lock(conn):  # on the connection's own thread: no hop per row
        data, wrong = await retry_locked(lambda: conn._execute(
            _count_rows, conn._conn))  # type: ignore[attr-defined]
    rows: dict[tuple[str, str], ReconRow] = {}
    total = ReconRow("all", "all")
    for (_lane, state, fac, mtype), n in data.items():
        trust, mt = fac or "(unknown)", mtype or "(unreadable)"
        r = rows.setdefault((trust, mt), ReconRow(trust, mt))
        for target in (r, total):
            target.accepted += n
            if state == "applied":
                target.applied += n
            elif state == "duplicate":
                target.duplicate += n
            elif state == "dead-lettered":
                target.dead_lettered += n
            else:
                target.pending += n
    async with conn.execute(
        "SELECT sender_app, sender_fac, COUNT(*) FROM queue "
        "WHERE state='dead-lettered' AND reason LIKE ? "
        "GROUP BY sender_app, sender_fac ORDER BY COUNT(*) DESC, sender_app, sender_fac",
        (UNKNOWN_SENDER + "%",),
    ) as cur:
        unknown = {f"{app}/{fac}": int(n) for app, fac, n in await cur.fetchall()}
    return Reconciliation([rows[k] for k in sorted(rows)], total, unknown, wrong)

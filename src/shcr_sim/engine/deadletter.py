"""Dead letters: list them, show one with its reason and text, retry after a fix.

A retry re-reads the message's keys (the problem may have been an unknown sender
or a missing identifier that the trust has since fixed in its configuration),
re-runs the conversion with the current mappings and applies it to the store —
through the same guard, so an old message retried late never overwrites newer
state. A message that still fails stays dead-lettered with the new reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shcr_sim.hl7 import HL7Error

from .convert import TrustInfo
from .db import transaction
from .keys import DEFAULT_TZ, KeysError, parse_and_extract
from .pipeline import Engine
from .queue import UNKNOWN_SENDER, DurableQueue, QueueRow, tallied


@dataclass(slots=True)
class RetryResult:
    retried: int
    applied: int
    duplicate: int
    still_dead: list[tuple[int, str]]


async def list_dead(db: Path, limit: int = 1000, offset: int = 0) -> tuple[list[QueueRow], int]:
    """(a page of dead letters in queue order, how many there are in all).

    Reads the queue only: no Engine (store, converter, merges), nothing written.
    """
    queue = await DurableQueue.open_for_reading(db)
    try:
        rows = await queue.rows("dead-lettered", limit, offset)
        return rows, (await queue.counts()).get("dead-lettered", 0)
    finally:
        await queue.close()


async def show(db: Path, seq: int) -> QueueRow | None:
    queue = await DurableQueue.open_for_reading(db)
    try:
        return await queue.get(seq)
    finally:
        await queue.close()


async def _rekey(engine: Engine, row: QueueRow) -> tuple[str, str]:
    """Re-read a dead row's keys; returns (new state, reason) — 'released' when ready."""
    try:
        msg, keys = parse_and_extract(row.raw)
    except (HL7Error, KeysError) as exc:
        return "dead-lettered", str(exc)
    senders = engine.queue.senders
    if senders is not None:
        tz = senders.get(msg.sender)
        if tz is None:
            return "dead-lettered", (
                f"{UNKNOWN_SENDER} {msg.sender[0]!r}/{msg.sender[1]!r} "
                "(not a configured trust)"
            )
        if tz != DEFAULT_TZ:
            try:
                _, keys = parse_and_extract(row.raw, tz)
            except (HL7Error, KeysError) as exc:
                return "dead-lettered", str(exc)
    async with transaction(engine.queue.conn) as conn:  # the key check and the update
        async with conn.execute(
            "SELECT seq FROM queue WHERE dedup_key=? AND dup_of IS NULL AND seq != ?",
            (keys.dedup_key, row.seq),
        ) as cur:
            first = await cur.fetchone()
        state, reason, dup_of = "released", "", None
        if first is not None:  # another copy already holds the key: it wins
            state, dup_of = "duplicate", first[0]
            reason = f"MSH-10: duplicate of queue entry {first[0]}"
        await conn.execute(
            "UPDATE queue_msg SET sender_app=?, sender_fac=?, control_id=?, dedup_key=?, "
            "message_type=?, patient_key=?, event_epoch=?, event_time=?, precedence=?, "
            "order_key=?, dup_of=? WHERE seq=?",
            (keys.sender_app, keys.sender_fac, keys.control_id, keys.dedup_key,
             keys.message_type, keys.patient_key, keys.event_epoch, keys.event_time,
             keys.precedence, keys.order_key, dup_of, row.seq),
        )
        await conn._execute(  # type: ignore[attr-defined]
            tallied, conn._conn, [row.seq],  # type: ignore[attr-defined]
            lambda db: db.execute(  # the state row follows the message's new keys
                "UPDATE queue_state SET patient_key=?, order_key=?, sender_fac=?, "
                "message_type=?, state=?, reason=?, updated_at=? WHERE seq=?",
                (keys.patient_key, keys.order_key, keys.sender_fac, keys.message_type, state,
                 reason, time.time(), row.seq),
            ))
    return state, reason


class NotDeadLettered(ValueError):
    """A retry asked for an entry that is not dead-lettered (or does not exist)."""


async def retry(
    db: Path, seqs: Sequence[int] | None, trusts: Sequence[TrustInfo] | None = None
) -> RetryResult:
    """Retry the given dead letters (None = all of them).

    ``trusts`` (when given) replace the trusts saved in the database first, so a
    message refused as "unknown sender" can be retried once its trust is added.
    Asking for an entry that is not dead-lettered raises ``NotDeadLettered``.
    """
    engine = await Engine.open(db, trusts)
    try:
        if seqs is None:
            rows = await engine.queue.rows("dead-lettered", limit=10**9)
        else:
            rows = []
            for s in seqs:
                r = await engine.queue.get(s)
                if r is None:
                    raise NotDeadLettered(f"no queue entry {s}")
                if r.state != "dead-lettered":
                    raise NotDeadLettered(f"entry {s} is not dead-lettered (state: {r.state})")
                rows.append(r)
        result = RetryResult(len(rows), 0, 0, [])
        ready: list[int] = []
        for row in rows:
            state, reason = await _rekey(engine, row)
            if state == "released":
                ready.append(row.seq)
            elif state == "duplicate":
                result.duplicate += 1
            else:
                await engine.queue.finish(dead=[(row.seq, reason)])
                result.still_dead.append((row.seq, reason))
        await engine.refresh_merges()
        for i in range(0, len(ready), 1000):
            fresh = [await engine.queue.get(s) for s in ready[i : i + 1000]]
            batch = [r for r in fresh if r is not None]
            before = engine.stats.dead
            await engine.apply_rows(batch)
            result.applied += len(batch) - (engine.stats.dead - before)
        if ready:
            wanted = set(ready)
            for r in await engine.queue.rows("dead-lettered", limit=10**9):
                if r.seq in wanted:
                    result.still_dead.append((r.seq, r.reason))
        return result
    finally:
        await engine.close()

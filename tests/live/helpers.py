"""Helpers for the live tests: synthetic messages and an in-memory sink."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from shcr_sim.engine.queue import Accepted, Inbound
from shcr_sim.hl7 import HL7Error, parse

TRUSTS = {("PAS", "RXA"), ("EPR", "RXB"), ("MHS", "RXC")}


def nhs_numbers() -> Iterator[str]:
    """Synthetic NHS numbers: 999 prefix, valid modulus-11 check digit."""
    for i in range(1_000_000):
        body = f"999{i:06d}"
        total = sum(int(d) * w for d, w in zip(body, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            yield body + str(check)


def adt(control_id: str, *, app: str = "PAS", ods: str = "RXA", nhs: str = "9990000018",
        event: str = "20260101120000", trigger: str = "A01", extra_msh: str = "") -> str:
    msh = (f"MSH|^~\\&|{app}|{ods}|SHCR-CIE|SHCR|{event}||ADT^{trigger}^ADT_A01|{control_id}"
           f"|P|2.4{extra_msh}")
    return "\r".join([
        msh,
        f"EVN|{trigger}|{event}",
        f"PID|1||{nhs}^^^NHS^NH~M{control_id}^^^{ods}^PI||TEST^PATIENT||19800101|F",
        "PV1|1|I|WARD1",
    ]) + "\r"


def stream(n: int, *, app: str = "PAS", ods: str = "RXA", prefix: str = "M") -> list[str]:
    numbers = nhs_numbers()
    return [adt(f"{prefix}{i:06d}", app=app, ods=ods, nhs=next(numbers),
                event=f"202601011{i % 10}0000") for i in range(n)]


@dataclass
class MemorySink:
    """DurableQueue.accept's contract in memory, with switches for faults."""

    batches: list[list[Inbound]] = field(default_factory=list)
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    rows: list[tuple[Inbound, str]] = field(default_factory=list)
    down: bool = False
    delay: float = 0.0

    async def accept(self, items: list[Inbound]) -> list[Accepted]:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise OSError("store unavailable")
        self.batches.append(list(items))
        out = []
        for item in items:
            seq = len(self.rows) + 1
            try:
                msg = parse(item.raw)
                key = (*msg.sender, msg.control_id)
                _ = msg.msh
                if not msg.control_id:
                    raise HL7Error("MSH-10: message control id is empty", "MSH", 10)
            except HL7Error as exc:
                self.rows.append((item, "dead-lettered"))
                out.append(Accepted(seq, "dead-lettered", str(exc)))
                continue
            if key in self.seen:
                self.rows.append((item, "duplicate"))
                out.append(Accepted(seq, "duplicate", "duplicate"))
            else:
                self.seen[key] = seq
                self.rows.append((item, "queued"))
                out.append(Accepted(seq, "queued"))
        return out

    def control_ids(self, status: str = "queued") -> list[str]:
        return [parse(i.raw).control_id for i, s in self.rows if s == status]

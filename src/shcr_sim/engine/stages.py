"""Per-stage time accounting for the benchmark: a few counters, touched once per batch.

Stages follow the data flow: read (files → framed messages), enqueue (keys +
durable insert), sequence (merges + claim in patient/event order), convert
(HL7 → FHIR dicts), validate (fhir.resources), store (record store + terminal
states). Seconds are busy time of the stage (summed over workers when conversion
runs in worker processes), so ``messages / seconds`` is the stage's own rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("read", "enqueue", "sequence", "convert", "validate", "store")


@dataclass(slots=True)
class StageClock:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    messages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))

    def add(self, stage: str, seconds: float, messages: int) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.messages[stage] = self.messages.get(stage, 0) + messages

    @contextmanager
    def time(self, stage: str, messages: int = 0) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0, messages)

    def to_json(self) -> dict[str, dict[str, float]]:
        return {s: {"seconds": round(self.seconds.get(s, 0.0), 4),
                    "messages": self.messages.get(s, 0)} for s in self.seconds}

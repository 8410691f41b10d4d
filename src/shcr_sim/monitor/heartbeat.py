"""Last heartbeat per feed, its transit time, and the silent-feed alert.

The MLLP listener calls ``beat`` (a dict update, nothing more) for every
``NMD^N02`` it receives; ``check`` runs on the monitor's own tick and raises
``heartbeat:<feed>`` when a feed has been silent for ``silent_after`` seconds,
clearing it on the next heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..hl7 import Message, TimestampError, parse_ts
from .alerts import AlertBook


@dataclass(slots=True)
class FeedBeat:
    feed: str
    last_at: float = 0.0  # wall clock of the last heartbeat, 0 = never
    count: int = 0
    transit: float | None = None  # MSH-7 (sender's clock) -> received, seconds
    sender_stats: dict[str, str] = field(default_factory=dict)  # from the NST segment


# NST fields the simulated trusts fill (HL7 v2 NST, application control-level statistics)
NST_FIELDS = {8: "messages_received", 9: "messages_sent", 13: "connect_timeouts",
              14: "receive_timeouts", 15: "application_errors"}


@dataclass(slots=True)
class HeartbeatTracker:
    silent_after: float = 30.0
    feeds: dict[str, FeedBeat] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def expect(self, feeds: list[str]) -> None:
        """Feeds that should be beating (a feed that never beat also alerts)."""
        for name in feeds:
            self.feeds.setdefault(name, FeedBeat(name))

    def beat(self, feed: str, msg: Message, received_at: float) -> None:
        state = self.feeds.get(feed)
        if state is None:
            state = self.feeds[feed] = FeedBeat(feed)
        state.last_at = received_at
        state.count += 1
        try:
            sent = parse_ts(msg.get("MSH-7"))
        except TimestampError:
            sent = None
        state.transit = max(received_at - sent.epoch, 0.0) if sent is not None else None
        nst = msg.segment("NST")
        if nst is not None:
            state.sender_stats = {name: nst.field(n) for n, name in NST_FIELDS.items()
                                  if nst.field(n)}

    def age(self, feed: str, now: float | None = None) -> float:
        """Seconds since the feed's last heartbeat (since start when it never beat)."""
        now = time.time() if now is None else now
        state = self.feeds.get(feed)
        last = state.last_at if state and state.last_at else self.started_at
        return max(now - last, 0.0)

    def check(self, alerts: AlertBook, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for name in self.feeds:
            age = self.age(name, now)
            if age >= self.silent_after:
                alerts.raise_("heartbeat", name,
                              f"feed {name} silent for {age:.0f} s (no heartbeat)", age, now)
            else:
                alerts.clear("heartbeat", name, f"feed {name} heartbeat back", now)

    def snapshot(self, now: float | None = None) -> list[dict[str, object]]:
        now = time.time() if now is None else now
        return [
            {
                "feed": s.feed,
                "last_at": s.last_at or None,
                "age": round(self.age(s.feed, now), 3),
                "count": s.count,
                "transit_ms": round(s.transit * 1000, 1) if s.transit is not None else None,
                "alive": self.age(s.feed, now) < self.silent_after,
                "sender": s.sender_stats,
            }
            for s in sorted(self.feeds.values(), key=lambda s: s.feed)
        ]

"""Last heartbeat per feed, its round trip through the pipeline, the silent-feed alert.

The MLLP listener calls ``beat`` (a dict update, nothing more) for every
``NMD^N02`` it receives; ``check`` runs on the monitor's own tick and raises
``heartbeat:<feed>`` when a feed has been silent for ``silent_after`` seconds,
clearing it on the next heartbeat.

Round trip: a heartbeat is a marker in its feed's stream. It has come "round"
once every message the feed sent before it is in the record (applied,
duplicate or dead-lettered). ``round_trip`` is the time from the heartbeat's
MSH-7 (the trust's clock) to that moment -- how far behind the record is for
that feed -- and ``transit`` is MSH-7 to arrival at the listener.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..hl7 import Message, TimestampError, parse_ts
from .alerts import AlertBook
from .probe import Finished


@dataclass(slots=True)
class FeedBeat:
    feed: str
    last_at: float = 0.0  # wall clock of the last heartbeat, 0 = never
    count: int = 0
    transit: float | None = None  # MSH-7 (sender's clock) -> received, seconds
    round_trip: float | None = None  # MSH-7 -> everything the feed sent before it applied
    sender_stats: dict[str, str] = field(default_factory=dict)  # from the NST segment
    # heartbeats still travelling: (MSH-7 epoch, last seq the feed had queued before it)
    pending: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=32))
    pending_arrival: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    blocked_since: float | None = None  # MSH-7 of a heartbeat still waiting for messages


# NST fields the simulated trusts fill (HL7 v2 NST, application control-level statistics)
NST_FIELDS = {8: "messages_received", 9: "messages_sent", 13: "connect_timeouts",
              14: "receive_timeouts", 15: "application_errors"}


@dataclass(slots=True)
class HeartbeatTracker:
    silent_after: float = 30.0
    feeds: dict[str, FeedBeat] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    last_seq: dict[str, int] = field(default_factory=dict)  # per feed, last live seq queued

    def accepted(self, feed: str, seq: int) -> None:
        if seq > self.last_seq.get(feed, 0):
            self.last_seq[feed] = seq

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
        state.pending.append((sent.epoch if sent is not None else received_at,
                              self.last_seq.get(feed, 0)))
        state.pending_arrival.append(received_at)
        nst = msg.segment("NST")
        if nst is not None:
            state.sender_stats = {name: nst.field(n) for n, name in NST_FIELDS.items()
                                  if nst.field(n)}

    def settle(self, finished: Iterable[Finished], waiting_min: dict[str, int]) -> None:
        """Complete the heartbeats whose earlier messages have all reached the record."""
        done_at: dict[str, list[tuple[int, float]]] = {}
        for f in finished:
            done_at.setdefault(f.feed, []).append((f.seq, f.finished_at))
        for name, state in self.feeds.items():
            while state.pending:
                sent, upto = state.pending[0]
                waiting = waiting_min.get(name)
                if waiting is not None and waiting <= upto:
                    state.blocked_since = sent  # something sent before it is still on its way
                    break
                state.blocked_since = None
                arrived = state.pending_arrival.popleft()
                state.pending.popleft()
                last = max((at for seq, at in done_at.get(name, ()) if seq <= upto),
                           default=arrived)
                state.round_trip = max(max(last, arrived) - sent, 0.0)

    def round_trip(self, feed: str, now: float | None = None) -> float | None:
        """The last completed round trip, or longer while a heartbeat is still held up."""
        state = self.feeds.get(feed)
        if state is None:
            return None
        now = time.time() if now is None else now
        held = now - state.blocked_since if state.blocked_since is not None else None
        if held is not None and (state.round_trip is None or held > state.round_trip):
            return held
        return state.round_trip

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
                "round_trip_ms": _ms(self.round_trip(s.feed, now)),
                "in_flight": len(s.pending),
                "alive": self.age(s.feed, now) < self.silent_after,
                "sender": s.sender_stats,
            }
            for s in sorted(self.feeds.values(), key=lambda s: s.feed)
        ]


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None

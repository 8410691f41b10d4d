"""Threshold alerts with hysteresis, so a value hovering at the line cannot storm.

An alert raises when its value reaches ``raise_at`` and clears only once the value
falls back to ``clear_at`` (below ``raise_at``). Every change is kept as an event.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Threshold:
    raise_at: float
    clear_at: float

    def __post_init__(self) -> None:
        if self.clear_at > self.raise_at:
            raise ValueError("clear_at must not be above raise_at (hysteresis)")


@dataclass(slots=True)
class Alert:
    key: str  # e.g. "heartbeat:RXX", "queue-depth:live"
    kind: str
    subject: str
    message: str
    since: float
    value: float


@dataclass(frozen=True, slots=True)
class AlertEvent:
    at: float
    key: str
    state: str  # "raised" | "cleared"
    message: str


@dataclass(slots=True)
class AlertBook:
    """The active alerts and a bounded history of raise/clear events."""

    active: dict[str, Alert] = field(default_factory=dict)
    events: deque[AlertEvent] = field(default_factory=lambda: deque(maxlen=200))

    def raise_(self, kind: str, subject: str, message: str, value: float,
               now: float | None = None) -> bool:
        """Raise (once); True if it was not already active."""
        key = f"{kind}:{subject}"
        now = time.time() if now is None else now
        if key in self.active:
            self.active[key].value = value
            self.active[key].message = message
            return False
        self.active[key] = Alert(key, kind, subject, message, now, value)
        self.events.append(AlertEvent(now, key, "raised", message))
        return True

    def clear(self, kind: str, subject: str, message: str = "",
              now: float | None = None) -> bool:
        key = f"{kind}:{subject}"
        alert = self.active.pop(key, None)
        if alert is None:
            return False
        now = time.time() if now is None else now
        self.events.append(AlertEvent(now, key, "cleared", message or f"{key} back to normal"))
        return True

    def judge(self, kind: str, subject: str, value: float, threshold: Threshold,
              describe: str, now: float | None = None) -> None:
        """Raise at ``raise_at``, clear at ``clear_at``, hold in between."""
        key = f"{kind}:{subject}"
        if value >= threshold.raise_at:
            self.raise_(kind, subject, f"{describe} {value:g} >= {threshold.raise_at:g}",
                        value, now)
        elif value <= threshold.clear_at and key in self.active:
            self.clear(kind, subject, f"{describe} {value:g} back to <= {threshold.clear_at:g}",
                       now)
        elif key in self.active:
            self.active[key].value = value

    def is_active(self, kind: str, subject: str) -> bool:
        return f"{kind}:{subject}" in self.active

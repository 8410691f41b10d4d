"""The monitor: samples the listener, the heartbeats and the queue on its own tick.

Nothing here runs per message. Each tick reads counters and one queue sample,
turns deltas into rates, keeps a short history for the dashboard's charts,
computes live latency percentiles and the backload catch-up ETA, and judges the
alerts (queue depth and dead-letter rate with hysteresis, silent feeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .alerts import AlertBook, Threshold
from .heartbeat import HeartbeatTracker
from .probe import QueueProbe, QueueSample

STAGES = ("received", "queued", "released", "applied", "duplicate", "dead-lettered")


@dataclass(slots=True)
class MonitorConfig:
    tick: float = 1.0  # seconds; stretched to 10x the sample's own cost
    silent_after: float = 30.0  # heartbeat alert after this long without one
    live_depth: Threshold = field(default_factory=lambda: Threshold(500, 100))
    backload_depth: Threshold | None = None  # a draining backload is expected to be deep
    dead_letter_rate: Threshold = field(default_factory=lambda: Threshold(0.05, 0.01))
    dead_letter_min: int = 20  # finished messages in the window before the rate counts
    history: int = 300  # points kept for the charts


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of a small list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) - 1e-9)  # 1-based
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(slots=True)
class _Rates:
    at: float = 0.0
    totals: dict[str, int] = field(default_factory=dict)


class Monitor:
    """Owns the alert book and the numbers behind /status, /metrics and the dashboard."""

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        probe: QueueProbe | None = None,
        listener_stats: Any | None = None,
        heartbeats: HeartbeatTracker | None = None,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config or MonitorConfig()
        self.probe = probe
        self.listener_stats = listener_stats
        self.heartbeats = heartbeats or HeartbeatTracker(self.config.silent_after)
        self.alerts = AlertBook()
        self.extra = extra  # more JSON for /status (e.g. the run's progress)
        self.actions: list[str] = []  # POST /action/<name> routes the dashboard may offer
        self.controls: Callable[[], dict[str, Any]] | None = None  # state those actions set
        self.sample: QueueSample | None = None
        self.latency: deque[float] = deque(maxlen=5000)  # live arrival -> applied, seconds
        self.latency_by_feed: dict[str, deque[float]] = {}
        self.latency_count = 0
        self.latency_sum = 0.0
        self.rates: dict[str, float] = {}
        self.feed_rates: dict[str, float] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=self.config.history)
        self.ticks = 0
        self._prev = _Rates()
        self._prev_feed: dict[str, int] = {}
        self._dead_window: deque[tuple[int, int]] = deque(maxlen=30)  # (finished, dead)
        self._backload_rate = 0.0
        self.started_at = time.time()

    # -- hooks the listener calls (dict updates only) --------------------------
    def on_accepted(self, seq: int, feed: str, status: str, arrived_at: float) -> None:
        if self.probe is not None and status == "queued":
            self.probe.track(seq, feed, arrived_at)
            self.heartbeats.accepted(feed, seq)

    # -- one tick ---------------------------------------------------------------
    async def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if self.probe is not None:
            self.sample = await self.probe.sample()
            for done in self.sample.finished_live:
                if done.state != "applied":
                    continue
                self.latency.append(done.seconds)
                self.latency_by_feed.setdefault(done.feed, deque(maxlen=1000)).append(
                    done.seconds)
                self.latency_count += 1
                self.latency_sum += done.seconds
            self.heartbeats.settle(self.sample.finished_live, self.sample.waiting_min)
        self._rates(now)
        self.heartbeats.check(self.alerts, now)
        self._judge(now)
        self.history.append(self._point(now))
        self.ticks += 1

    def _totals(self) -> dict[str, int]:
        s = self.sample
        if s is None:
            return {}
        totals = {stage: s.total(stage) for stage in STAGES}
        totals["accepted"] = sum(s.counts.values())
        totals["applied:live"] = self.latency_count
        totals["applied:backload"] = max(totals["applied"] - self.latency_count, 0)
        return totals

    def _rates(self, now: float) -> None:
        totals = self._totals()
        prev = self._prev
        dt = now - prev.at if prev.at else 0.0
        if dt > 0:
            self.rates = {k: max(v - prev.totals.get(k, 0), 0) / dt for k, v in totals.items()}
            feeds = self._feed_totals()
            self.feed_rates = {f: max(n - self._prev_feed.get(f, 0), 0) / dt
                               for f, n in feeds.items()}
            self._prev_feed = feeds
            rate = self.rates.get("applied:backload", 0.0)
            self._backload_rate = rate if not self._backload_rate else (
                0.7 * self._backload_rate + 0.3 * rate)
            finished = sum(max(totals.get(k, 0) - prev.totals.get(k, 0), 0)
                           for k in ("applied", "duplicate", "dead-lettered"))
            dead = max(totals.get("dead-lettered", 0) - prev.totals.get("dead-lettered", 0), 0)
            self._dead_window.append((finished, dead))
        else:
            self._prev_feed = self._feed_totals()
        self._prev = _Rates(now, totals)

    def _feed_totals(self) -> dict[str, int]:
        s = self.sample
        out: dict[str, int] = {}
        if s is not None:
            for (feed, _state), n in s.counts.items():
                out[feed] = out.get(feed, 0) + n
        return out

    def dead_letter_rate(self) -> tuple[float, int]:
        finished = sum(f for f, _ in self._dead_window)
        dead = sum(d for _, d in self._dead_window)
        return (dead / finished if finished else 0.0), finished

    def backload_eta(self) -> float | None:
        """Seconds until the backload lane is empty at the recent drain rate."""
        if self.sample is None:
            return None
        depth = self.sample.depth("backload")
        if depth == 0:
            return 0.0
        return depth / self._backload_rate if self._backload_rate > 0 else None

    def _judge(self, now: float) -> None:
        cfg = self.config
        s = self.sample
        if s is not None:
            self.alerts.judge("queue-depth", "live", s.depth("live"), cfg.live_depth,
                              "live queue depth", now)
            if cfg.backload_depth is not None:
                self.alerts.judge("queue-depth", "backload", s.depth("backload"),
                                  cfg.backload_depth, "backload queue depth", now)
        rate, finished = self.dead_letter_rate()
        if finished >= cfg.dead_letter_min or self.alerts.is_active("dead-letter-rate", "all"):
            self.alerts.judge("dead-letter-rate", "all", round(rate, 4), cfg.dead_letter_rate,
                              "dead-letter rate", now)

    def live_percentiles(self) -> dict[str, float | None]:
        values = list(self.latency)
        return {f"p{int(q * 100)}": percentile(values, q) for q in (0.5, 0.9, 0.99)}

    def _point(self, now: float) -> dict[str, Any]:
        s = self.sample
        lat = self.live_percentiles()
        return {
            "t": round(now, 3),
            "applied_rate": round(self.rates.get("applied", 0.0), 2),
            "received_rate": round(self.rates.get("accepted", 0.0), 2),
            "live_depth": s.depth("live") if s else 0,
            "backload_depth": s.depth("backload") if s else 0,
            "live_p50_ms": _ms(lat["p50"]),
            "live_p99_ms": _ms(lat["p99"]),
        }

    # -- the JSON behind /status -----------------------------------------------
    def status(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        s = self.sample
        lat = self.live_percentiles()
        rate, finished = self.dead_letter_rate()
        feeds: dict[str, dict[str, Any]] = {}
        beats = {b["feed"]: b for b in self.heartbeats.snapshot(now)}
        names = set(beats)
        if s is not None:
            names |= {feed for (feed, _s) in s.counts}
        ls = self.listener_stats
        if ls is not None:
            names |= set(ls.feeds)
        for name in sorted(names):
            row: dict[str, Any] = {"feed": name}
            if s is not None:
                row["stages"] = {st: s.total(st, feed=name) for st in STAGES}
                row["depth"] = (s.total("queued", feed=name) + s.total("released", feed=name))
            row["rate"] = round(self.feed_rates.get(name, 0.0), 2)
            if ls is not None and name in ls.feeds:
                c = ls.feeds[name]
                row["mllp"] = {
                    "received": c.received, "queued": c.queued, "duplicate": c.duplicate,
                    "dead_lettered": c.dead_lettered, "refused": c.refused,
                    "unavailable": c.unavailable, "oversize": c.oversize,
                    "heartbeats": c.heartbeats,
                }
            if name in beats:
                row["heartbeat"] = beats[name]
            fl = list(self.latency_by_feed.get(name, ()))
            row["live_p50_ms"] = _ms(percentile(fl, 0.5))
            row["live_p99_ms"] = _ms(percentile(fl, 0.99))
            feeds[name] = row
        out: dict[str, Any] = {
            "at": round(now, 3),
            "uptime": round(now - self.started_at, 1),
            "ticks": self.ticks,
            "stages": {st: (s.total(st) if s else 0) for st in STAGES},
            "accepted": sum(s.counts.values()) if s else 0,
            # live "applied" counts the MLLP live messages the monitor followed to the
            # store; backload "applied" is everything else that was applied
            "lanes": {
                "live": {"depth": s.depth("live") if s else 0, "applied": self.latency_count},
                "backload": {"depth": s.depth("backload") if s else 0,
                             "applied": max((s.total("applied") if s else 0)
                                            - self.latency_count, 0)},
            },
            "rates": {k: round(v, 2) for k, v in self.rates.items()},
            # percentiles over the most recent `window` live messages of `count` measured
            "live_latency_ms": {k: _ms(v) for k, v in lat.items()} | {
                "count": self.latency_count, "window": len(self.latency)},
            "backload_eta_s": _round(self.backload_eta()),
            "dead_letter_rate": round(rate, 4),
            "dead_letter_window": finished,
            "sample_ms": round(s.took * 1000, 1) if s else None,
            "feeds": list(feeds.values()),
            "alerts": [
                {"key": a.key, "kind": a.kind, "subject": a.subject, "message": a.message,
                 "since": round(a.since, 3), "value": a.value}
                for a in self.alerts.active.values()
            ],
            "events": [
                {"at": round(e.at, 3), "key": e.key, "state": e.state, "message": e.message}
                for e in list(self.alerts.events)[-30:]
            ],
            "history": list(self.history),
            "actions": self.actions,
            "controls": self.controls() if self.controls is not None else {},
        }
        if ls is not None:
            out["mllp"] = {"connections_open": ls.connections_open,
                           "connections_total": ls.connections_total,
                           "reset_mid_frame": ls.reset_mid_frame, "idle_closed": ls.idle_closed,
                           "batches": ls.batches, "batched_messages": ls.batched_messages}
        if self.extra is not None:
            out["run"] = self.extra()
        return out

    # -- the loop -----------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; the tick stretches if sampling gets expensive."""
        while not stop.is_set():
            await self.tick()
            took = self.sample.took if self.sample else 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(self.config.tick, 10 * took))


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None

"""Prometheus exposition: a collector that reads the monitor's last sample at scrape time.

Names follow the prometheus-client conventions: ``shcr_`` prefix, base units
(seconds), ``_total`` on counters, labels for feed, lane and state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .metrics import Monitor, percentile

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MLLP_OUTCOMES = ("received", "queued", "duplicate", "dead_lettered", "refused", "unavailable",
                 "oversize", "heartbeats")


class MonitorCollector:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        s = m.sample
        now = time.time()
        if s is not None:
            in_state = GaugeMetricFamily(
                "shcr_queue_messages", "Messages in the durable queue by feed and state",
                labels=["feed", "state"])
            accepted = CounterMetricFamily(
                "shcr_messages_accepted", "Messages accepted into the durable queue",
                labels=["feed"])
            per_feed: dict[str, int] = {}
            for (feed, state), n in sorted(s.counts.items()):
                in_state.add_metric([feed, state], n)
                per_feed[feed] = per_feed.get(feed, 0) + n
            for feed, n in sorted(per_feed.items()):
                accepted.add_metric([feed], n)
            yield in_state
            yield accepted
            depth = GaugeMetricFamily("shcr_queue_depth",
                                      "Messages waiting (queued or released) per lane",
                                      labels=["lane"])
            for lane in ("live", "backload"):
                depth.add_metric([lane], s.depth(lane))
            yield depth
            yield GaugeMetricFamily("shcr_monitor_sample_seconds",
                                    "Time the last queue sample took", value=s.took)
        eta = m.backload_eta()
        if eta is not None:
            yield GaugeMetricFamily("shcr_backload_eta_seconds",
                                    "Estimated seconds until the backload lane is drained",
                                    value=eta)
        rate, _ = m.dead_letter_rate()
        yield GaugeMetricFamily("shcr_dead_letter_ratio",
                                "Share of recently finished messages that were dead-lettered",
                                value=rate)
        latency = Metric("shcr_live_latency_seconds",
                         "Live message latency, arrival at the listener to applied", "summary")
        values = list(m.latency)
        for q in (0.5, 0.9, 0.99):
            p = percentile(values, q)
            if p is not None:
                latency.add_sample("shcr_live_latency_seconds", {"quantile": str(q)}, p)
        latency.add_sample("shcr_live_latency_seconds_count", {}, m.latency_count)
        latency.add_sample("shcr_live_latency_seconds_sum", {}, m.latency_sum)
        yield latency
        ls = m.listener_stats
        if ls is not None:
            mllp = CounterMetricFamily("shcr_mllp_messages",
                                       "Frames handled by the MLLP listener by feed and outcome",
                                       labels=["feed", "outcome"])
            for feed, c in sorted(ls.feeds.items()):
                for outcome in MLLP_OUTCOMES:
                    mllp.add_metric([feed, outcome], getattr(c, outcome))
            yield mllp
            yield GaugeMetricFamily("shcr_mllp_connections_open", "Open MLLP connections",
                                    value=ls.connections_open)
            yield CounterMetricFamily("shcr_mllp_connections", "MLLP connections accepted",
                                      value=ls.connections_total)
        age = GaugeMetricFamily("shcr_heartbeat_age_seconds",
                                "Seconds since each feed's last heartbeat", labels=["feed"])
        up = GaugeMetricFamily("shcr_heartbeat_up",
                               "1 while a feed's heartbeat is within the threshold",
                               labels=["feed"])
        beats = CounterMetricFamily("shcr_heartbeats", "Heartbeats received", labels=["feed"])
        rtt = GaugeMetricFamily(
            "shcr_heartbeat_round_trip_seconds",
            "Last heartbeat's MSH-7 until everything its feed sent before it was in the record",
            labels=["feed"])
        for b in m.heartbeats.snapshot(now):
            age.add_metric([str(b["feed"])], float(b["age"]))  # type: ignore[arg-type]
            up.add_metric([str(b["feed"])], 1.0 if b["alive"] else 0.0)
            beats.add_metric([str(b["feed"])], float(b["count"]))  # type: ignore[arg-type]
            if b["round_trip_ms"] is not None:
                rtt.add_metric([str(b["feed"])], float(b["round_trip_ms"]) / 1000)  # type: ignore[arg-type]
        yield rtt
        yield age
        yield up
        yield beats
        controls = m.controls() if m.controls is not None else {}
        if "store_down_s" in controls:
            yield GaugeMetricFamily("shcr_store_unavailable_seconds",
                                    "Seconds the record store goes on refusing writes (0: up)",
                                    value=float(controls["store_down_s"]))
        if "store_writes_refused" in controls:
            yield CounterMetricFamily("shcr_store_writes_refused",
                                      "Store writes refused while it was unavailable (retried)",
                                      value=float(controls["store_writes_refused"]))
        alerts = GaugeMetricFamily("shcr_alert_active", "1 for each active alert",
                                   labels=["kind", "subject"])
        for a in m.alerts.active.values():
            alerts.add_metric([a.kind, a.subject], 1.0)
        yield alerts


def registry_for(monitor: Monitor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))  # type: ignore[arg-type]
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

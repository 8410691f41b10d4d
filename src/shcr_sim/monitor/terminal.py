"""``shcr-sim monitor``: the dashboard in a terminal, polling the engine's /status."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def fetch_status(url: str, timeout: float = 5.0) -> dict[str, Any]:
    with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=timeout) as resp:
        return json.loads(resp.read())


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render(status: dict[str, Any]) -> Group:
    """One screen: pipeline totals, lanes, feeds with heartbeats, alerts."""
    lat = status.get("live_latency_ms", {})
    lanes = status.get("lanes", {})
    stages = status.get("stages", {})
    head = Table.grid(padding=(0, 3))
    for _ in range(6):
        head.add_column()
    head.add_row(
        f"accepted [b]{_n(status.get('accepted'))}[/]",
        f"applied [b]{_n(stages.get('applied'))}[/]",
        f"duplicate [b]{_n(stages.get('duplicate'))}[/]",
        f"dead-lettered [b]{_n(stages.get('dead-lettered'))}[/]",
        f"applied/s [b]{_n(status.get('rates', {}).get('applied'))}[/]",
        f"dead-letter rate [b]{100 * status.get('dead_letter_rate', 0):.1f} %[/]",
    )
    head.add_row(
        f"live depth [b]{_n(lanes.get('live', {}).get('depth'))}[/]",
        f"backload depth [b]{_n(lanes.get('backload', {}).get('depth'))}[/]",
        f"backload ETA [b]{_eta(status.get('backload_eta_s'))}[/]",
        f"live p50 [b]{_n(lat.get('p50'))} ms[/]",
        f"live p99 [b]{_n(lat.get('p99'))} ms[/]",
        f"live measured [b]{_n(lat.get('count'))}[/]",
    )
    feeds = Table(title="feeds", expand=True)
    for col in ("feed", "heartbeat", "last beat", "round trip ms", "received", "queued",
                "applied", "duplicate", "dead-lettered", "refused", "msg/s", "live p99 ms"):
        feeds.add_column(col, justify="left" if col in ("feed", "heartbeat") else "right")
    for f in status.get("feeds", []):
        hb = f.get("heartbeat")
        state = ("[green]alive[/]" if hb["alive"] else "[bold red]SILENT[/]") if hb else "–"
        st = f.get("stages", {})
        m = f.get("mllp", {})
        feeds.add_row(
            f["feed"], state, f"{hb['age']:.1f} s" if hb else "–",
            _n(hb.get("round_trip_ms")) if hb else "–", _n(m.get("received")),
            _n(st.get("queued")), _n(st.get("applied")), _n(st.get("duplicate")),
            _n(st.get("dead-lettered")), _n(m.get("refused")), _n(f.get("rate")),
            _n(f.get("live_p99_ms")),
        )
    alerts = status.get("alerts", [])
    alert_text = Text()
    if alerts:
        for a in alerts:
            alert_text.append(f"ALERT {a['key']}: {a['message']}\n", style="bold red")
    else:
        alert_text.append("no active alerts", style="green")
    run = status.get("run")
    parts: list[Any] = [head]
    if run:
        parts.append(Text(f"run: {run.get('phase')} · backload read {_n(run.get('read'))} · "
                          f"elapsed {run.get('elapsed_s')} s", style="cyan"))
    parts += [feeds, alert_text]
    return Group(*parts)


def watch(url: str, interval: float = 1.0, once: bool = False) -> int:
    """Poll and redraw until Ctrl-C; ``once`` prints a single frame. Returns an exit code."""
    from rich.console import Console
    from rich.live import Live

    console = Console() if not once else Console(width=max(Console().width, 140))
    if once:
        try:
            console.print(render(fetch_status(url)))
        except (urllib.error.URLError, OSError) as exc:
            console.print(f"[red]cannot reach the engine at {url}: {exc}[/]")
            return 1
        return 0
    with Live(console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                try:
                    live.update(render(fetch_status(url)))
                except (urllib.error.URLError, OSError) as exc:
                    live.update(Text(f"cannot reach the engine at {url}: {exc}", style="red"))
                time.sleep(interval)
        except KeyboardInterrupt:
            return 0

"""Rich renderings for the engine commands (progress, reconciliation, verify, record)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from shcr_sim.nhs_number import SYSTEM as NHS_SYSTEM
from shcr_sim.store.record import (
    CLINICAL_ORDER,
    PatientRecord,
    address_text,
    patient_name,
    summary,
)
from shcr_sim.store.record import when as when_of

from .queue import QueueRow
from .reconcile import Reconciliation
from .replay import Progress
from .verify import VerifyResult


def _rate(n: int, secs: float) -> str:
    return f"{n / secs:,.0f}/s" if secs > 0 else "-"


def progress_line(p: Progress) -> str:
    """The progress as one plain line, for output that is not a terminal (a log file)."""
    return (f"replay: {p.phase} {p.elapsed:,.0f}s · read {p.read:,} · accepted "
            f"{p.accepted:,} · applied {p.applied:,} ({_rate(p.applied, p.elapsed)}) · dead "
            f"{p.dead + p.dead_at_accept:,} · waiting {p.depth_backload + p.depth_live:,} "
            f"(live {p.depth_live:,})")


def throttled(every_s: float, show: Callable[..., None]) -> Callable[..., None]:
    """``show`` passed on at most every ``every_s`` seconds (the first after ``every_s``):
    a long run whose output is a log says where it is without cluttering a quick one."""
    last = time.monotonic()

    def maybe(*args: Any) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            show(*args)

    return maybe


def progress_lines(every_s: float, prefix: str = "") -> Callable[[Progress], None]:
    """An ``on_progress`` that prints ``progress_line`` on stderr, ``throttled``."""
    return throttled(every_s, lambda p: print(prefix + progress_line(p), file=sys.stderr,
                                              flush=True))


def progress_table(p: Progress) -> Table:
    """One line per stage: counts, rate, queue depth, ETA."""
    t = Table(title=f"replay — {p.phase} — {p.elapsed:,.1f}s", title_justify="left")
    for col in ("stage", "count", "rate", "detail"):
        t.add_column(col, justify="right" if col in ("count", "rate") else "left")
    t.add_row("files", f"{p.files_done + p.files_skipped}/{p.files_total}", "",
              f"{p.files_skipped} already ingested" if p.files_skipped else "")
    t.add_row("inbound (accepted)", f"{p.accepted:,}", _rate(p.accepted, p.elapsed),
              f"dup {p.duplicate_at_accept:,} · dead {p.dead_at_accept:,}")
    t.add_row("queue depth", f"{p.depth_backload + p.depth_live:,}", "",
              f"backload {p.depth_backload:,} · live {p.depth_live:,}")
    left = p.depth_backload + p.depth_live
    rate = p.released / p.elapsed
    eta = f"ETA {left / rate:,.0f}s" if rate > 0 and left else ""
    t.add_row("released → store", f"{p.released:,}", _rate(p.released, p.elapsed),
              f"applied {p.applied:,} · dead {p.dead:,} · live {p.live_released:,} {eta}")
    return t


def reconciliation_table(r: Reconciliation) -> Group:
    t = Table(title="reconciliation: accepted = applied + duplicate + dead-lettered",
              title_justify="left")
    for col in ("trust", "message type", "accepted", "applied", "duplicate", "dead-lettered",
                "pending", ""):
        t.add_column(col, justify="right" if col not in ("trust", "message type", "") else "left")
    for row in [*r.rows, r.total]:
        t.add_row(row.trust, row.message_type, f"{row.accepted:,}", f"{row.applied:,}",
                  f"{row.duplicate:,}", f"{row.dead_lettered:,}", f"{row.pending:,}",
                  "[green]OK[/]" if row.ok else "[red]MISMATCH[/]",
                  end_section=row is r.rows[-1] if r.rows else False)
    line = ("[bold green]OK[/]: every accepted message is applied, duplicate or dead-lettered"
            if r.ok else "[bold red]MISMATCH[/]: some accepted messages are unaccounted for")
    return Group(t, line)


def unknown_senders_warning(r: Reconciliation) -> str:
    """What to do about messages refused for their sender ('' when there were none)."""
    if not r.unknown_senders:
        return ""
    n = sum(r.unknown_senders.values())
    examples = ", ".join(list(r.unknown_senders)[:3])
    return (f"{n:,} message{'s' if n != 1 else ''} from senders that are not configured "
            f"trusts (e.g. {examples}) were dead-lettered — add them with --trusts/--trust "
            "and run `shcr-sim deadletter retry --all`")


def tally_warning(n: int) -> str:
    """That the queue's tally was wrong in ``n`` groups and has been set right ('' when
    it was right: ``Reconciliation.tally_corrected``)."""
    if not n:
        return ""
    return (f"the queue's tally (the counts the monitor shows) was wrong in {n:,} "
            f"group{'s' if n != 1 else ''} (lane, state, trust, message type), most likely after "
            "an edit of queue_state outside the engine; it was recounted from the queue")


def verify_report(v: VerifyResult, limit: int = 50) -> Group:
    head = (f"verify: {v.messages:,} messages, {v.patients:,} patients, "
            f"{v.resources:,} expected resources — ")
    if v.ok:
        return Group(head + "[bold green]OK[/]: the store matches every patient's journey")
    t = Table(title=f"{len(v.differences)} differences", title_justify="left")
    t.add_column("resource")
    t.add_column("kind")
    t.add_column("fields")
    for d in v.differences[:limit]:
        t.add_row(d.rkey, d.kind, ", ".join(d.paths[:6]))
    return Group(head + "[bold red]DIFFERENCES[/]", t)


def dead_letter_table(rows: list[QueueRow], total: int | None = None) -> Table:
    """``total``: how many dead letters exist when ``rows`` is only a page of them."""
    shown = len(rows)
    title = (f"{shown:,} dead letters" if total is None or total == shown
             else f"showing {shown:,} of {total:,} dead letters")
    t = Table(title=title, title_justify="left")
    for col in ("id", "lane", "trust", "type", "control id", "reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.seq), r.lane, f"{r.sender_app}/{r.sender_fac}", r.message_type,
                  r.control_id, r.reason)
    return t


def dead_letter_panel(r: QueueRow) -> Panel:
    body = (f"[bold]id[/] {r.seq}   [bold]state[/] {r.state}   [bold]lane[/] {r.lane}\n"
            f"[bold]from[/] {r.sender_app}/{r.sender_fac}   [bold]type[/] {r.message_type}   "
            f"[bold]MSH-10[/] {r.control_id}\n[bold]source[/] {r.source}\n"
            f"[bold]reason[/] [red]{r.reason}[/]\n\n" + r.raw.replace("\r", "\n"))
    return Panel(body, title=f"dead letter {r.seq}", title_align="left")


def record_view(rec: PatientRecord) -> Group:
    label = f"NHS number {rec.nhs_number}" if ":" not in rec.nhs_number else rec.nhs_number
    if not rec.patients:
        return Group(f"No record for {label}.")
    latest = max(rec.patients, key=lambda p: (p.get("meta") or {}).get("lastUpdated", ""))
    addr = escape(address_text(latest))
    who = f"NHS {rec.nhs_number}" if ":" not in rec.nhs_number else f"{label} (no NHS number)"
    demo = (f"[bold]{escape(patient_name(latest))}[/]   {who}   "
            f"born {latest.get('birthDate', '?')}   {latest.get('gender', '')}\n{addr}")
    ids = Table(title="identifiers at every trust", title_justify="left")
    for col in ("Patient", "system", "value", "active"):
        ids.add_column(col)
    for p in rec.patients:
        for i in p.get("identifier") or []:
            if i.get("system") != NHS_SYSTEM:
                ids.add_row(p["id"], i.get("system", ""), i.get("value", ""),
                            str(p.get("active", True)))
    tl = Table(title="timeline", title_justify="left")
    for col in ("when", "what", "summary"):
        tl.add_column(col)
    rank = {t: i for i, t in enumerate(CLINICAL_ORDER)}
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in rec.resources}
    in_reports: set[str] = set()
    for r in rec.resources:
        if r.get("resourceType") == "DiagnosticReport":
            in_reports.update(x.get("reference", "") for x in r.get("result") or [])
    items = [r for r in rec.resources if r.get("resourceType") in rank
             and f"{r['resourceType']}/{r['id']}" not in in_reports]
    for r in sorted(items, key=lambda r: (when_of(r), rank[r["resourceType"]])):
        text = summary(r)
        if r["resourceType"] == "DiagnosticReport":
            results = [by_ref[x["reference"]] for x in r.get("result") or []
                       if x.get("reference") in by_ref]
            if results:
                text += "\n  " + "\n  ".join(summary(o) for o in results[:8])
                if len(results) > 8:
                    text += f"\n  … {len(results) - 8} more"
        tl.add_row(when_of(r)[:16], r["resourceType"], text)
    return Group(Panel(demo, title="shared care record", title_align="left"), ids, tl)

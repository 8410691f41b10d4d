"""Orchestrates a run: population → per-record journeys → messages → files + manifest.

Patients are generated one at a time in index order (``records.py``), so every
backload file comes out in local-id (MRN) order without a global sort. Live messages
go through a spilling sorter (``live.py``). Every random choice comes from a
``random.Random`` seeded by (seed, patient, trust), so the same seed gives the same
bytes.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .clock import epoch_of
from .live import LiveSpool, temp_dir
from .messages import render
from .model import TrustState
from .records import PatientRecords, Window, build_patient
from .scenario import Scenario

__all__ = ["build_patient", "generate"]

PLAIN_PROGRESS_EVERY_S = 30.0  # a progress line when stderr is not a terminal


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class _Sink:
    """Routes rendered messages: backload files by (trust, data type), live to the spool."""

    def __init__(self, out: Path, sc: Scenario, spool: LiveSpool) -> None:
        self.out = out
        self.cut = Window.of(sc).cut
        self.resend_rate = sc.live.resend_rate
        self.spool = spool
        # a trust whose extract starts later than the scenario's backload
        self.extract_from = {
            t.ods: epoch_of(t.backload_from) if t.backload_from else 0 for t in sc.trusts
        }
        self.files: dict[tuple[str, str], TextIO] = {}
        self.backload: dict[str, Counter[str]] = {t.ods: Counter() for t in sc.trusts}
        self.live: dict[str, Counter[str]] = {t.ods: Counter() for t in sc.trusts}
        self.per_file: Counter[str] = Counter()
        self.resends: Counter[str] = Counter()
        self.total = 0
        self.live_seq = 0
        self.first: int | None = None
        self.last: int | None = None
        self.people: Counter[str] = Counter()

    def _file(self, ods: str, dtype: str) -> TextIO:
        d = self.out / "backload" / ods
        d.mkdir(parents=True, exist_ok=True)
        fh = open(d / f"{dtype}.hl7", "w", encoding="utf-8", newline="",
                  buffering=1 << 20)
        self.files[(ods, dtype)] = fh
        return fh

    def patient(self, rec: PatientRecords, resend_rng: random.Random) -> None:
        people = self.people
        people["patients"] += 1
        people["with_nhs_number" if rec.person.nhs else "without_nhs_number"] += 1
        trusts = [reg.state.ods for reg in rec.regs if reg.events]
        if len(set(trusts)) > 1:
            people["known_at_several_trusts"] += 1
        people["duplicate_registrations"] += len(trusts) - len(set(trusts))
        if rec.person.died is not None:
            people["died"] += 1
        for reg in rec.regs:
            ods = reg.state.ods
            extract_from = self.extract_from[ods]
            for ev in reg.events:
                mtype, text = render(reg, ev)
                t = ev.time
                if t < extract_from:
                    continue  # happened, but is not in this trust's extract
                if self.first is None or t < self.first:
                    self.first = t
                if self.last is None or t > self.last:
                    self.last = t
                if t < self.cut:
                    fh = self.files.get((ods, ev.dtype)) or self._file(ods, ev.dtype)
                    fh.write(text)
                    fh.write("\n")
                    self.backload[ods][mtype] += 1
                    self.per_file[f"backload/{ods}/{ev.dtype}.hl7"] += 1
                    self.total += 1
                    continue
                # live: arrives shortly after it happened; now and then sent twice
                arrival = t + 5 + (ev.seq * 7919 + rec.person.index) % 240
                resent = resend_rng.random() < self.resend_rate
                self.live_seq += 1
                first = self.live_seq
                self.spool.add(ods, arrival, first, text, resent=resent)
                self.live[ods][mtype] += 1
                self.per_file[f"live/{ods}.hl7"] += 1
                self.total += 1
                if resent:
                    self.live_seq += 1
                    again = arrival + resend_rng.randint(30, 900)
                    self.spool.add(ods, again, self.live_seq, text, original=first)
                    self.live[ods][mtype] += 1
                    self.per_file[f"live/{ods}.hl7"] += 1
                    self.total += 1
                    self.resends[ods] += 1

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def generate(
    sc: Scenario,
    out: Path,
    *,
    messages: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    live_budget: int = 50_000,
) -> dict:
    """Write backload files, live streams and ``manifest.json`` under ``out``; return it.

    ``messages``: instead of the scenario's population size, add patients (always in
    the same order, so a smaller run is a prefix of a larger one) until the run holds
    at least that many messages.
    """
    seed = sc.seed if seed is None else seed
    limit = None if messages else sc.population.size
    w = Window.of(sc)
    out = Path(out)
    (out / "backload").mkdir(parents=True, exist_ok=True)
    states = [TrustState(t) for t in sc.trusts]
    patients = 0
    with temp_dir(out) as tmp:
        spool = LiveSpool(Path(tmp), live_budget)
        sink = _Sink(out, sc, spool)
        bar = _progress(progress, messages or limit or 0, "messages" if messages else "patients")
        try:
            while (patients < limit) if limit is not None else (sink.total < (messages or 0)):
                rec = build_patient(sc, seed, patients, states, w)
                sink.patient(rec, random.Random(f"{seed}:resend:{patients}"))
                patients += 1
                if bar is not None and patients % 100 == 0:
                    bar.update(sink.total if messages else patients, patients, sink.total)
            if bar is not None:
                bar.update(messages or limit or 0, patients, sink.total)
        finally:
            sink.close()
            if bar is not None:
                bar.stop()
        spool.write(out / "live", {
            st.ods: (lambda n, st=st: st.flavour.control_id(st.ods, n), st.next_msg)
            for st in states
        })
    for t in sc.trusts:  # every trust gets a live file, even an empty one
        (out / "live" / f"{t.ods}.hl7").touch()
    manifest = _manifest(sc, seed, patients, w, sink)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(sc: Scenario, seed: int, population: int, w: Window, sink: _Sink) -> dict:
    backload_counts, live_counts, resends = sink.backload, sink.live, sink.resends
    first_event, last_event, file_counts = sink.first, sink.last, sink.per_file
    trusts = {}
    for t in sc.trusts:
        b = backload_counts[t.ods]
        lv = live_counts[t.ods]
        trusts[t.ods] = {
            "name": t.name,
            "sending_application": t.sending_application,
            "sending_applications": dict(t.sending_applications),
            "kind": t.kind,
            "flavour": t.flavour,
            "backload_from": (t.backload_from or sc.backload.start).isoformat(),
            "backload": dict(sorted(b.items())),
            "live": dict(sorted(lv.items())),
            "live_resends": resends[t.ods],
            "total": sum(b.values()) + sum(lv.values()),
        }
    backload_total = sum(sum(c.values()) for c in backload_counts.values())
    live_total = sum(sum(c.values()) for c in live_counts.values())
    return {
        "scenario": sc.name,
        "seed": seed,
        "population": population,
        "patients": {k: sink.people[k] for k in (
            "patients", "with_nhs_number", "without_nhs_number", "known_at_several_trusts",
            "duplicate_registrations", "died")},
        "backload": {"start": _iso(w.start), "end": _iso(w.cut), "messages": backload_total},
        "live": {"start": _iso(w.cut), "end": _iso(w.end), "messages": live_total,
                 "resends": sum(resends.values())},
        "events": {"first": _iso(first_event) if first_event is not None else None,
                   "last": _iso(last_event) if last_event is not None else None},
        "total": backload_total + live_total,
        "trusts": trusts,
        "files": dict(sorted(file_counts.items())),
    }


@dataclass
class _Progress:
    """Where ``generate`` reports: ``update(done, patients, messages)``, then ``stop()``."""

    update: Callable[[int, int, int], None]
    stop: Callable[[], None]


def _progress(enabled: bool, total: int, unit: str) -> _Progress | None:
    """A live bar on a terminal; plain lines now and then on a log file or a pipe, where
    a bar would show nothing until the end (ten million messages take minutes)."""
    if not enabled:
        return None
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        return _plain_lines(total, unit)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    p = Progress(
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{unit} · " + "{task.fields[patients]:,} patients · "
                   "{task.fields[messages]:,} messages"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = p.add_task("generate", total=total, messages=0, patients=0)
    p.start()
    return _Progress(lambda done, patients, messages: p.update(
        task, completed=done, patients=patients, messages=messages), p.stop)


def _plain_lines(total: int, unit: str) -> _Progress:
    started = last = time.monotonic()
    seen = shown = (0, 0)

    def line() -> None:
        nonlocal shown
        shown = patients, messages = seen
        counts = (f"{messages:,} of {total:,} messages · {patients:,} patients"
                  if unit == "messages" else
                  f"{patients:,} of {total:,} patients · {messages:,} messages")
        print(f"generate: {counts} · {time.monotonic() - started:,.0f}s", file=sys.stderr,
              flush=True)

    def update(done: int, patients: int, messages: int) -> None:
        nonlocal last, seen
        seen = (patients, messages)
        if (now := time.monotonic()) - last >= PLAIN_PROGRESS_EVERY_S:
            last = now
            line()

    def stop() -> None:
        if seen != shown:
            line()

    return _Progress(update, stop)

"""Orchestrates a run: population → per-record journeys → messages → files + manifest.

Patients are generated one at a time in index order and each trust allocates MRNs as
it first meets a patient, so every backload file comes out in local-id (MRN) order
without a global sort. Live messages go through a spilling sorter (``live.py``).
Every random choice comes from a ``random.Random`` seeded by (seed, patient, trust),
so the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .catalogue import load_catalogue, load_people
from .clock import epoch_of
from .journeys import DAY, Journey
from .live import LiveSpool, temp_dir
from .messages import render
from .model import Reg, TrustState
from .population import Person, make_person
from .scenario import Scenario

PILOT_PATIENTS = 300


@dataclass
class Window:
    start: int
    cut: int
    end: int

    @classmethod
    def of(cls, sc: Scenario) -> Window:
        start = epoch_of(sc.backload.start)
        cut = epoch_of(sc.backload.end)
        return cls(start, cut, cut + int(sc.live.hours * 3600))


@dataclass
class PatientRecords:
    """One patient's records, in the order they go to the files (trust, then MRN)."""

    person: Person
    regs: list[Reg] = field(default_factory=list)


def _pick_trusts(rng: random.Random, sc: Scenario) -> list[int]:
    weights = [t.weight for t in sc.trusts]
    n = len(weights)
    first = rng.choices(range(n), weights)[0]
    chosen = {first}
    if n > 1 and rng.random() < sc.population.multi_trust_share:
        extra = 1 if rng.random() < 0.7 else 2
        for _ in range(extra * 3):
            if len(chosen) >= min(n, 1 + extra):
                break
            chosen.add(rng.choices(range(n), weights)[0])
    return sorted(chosen)


def build_patient(
    sc: Scenario, seed: int, index: int, states: list[TrustState], w: Window
) -> PatientRecords:
    """All of one patient's records and their events (allocating ids at each trust)."""
    ref_year = datetime.fromtimestamp(w.cut, UTC).year
    person = make_person(seed, index, sc.population.no_nhs_number_share, ref_year, load_people())
    rng = random.Random(f"{seed}:patient:{index}")
    out = PatientRecords(person)
    cat = load_catalogue()
    span = w.end - w.start
    trusts = _pick_trusts(rng, sc)
    duplicate = rng.random() < sc.population.duplicate_share
    for ti in trusts:
        st = states[ti]
        registered = w.start + int(rng.random() ** 2 * span * 0.95)
        reg = Reg(st, st.new_mrn(), person.copy(), registered)
        jrng = random.Random(f"{seed}:journey:{index}:{st.ods}")
        Journey(reg, jrng, w.cut, w.end, sc.live.rate_multiplier, sc.correction_rate, cat).build(
            w.start
        )
        out.regs.append(reg)
        if duplicate and "adt" in st.sends and registered + 2 * DAY < w.end:
            duplicate = False
            out.regs.append(_duplicate(sc, reg, jrng, w))
    for reg in out.regs:
        reg.events.sort(key=lambda e: (e.time, e.seq))
    return out


def _duplicate(sc: Scenario, orig: Reg, rng: random.Random, w: Window) -> Reg:
    """A second registration of the same person at the same trust, merged later by A40."""
    st = orig.state
    p = orig.person.copy()
    if rng.random() < 0.6:
        p.nhs = None  # registered in a hurry without tracing the NHS number
    else:
        p.given = p.given[:-1] if len(p.given) > 3 else p.given + "e"
    t_dup = orig.registered + DAY + int(rng.random() * (w.end - orig.registered - 2 * DAY))
    dup = Reg(st, st.new_mrn(), p, t_dup)
    j = Journey(dup, rng, w.cut, w.end, sc.live.rate_multiplier, sc.correction_rate)
    j.add(t_dup, "adt", "A28")
    if st.trust.kind == "acute":
        j.ed_attendance(t_dup + 600)
    elif st.trust.kind == "urgent-care":
        j.urgent_care(t_dup + 600)
    else:
        j.mh_contact(t_dup + 600)
    last = max(e.time for e in dup.events)
    t_merge = last + rng.randint(DAY, 21 * DAY)
    if t_merge < w.end:
        orig.events.append(
            __import__("shcr_sim.feeds.model", fromlist=["Event"]).Event(
                t_merge, 10_000_000, "adt", "A40", None, {"old_mrn": dup.mrn}
            )
        )
    return dup


def estimate_population(sc: Scenario, seed: int, messages: int) -> int:
    """Patients needed for about ``messages`` messages, from a pilot of the first patients."""
    w = Window.of(sc)
    states = [TrustState(t) for t in sc.trusts]
    pilot = min(PILOT_PATIENTS, max(50, messages // 20))
    total = 0
    for i in range(pilot):
        rec = build_patient(sc, seed, i, states, w)
        total += sum(len(r.events) for r in rec.regs)
    per_patient = max(total / pilot, 0.1) * (1 + sc.live.resend_rate * 0.01)
    return max(1, round(messages / per_patient))


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def generate(
    sc: Scenario,
    out: Path,
    *,
    messages: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    live_budget: int = 200_000,
) -> dict:
    """Write backload files, live streams and ``manifest.json`` under ``out``; return it."""
    seed = sc.seed if seed is None else seed
    population = estimate_population(sc, seed, messages) if messages else sc.population.size
    w = Window.of(sc)
    out = Path(out)
    (out / "backload").mkdir(parents=True, exist_ok=True)
    states = [TrustState(t) for t in sc.trusts]
    files: dict[tuple[str, str], object] = {}
    backload_counts: dict[str, Counter[str]] = {t.ods: Counter() for t in sc.trusts}
    live_counts: dict[str, Counter[str]] = {t.ods: Counter() for t in sc.trusts}
    file_counts: Counter[str] = Counter()
    resends = Counter()
    first_event: int | None = None
    last_event: int | None = None
    with temp_dir(out) as tmp:
        spool = LiveSpool(Path(tmp), live_budget)
        bar = _progress(progress, population)
        live_seq = 0
        try:
            for i in range(population):
                rec = build_patient(sc, seed, i, states, w)
                resend_rng = random.Random(f"{seed}:resend:{i}")
                for reg in rec.regs:
                    ods = reg.state.ods
                    for ev in reg.events:
                        mtype, text = render(reg, ev)
                        if first_event is None or ev.time < first_event:
                            first_event = ev.time
                        if last_event is None or ev.time > last_event:
                            last_event = ev.time
                        if ev.time < w.cut:
                            key = (ods, ev.dtype)
                            fh = files.get(key)
                            if fh is None:
                                d = out / "backload" / ods
                                d.mkdir(parents=True, exist_ok=True)
                                fh = files[key] = (d / f"{ev.dtype}.hl7").open(
                                    "w", encoding="utf-8", newline="", buffering=1 << 20
                                )
                            fh.write(text)  # type: ignore[attr-defined]
                            fh.write("\n")  # type: ignore[attr-defined]
                            backload_counts[ods][mtype] += 1
                            file_counts[f"backload/{ods}/{ev.dtype}.hl7"] += 1
                        else:
                            arrival = ev.time + 5 + (ev.seq * 7919 + i) % 240
                            live_seq += 1
                            spool.add(ods, arrival, live_seq, text)
                            live_counts[ods][mtype] += 1
                            file_counts[f"live/{ods}.hl7"] += 1
                            if resend_rng.random() < sc.live.resend_rate:
                                live_seq += 1
                                spool.add(ods, arrival + resend_rng.randint(30, 900), live_seq,
                                          text)
                                live_counts[ods][mtype] += 1
                                file_counts[f"live/{ods}.hl7"] += 1
                                resends[ods] += 1
                if bar is not None and (i % 200 == 199 or i == population - 1):
                    bar[0].update(bar[1], completed=i + 1,
                                  messages=sum(file_counts.values()))
        finally:
            for fh in files.values():
                fh.close()  # type: ignore[attr-defined]
            if bar is not None:
                bar[0].stop()
        spool.write(out / "live")
    for t in sc.trusts:  # every trust gets a live file, even an empty one
        (out / "live" / f"{t.ods}.hl7").touch()
    manifest = _manifest(sc, seed, population, w, backload_counts, live_counts, file_counts,
                         resends, first_event, last_event)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _manifest(sc, seed, population, w, backload_counts, live_counts, file_counts, resends,
              first_event, last_event) -> dict:
    trusts = {}
    for t in sc.trusts:
        b = backload_counts[t.ods]
        lv = live_counts[t.ods]
        trusts[t.ods] = {
            "name": t.name,
            "sending_application": t.sending_application,
            "kind": t.kind,
            "flavour": t.flavour,
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
        "backload": {"start": _iso(w.start), "end": _iso(w.cut), "messages": backload_total},
        "live": {"start": _iso(w.cut), "end": _iso(w.end), "messages": live_total,
                 "resends": sum(resends.values())},
        "events": {"first": _iso(first_event) if first_event is not None else None,
                   "last": _iso(last_event) if last_event is not None else None},
        "total": backload_total + live_total,
        "trusts": trusts,
        "files": dict(sorted(file_counts.items())),
    }


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.console import Console
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
        TextColumn("patients · {task.fields[messages]:,} messages"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = p.add_task("generate", total=total, messages=0)
    p.start()
    return p, task

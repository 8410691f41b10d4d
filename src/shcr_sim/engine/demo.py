"""``shcr-sim demo``: the whole job at a small size, in one command.

Calls the packages directly (feeds → engine → store), never the CLI. The working
folder is only ever cleared when it is empty, absent or a previous demo's (it
carries a marker file), so a mistyped ``--out`` cannot delete a user's files.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

MARKER = ".shcr-sim-demo"
RESENDS = 5


class DemoFolderError(ValueError):
    """``--out`` holds files the demo did not create."""


def prepare_out(out: Path) -> None:
    """Make ``out`` an empty demo folder, refusing one that holds someone else's files."""
    if out.exists() and not out.is_dir():
        raise DemoFolderError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DemoFolderError(
                f"--out {out} is not empty and is not a previous demo folder "
                f"(no {MARKER} file): choose an empty or new folder")
        for p in out.iterdir():  # a previous demo's folder: start afresh
            if p.name == MARKER:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by shcr-sim demo; the demo may clear this folder\n")


def _with_field(raw: str, n: int, value: str) -> str:
    """``raw`` with MSH-n replaced (MSH-1 is the field separator itself)."""
    sep = raw[3]
    head, _, rest = raw.partition("\r")
    fields = head.split(sep)
    fields[n - 1] = value
    return sep.join(fields) + ("\r" + rest if rest else "")


def write_resends_and_faults(data: Path, dest: Path) -> list[str]:
    """A small extra feed: a few resent messages (duplicates) and bad messages
    (dead letters), so every column of the reconciliation has data. Returns what
    each bad message is, for the narration."""
    from .inbound import iter_raw

    sources = sorted((data / "backload").rglob("*.hl7"))
    picked: list[str] = []
    base = ""  # an ADT message with an EVN segment, to spoil
    for f in sources:
        for raw in iter_raw(f):
            if not raw.startswith("MSH") or "\rPID" not in raw:
                continue
            if len(picked) < RESENDS:
                picked.append(raw)
            if not base and "\rEVN" in raw and f"{raw[3]}ADT{raw[4]}" in raw.split("\r", 1)[0]:
                base = raw
            if base and len(picked) >= RESENDS:
                break
        if base and len(picked) >= RESENDS:
            break
    if not picked:
        picked = [next(iter_raw(sources[0]))]
    base = base or picked[0]
    sep = base[3]

    def spoil_evn(seg: str) -> str:
        f = seg.split(sep)
        for n in (2, 6):  # EVN-6 wins over EVN-2 when valued: spoil both
            if n < len(f) and (n == 2 or f[n]):
                f[n] = "yesterday evening"
        return sep.join(f)

    bad_time = "\r".join(spoil_evn(s) if s.startswith("EVN") else s
                          for s in _with_field(base, 10, "DEMO-BADTIME").split("\r"))
    unknown = _with_field(_with_field(base, 4, "RZZ99"), 10, "DEMO-UNKNOWN")
    no_patient = "\r".join(s for s in _with_field(base, 10, "DEMO-NOPID").split("\r")
                           if not s.startswith("PID"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\r\n".join([*picked, bad_time, unknown, no_patient]) + "\r\n",
                    encoding="utf-8")
    return ["an event time that is not an HL7 timestamp", "an unknown sending facility",
            "no PID segment"]


def run_demo(out: Path, messages: int, seed: int, console: Console) -> int:
    """Returns the exit code: 0 when reconciliation and verify are both clean.

    Raises ``DemoFolderError`` (before touching anything) for an unsafe ``--out``.
    """
    from shcr_sim.feeds.generate import generate
    from shcr_sim.feeds.scenario import load_scenario
    from shcr_sim.store import SqliteStore
    from shcr_sim.store.record import PatientRecord, load_record, most_shared_patient

    from .deadletter import list_dead
    from .replay import Progress, replay
    from .trusts import resolve_trusts
    from .verify import verify
    from .views import (
        dead_letter_table,
        progress_table,
        reconciliation_table,
        record_view,
        verify_report,
    )

    t0 = time.monotonic()
    prepare_out(out)
    data, db = out / "extract", out / "shcr.db"
    console.rule(f"1. generate the default scenario (~{messages:,} messages)")
    manifest = generate(load_scenario(None), data, messages=messages, seed=seed)
    console.print(f"{manifest['total']:,} messages for {manifest['population']:,} patients "
                  f"at {len(manifest['trusts'])} trusts → {data}")
    extras = out / "extras" / "resends-and-faults.hl7"
    faults = write_resends_and_faults(data, extras)
    console.print(f"plus {extras.name}: {RESENDS} resent messages and "
                  f"{len(faults)} bad ones ({'; '.join(faults)})")
    live_files = sorted((data / "live").glob("*")) if (data / "live").is_dir() else []
    live_files.append(extras)
    trusts = resolve_trusts(None, [data])

    console.rule("2. replay the backload with live traffic interleaved")
    view = Live(console=console, refresh_per_second=4, transient=False)

    def on_progress(p: Progress) -> None:
        view.update(progress_table(p))

    with view:
        result = asyncio.run(replay(db, [data], live_files, trusts=trusts,
                                    on_progress=on_progress))
    console.print()
    console.print(reconciliation_table(result.reconciliation))

    dead, total_dead = asyncio.run(list_dead(db, 5))
    if dead:
        console.print(dead_letter_table(dead, total_dead))
        console.print(f"why entry {dead[0].seq} failed: {dead[0].reason}", markup=False)
        console.print(f"see it: shcr-sim deadletter show --db {db} {dead[0].seq}", markup=False)

    console.rule("3. verify every patient's journey independently")
    v = asyncio.run(verify(db, [data], live_files, trusts))
    console.print(verify_report(v))

    console.rule("4. one multi-trust patient's shared record")
    async def load() -> tuple[str | None, PatientRecord | None]:
        store = await SqliteStore.open_for_reading(db)
        try:
            nhs = await most_shared_patient(store)
            return nhs, (await load_record(store, nhs) if nhs else None)
        finally:
            await store.close()

    nhs, record = asyncio.run(load())
    if nhs and record is not None:
        console.print(record_view(record))
        console.print(f"see it again: shcr-sim record --db {db} {nhs}", markup=False)
    ok = result.reconciliation.ok and v.ok
    console.rule(f"demo {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:,.1f}s")
    return 0 if ok else 1

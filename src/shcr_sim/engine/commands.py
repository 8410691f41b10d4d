"""What the engine/store commands do: replay, verify, deadletter, record, demo.

Plain functions (no typer): ``cli.py`` parses the arguments and calls these, which
print with rich and return the exit code. A user error (a missing file or
database, a bad ``--trust``) raises ``CommandError`` before anything is created.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from .convert import TrustInfo
from .inbound import EXTRACT_SUFFIXES, discover

PLAIN_PROGRESS_EVERY_S = 30.0  # replay's progress line when its output is not a terminal


class CommandError(Exception):
    """A user error: printed as ``error: …`` with a non-zero exit, nothing changed."""


# -- checks that run before anything is opened -------------------------------------
def check_inputs(dirs: Sequence[Path], live: Sequence[Path]) -> None:
    """Every extract folder/file and live path exists and holds HL7 files."""
    if not dirs and not live:
        raise CommandError("give at least one extract folder or file (or --live FILE)")
    for d in dirs:
        p = Path(d)
        if not p.exists():
            raise CommandError(f"no such file or directory: {p}")
        if p.is_dir():
            root = p / "backload" if (p / "backload").is_dir() else p
            if not any(f.is_file() and f.suffix.lower() in EXTRACT_SUFFIXES
                       for f in root.rglob("*")):
                raise CommandError(
                    f"no HL7 files in {p} (looked for {', '.join(EXTRACT_SUFFIXES)})")
    for f in live:
        p = Path(f)
        if not p.exists():
            raise CommandError(f"no such file or directory: {p} (--live)")
        if p.is_dir() and not any(x.is_file() for x in p.rglob("*")):
            raise CommandError(f"no HL7 files in {p} (--live)")
    try:
        discover(list(dirs), list(live))  # opens each file once
    except OSError as exc:
        raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from None


def require_db(db: Path) -> None:
    """Commands that read a database never create one."""
    if not Path(db).is_file():
        raise CommandError(f"database not found: {db}")


def pick_trusts(
    db: Path, scenario: Path | None, trusts_file: Path | None, trust_specs: Sequence[str],
    dirs: Sequence[Path],
) -> list[TrustInfo] | None:
    """The trusts for a run: ``--trusts``/``--trust`` (added to those saved in the
    database), else ``--scenario``/manifest, else None (the database's own)."""
    from .trusts import TrustsError, merge_trusts, resolve_trusts, user_trusts
    from .verify import saved_trusts

    try:
        given = user_trusts(trusts_file, trust_specs)
    except TrustsError as exc:
        raise CommandError(str(exc)) from None
    base = resolve_trusts(scenario, dirs, default=False)
    if given:
        if base is None and Path(db).is_file():
            base = asyncio.run(saved_trusts(db))
        return merge_trusts(base, given)
    return base


def _scenario_exists(scenario: Path | None) -> None:
    if scenario is not None and not Path(scenario).is_file():
        raise CommandError(f"no such file or directory: {scenario} (--scenario)")


# -- replay ---------------------------------------------------------------------------
def replay_command(
    db: Path, dirs: Sequence[Path], live: Sequence[Path], *, scenario: Path | None,
    trusts_file: Path | None, trust_specs: Sequence[str], rate: float | None, validate: str,
    batch: int, as_json: bool, console: Console,
) -> int:
    """Replay extracts and live feeds into the record store; 0 when it reconciles."""
    from rich.live import Live

    from .replay import Progress, ReplayOptions, replay
    from .trusts import resolve_trusts
    from .verify import saved_trusts
    from .views import (
        progress_lines,
        progress_table,
        reconciliation_table,
        tally_warning,
        unknown_senders_warning,
    )

    if validate not in ("full", "sampled", "off"):
        raise CommandError("--validate must be full, sampled or off")
    check_inputs(dirs, live)
    _scenario_exists(scenario)
    trusts = pick_trusts(db, scenario, trusts_file, trust_specs, dirs)
    if trusts is None and (not db.exists() or asyncio.run(saved_trusts(db)) is None):
        trusts = resolve_trusts(None, [])  # first run without any trusts: the built-in ones
    show = not as_json and console.is_terminal
    live_view = Live(console=console, refresh_per_second=4) if show else None
    # not a terminal (a log file, a pipe): a line now and then instead of the table
    lines = progress_lines(PLAIN_PROGRESS_EVERY_S) if not show and not as_json else None

    def on_progress(p: Progress) -> None:
        if live_view is not None:
            live_view.update(progress_table(p))
        elif lines is not None:
            lines(p)

    async def go():  # noqa: ANN202
        return await replay(db, dirs, live, trusts=trusts, rate=rate, validate=validate,
                            options=ReplayOptions(batch=batch), on_progress=on_progress)

    if live_view is not None:
        with live_view:
            result = asyncio.run(go())
        console.print()
    else:
        result = asyncio.run(go())
    recon = result.reconciliation
    if as_json:
        out = recon.to_json()
        p = result.progress
        out["run"] = {"files": p.files_total, "files_skipped": p.files_skipped,
                      "read": p.read, "released": p.released, "elapsed_s": round(p.elapsed, 3),
                      "resources": result.resources}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        if not show:
            console.print(progress_table(result.progress))
        console.print(reconciliation_table(recon))
        console.print(f"record store: {result.resources:,} current resources")
    for warning in (unknown_senders_warning(recon), tally_warning(recon.tally_corrected)):
        if warning:
            sys.stderr.write(f"warning: {warning}\n")
    if recon.all_dead:
        sys.stderr.write("error: every accepted message was dead-lettered; nothing was applied\n")
    return 0 if recon.ok and not recon.all_dead else 1


# -- verify ---------------------------------------------------------------------------
VERIFY_PROGRESS_S = 10.0


def every_few_seconds(interval: float = VERIFY_PROGRESS_S) -> Callable[[str, int], None]:
    """A ``verify`` progress callback: one line on stderr per ``interval`` (none for a
    short run), so a long verify shows where it is without cluttering a quick one."""
    from .views import throttled

    def show(phase: str, count: int) -> None:
        unit = "resources" if phase == "compared" else "messages"
        sys.stderr.write(f"verify: {phase} {count:,} {unit}\n")
        sys.stderr.flush()

    return throttled(interval, show)


def verify_command(
    db: Path, dirs: Sequence[Path], live: Sequence[Path], *, trusts_file: Path | None,
    trust_specs: Sequence[str], as_json: bool, console: Console,
) -> int:
    """Rebuild every patient's journey independently; 0 when the store matches."""
    from .verify import StoreChanged, verify
    from .views import verify_report

    require_db(db)
    check_inputs(dirs, live)
    trusts = pick_trusts(db, None, trusts_file, trust_specs, [])
    try:
        result = asyncio.run(verify(db, dirs, live, trusts, progress=every_few_seconds()))
    except StoreChanged as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": result.ok, "messages": result.messages, "patients": result.patients,
            "resources": result.resources,
            "differences": [d.to_json() for d in result.differences],
        }, indent=2) + "\n")
    else:
        console.print(verify_report(result))
    return 0 if result.ok else 1


# -- dead letters ---------------------------------------------------------------------
def deadletter_list_command(db: Path, limit: int, as_json: bool, console: Console) -> int:
    from .deadletter import list_dead
    from .views import dead_letter_table

    require_db(db)
    rows, total = asyncio.run(list_dead(db, limit))
    if as_json:
        sys.stdout.write(json.dumps([
            {"id": r.seq, "lane": r.lane, "sender": [r.sender_app, r.sender_fac],
             "message_type": r.message_type, "control_id": r.control_id, "reason": r.reason,
             "source": r.source} for r in rows], indent=2) + "\n")
    else:
        console.print(dead_letter_table(rows, total))
    return 0


def deadletter_show_command(db: Path, seq: int, console: Console) -> int:
    from .deadletter import show
    from .views import dead_letter_panel

    require_db(db)
    row = asyncio.run(show(db, seq))
    if row is None:
        raise CommandError(f"no queue entry {seq}")
    if row.state != "dead-lettered":
        raise CommandError(f"entry {seq} is not dead-lettered (state: {row.state})")
    console.print(dead_letter_panel(row))
    return 0


def deadletter_retry_command(
    db: Path, seq: int | None, all_: bool, *, trusts_file: Path | None,
    trust_specs: Sequence[str], console: Console,
) -> int:
    """Retry one dead letter (or all); 1 when any is still dead-lettered."""
    from .deadletter import NotDeadLettered, retry

    if seq is None and not all_:
        raise CommandError("give a dead letter id or --all")
    require_db(db)
    trusts = pick_trusts(db, None, trusts_file, trust_specs, [])
    try:
        res = asyncio.run(retry(db, None if all_ else [seq], trusts))  # type: ignore[list-item]
    except NotDeadLettered as exc:
        raise CommandError(str(exc)) from None
    console.print(f"retried {res.retried}: applied {res.applied}, duplicate {res.duplicate}, "
                  f"still dead-lettered {len(res.still_dead)}", markup=False)
    for s, reason in res.still_dead[:50]:
        console.print(f"  {s}: {reason}", markup=False)
    return 1 if res.still_dead else 0


# -- record ---------------------------------------------------------------------------
def record_command(
    db: Path, nhs_number: str | None, mrn: str | None, as_json: bool, console: Console,
) -> int:
    """A patient's shared record by NHS number or by ``ODS:MRN``; 1 when not found."""
    from shcr_sim.nhs_number import is_valid as valid_nhs_number
    from shcr_sim.store import SqliteStore
    from shcr_sim.store.record import load_record, load_record_by_mrn

    from .views import record_view

    if (nhs_number is None) == (mrn is None):
        raise CommandError("give an NHS number or --mrn ODS:MRN (one of them)")
    if nhs_number is not None:
        nhs_number = nhs_number.replace(" ", "").replace("-", "")
        if not valid_nhs_number(nhs_number):
            raise CommandError(f"not a valid NHS number: {nhs_number!r} "
                               "(10 digits with a modulus-11 check digit)")
    elif ":" not in mrn or not all(x.strip() for x in mrn.split(":", 1)):  # type: ignore[union-attr]
        raise CommandError(f"--mrn {mrn!r}: expected ODS:MRN, e.g. RXX01:M123")
    require_db(db)

    async def go():  # noqa: ANN202
        store = await SqliteStore.open_for_reading(db)
        try:
            if nhs_number is not None:
                return await load_record(store, nhs_number)
            ods, local = mrn.split(":", 1)  # type: ignore[union-attr]
            return await load_record_by_mrn(store, ods.strip(), local.strip())
        finally:
            await store.close()

    rec = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps(rec.bundle(), indent=2) + "\n")
    else:
        console.print(record_view(rec))
    return 0 if rec.patients else 1

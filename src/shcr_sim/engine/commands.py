"""The engine/store commands: replay, verify, deadletter, record, demo.

Registered on the main typer app by ``cli.py``; heavy imports happen inside each
command so ``shcr-sim --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

deadletter_app = typer.Typer(
    help="Dead letters: see why a message failed and retry it after a fix.",
    no_args_is_help=True,
)

DbOpt = Annotated[
    Path, typer.Option("--db", help="SQLite file holding the queue and the record store.")
]
DirsArg = Annotated[list[Path], typer.Argument(help="Extract folders (or files).")]
LiveOpt = Annotated[list[Path] | None, typer.Option("--live", help="Live feed file(s).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _console():  # noqa: ANN202 - rich is imported lazily
    from rich.console import Console

    return Console()


def replay(
    dirs: DirsArg,
    db: DbOpt,
    live: LiveOpt = None,
    scenario: Annotated[Path | None, typer.Option(help="Scenario TOML (trusts).")] = None,
    rate: Annotated[float | None, typer.Option(help="Max messages/s to the store.")] = None,
    validate: Annotated[str, typer.Option("--validate", help="full | sampled | off")] = "off",
    batch: Annotated[int, typer.Option("--batch", help="Release batch size.")] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Replay extracts (and live feeds) through the engine into the record store.

    Resumable: run the same command again after a crash and it carries on.
    """
    from rich.live import Live

    from .replay import Progress, ReplayOptions
    from .replay import replay as run_replay
    from .trusts import resolve_trusts
    from .verify import saved_trusts
    from .views import progress_table, reconciliation_table

    if validate not in ("full", "sampled", "off"):
        raise typer.BadParameter("--validate must be full, sampled or off")
    trusts = resolve_trusts(scenario, dirs, default=False)
    if trusts is None and (not db.exists() or asyncio.run(saved_trusts(db)) is None):
        trusts = resolve_trusts(None, [])  # first run without a scenario: the built-in one
    console = _console()
    show = not as_json and console.is_terminal
    live_view = Live(console=console, refresh_per_second=4) if show else None

    def on_progress(p: Progress) -> None:
        if live_view is not None:
            live_view.update(progress_table(p))

    async def go():  # noqa: ANN202
        return await run_replay(db, dirs, live or [], trusts=trusts, rate=rate, validate=validate,
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
    if not recon.ok:
        raise typer.Exit(1)


def verify(
    dirs: DirsArg,
    db: DbOpt,
    live: LiveOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild every patient's journey independently and compare it with the store."""
    from .verify import verify as run_verify
    from .views import verify_report

    result = asyncio.run(run_verify(db, dirs, live or []))
    if as_json:
        sys.stdout.write(json.dumps({
            "ok": result.ok, "messages": result.messages, "patients": result.patients,
            "resources": result.resources,
            "differences": [d.to_json() for d in result.differences],
        }, indent=2) + "\n")
    else:
        _console().print(verify_report(result))
    if not result.ok:
        raise typer.Exit(1)


@deadletter_app.command("list")
def deadletter_list(
    db: DbOpt,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List dead-lettered messages with the reason each failed."""
    from .deadletter import list_dead
    from .views import dead_letter_table

    rows = asyncio.run(list_dead(db, limit))
    if as_json:
        sys.stdout.write(json.dumps([
            {"id": r.seq, "lane": r.lane, "sender": [r.sender_app, r.sender_fac],
             "message_type": r.message_type, "control_id": r.control_id, "reason": r.reason,
             "source": r.source} for r in rows], indent=2) + "\n")
    else:
        _console().print(dead_letter_table(rows))


@deadletter_app.command("show")
def deadletter_show(seq: Annotated[int, typer.Argument(help="Dead letter id.")],
                    db: DbOpt) -> None:
    """Show one dead letter: why it failed, where it came from, its text."""
    from .deadletter import show
    from .views import dead_letter_panel

    row = asyncio.run(show(db, seq))
    if row is None:
        typer.echo(f"no queue entry {seq}", err=True)
        raise typer.Exit(1)
    _console().print(dead_letter_panel(row))


@deadletter_app.command("retry")
def deadletter_retry(
    db: DbOpt,
    seq: Annotated[int | None, typer.Argument(help="Dead letter id (or use --all).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter.")] = False,
) -> None:
    """Re-run conversion with the current mappings and apply (older never overwrites)."""
    from .deadletter import retry

    if seq is None and not all_:
        raise typer.BadParameter("give a dead letter id or --all")
    res = asyncio.run(retry(db, None if all_ else [seq]))  # type: ignore[list-item]
    typer.echo(f"retried {res.retried}: applied {res.applied}, duplicate {res.duplicate}, "
               f"still dead-lettered {len(res.still_dead)}")
    for s, reason in res.still_dead[:50]:
        typer.echo(f"  {s}: {reason}")
    if res.still_dead:
        raise typer.Exit(1)


def record(
    nhs_number: Annotated[str, typer.Argument(help="NHS number (10 digits).")],
    db: DbOpt,
    as_json: JsonOpt = False,
) -> None:
    """Show a patient's shared record: demographics, identifiers, timeline."""
    from shcr_sim.store import SqliteStore
    from shcr_sim.store.record import load_record

    from .views import record_view

    async def go():  # noqa: ANN202
        store = await SqliteStore.open(db)
        try:
            return await load_record(store, nhs_number.replace(" ", ""))
        finally:
            await store.close()

    rec = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps(rec.bundle(), indent=2) + "\n")
    else:
        _console().print(record_view(rec))
    if not rec.patients:
        raise typer.Exit(1)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Working folder.")] = Path("demo-out"),
    messages: Annotated[int, typer.Option("--messages", help="Approximate message count.")] = 4000,
    seed: Annotated[int, typer.Option("--seed")] = 1,
) -> None:
    """Generate the default scenario small, replay it with live traffic, verify it,
    show the reconciliation and one multi-trust patient's record."""
    from .demo import run_demo

    raise typer.Exit(run_demo(out, messages, seed, _console()))


def register(app: typer.Typer) -> None:
    app.command()(replay)
    app.command()(verify)
    app.command()(record)
    app.command()(demo)
    app.add_typer(deadletter_app, name="deadletter")

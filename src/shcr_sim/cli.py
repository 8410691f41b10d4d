"""Command-line entry points. Thin: parse arguments, call into the packages, print.

Each section belongs to one package; commands import their package lazily so
``shcr-sim --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="shcr-sim",
    help="Integration-engine simulator for NHS shared care records.",
    no_args_is_help=True,
    add_completion=False,
)

# --- feeds: simulated trusts -------------------------------------------------


@app.command()
def generate(
    out: str | None = typer.Option(None, "--out", help="Directory for backload/, live/, "
                                   "manifest.json"),
    scenario: str | None = typer.Option(None, "--scenario", help="Scenario TOML file"),
    messages: int | None = typer.Option(None, "--messages", min=1, help="About N messages"),
    seed: int | None = typer.Option(None, "--seed", help="Override the scenario's seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="No progress bar or progress lines"),
    print_scenario: bool = typer.Option(False, "--print-scenario",
                                        help="Print the built-in scenario TOML and exit"),
) -> None:
    """Simulate the trusts: write historic backload extracts, live streams and a manifest."""
    import time
    from pathlib import Path

    from .feeds.generate import generate as run
    from .feeds.scenario import ScenarioError, default_scenario_text, load_scenario

    if print_scenario:
        typer.echo(default_scenario_text(), nl=False)
        return
    if out is None:
        typer.echo("error: --out DIR is required", err=True)
        raise typer.Exit(2)
    try:
        sc = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    started = time.perf_counter()
    manifest = run(sc, Path(out), messages=messages, seed=seed, progress=not quiet)
    took = time.perf_counter() - started
    typer.echo(
        f"{manifest['total']:,} messages ({manifest['backload']['messages']:,} backload, "
        f"{manifest['live']['messages']:,} live) for {manifest['population']:,} patients "
        f"at {len(manifest['trusts'])} trusts in {took:.1f}s → {out}"
    )


# --- hl7: reading extract files -------------------------------------------------


@app.command()
def inspect(
    path: str = typer.Argument(..., help="An HL7 file: plain, MLLP-framed or FHS/BHS batch"),
    index: int = typer.Option(0, "--index", "-i", min=0, help="First message (0-based)"),
    count: int = typer.Option(1, "--count", "-n", min=1, help="How many messages"),
) -> None:
    """Show messages from an HL7 file field by field, with paths for Message.get."""
    import itertools

    from .hl7 import HL7Error, iter_messages, parse
    from .hl7.inspect import describe

    for raw in itertools.islice(iter_messages(path), index, index + count):
        typer.echo(f"#{raw.index} at byte {raw.offset}: ", nl=False)
        try:
            typer.echo("\n".join(describe(parse(raw.text))))
        except HL7Error as exc:
            typer.echo(f"not parseable: {exc}")


# --- fhir: conversion and the mapping harness ----------------------------------


def _scenario_trusts() -> dict[str, tuple[str, str]]:
    """ODS → (flavour, name) of the built-in scenario's trusts: how fhir commands pick a mapping."""
    from .feeds.scenario import load_scenario

    return {t.ods: (t.flavour, t.name) for t in load_scenario(None).trusts}


@app.command()
def convert(
    file: str = typer.Argument(..., help="HL7 file: one or more messages (plain, MLLP, batch)"),
    mapping: str | None = typer.Option(
        None, "--mapping", help="Flavour (itk-acute, classic-pas, mh-epr) or mapping TOML; "
        "default: the sending trust's flavour in the default scenario, else itk-acute"),
    validate: bool = typer.Option(True, "--validate/--no-validate",
                                  help="Validate each Bundle with fhir.resources"),
) -> None:
    """Convert HL7 v2 messages to FHIR R4 Bundles (one JSON per line; pretty for one)."""
    from .fhir.commands import convert_file

    trusts = None if mapping else _scenario_trusts()
    raise typer.Exit(convert_file(file, mapping, validate, trusts=trusts))


mappings_app = typer.Typer(help="Interface-mapping tests and field coverage.",
                           no_args_is_help=True)
app.add_typer(mappings_app, name="mappings")


@mappings_app.command("test")
def mappings_test(
    directory: str = typer.Argument(..., help="Folder of cases: name.hl7 + name.json"),
    junit: str | None = typer.Option(None, "--junit", help="Write JUnit XML here"),
    mapping: str | None = typer.Option(None, "--mapping", help="Mapping for cases without one"),
    strict: bool = typer.Option(False, "--strict",
                                help="Also require hl7apy strict structure validation"),
) -> None:
    """Run mapping cases; a pass/fail table and diffs by FHIR path; exit 1 on any failure."""
    from rich.console import Console

    from .fhir.commands import run_tests

    raise typer.Exit(run_tests(directory, junit, mapping, Console(), strict, _scenario_trusts()))


@mappings_app.command("coverage")
def mappings_coverage(
    paths: list[str] = typer.Argument(..., help="HL7 files or folders"),  # noqa: B008
    mapping: str | None = typer.Option(None, "--mapping", help="Mapping to use for every file"),
    show_all: bool = typer.Option(False, "--all", help="List every field, not only dropped ones"),
) -> None:
    """Which HL7 fields carried data that no mapping read (per field, with counts)."""
    from pathlib import Path

    from rich.console import Console

    from .fhir.commands import run_coverage

    raise typer.Exit(run_coverage([Path(p) for p in paths], mapping, show_all, Console(),
                                  None if mapping else _scenario_trusts()))


# --- engine and store: replay, verify, dead letters, the record ---------------
deadletter_app = typer.Typer(
    help="Dead letters: see why a message failed and retry it after a fix.",
    no_args_is_help=True,
)
app.add_typer(deadletter_app, name="deadletter")

_DB_HELP = "SQLite file holding the queue and the record store"
_TRUSTS_HELP = "TOML file of trusts (one table each: ods, sending_application, flavour)"
_TRUST_HELP = "A trust as ODS=APP:flavour, e.g. RXX01=PAS:itk-acute (repeatable)"


def _engine(fn, *args, **kwargs) -> None:  # noqa: ANN001
    """Run an engine command: its exit code, or 'error: …' and exit 2 for a user error."""
    from rich.console import Console

    from .engine.commands import CommandError
    from .engine.demo import DemoFolderError
    from .store.base import NotAStore

    try:
        code = fn(*args, console=Console(), **kwargs)
    except (CommandError, DemoFolderError, NotAStore) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def replay(
    dirs: list[str] = typer.Argument(None, help="Extract folders (or files)"),  # noqa: B008
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    live: list[str] = typer.Option(None, "--live", help="Live feed file(s)"),  # noqa: B008
    scenario: str | None = typer.Option(None, "--scenario", help="Scenario TOML (its trusts)"),
    trusts: str | None = typer.Option(None, "--trusts", help=_TRUSTS_HELP),
    trust: list[str] = typer.Option(None, "--trust", help=_TRUST_HELP),  # noqa: B008
    rate: float | None = typer.Option(None, "--rate", help="Max messages/s to the store"),
    validate: str = typer.Option("off", "--validate", help="full | sampled | off"),
    batch: int = typer.Option(1000, "--batch", min=1, help="Release batch size"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
) -> None:
    """Replay extracts (and live feeds) through the engine into the record store.

    Resumable: run the same command again after a crash and it carries on.
    """
    from pathlib import Path

    from .engine.commands import replay_command

    _engine(replay_command, Path(db), [Path(d) for d in dirs or []],
            [Path(f) for f in live or []], scenario=Path(scenario) if scenario else None,
            trusts_file=Path(trusts) if trusts else None, trust_specs=trust or [], rate=rate,
            validate=validate, batch=batch, as_json=as_json)


@app.command()
def verify(
    dirs: list[str] = typer.Argument(None, help="Extract folders (or files)"),  # noqa: B008
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    live: list[str] = typer.Option(None, "--live", help="Live feed file(s)"),  # noqa: B008
    trusts: str | None = typer.Option(None, "--trusts", help=_TRUSTS_HELP),
    trust: list[str] = typer.Option(None, "--trust", help=_TRUST_HELP),  # noqa: B008
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
) -> None:
    """Rebuild every patient's journey independently and compare it with the store."""
    from pathlib import Path

    from .engine.commands import verify_command

    _engine(verify_command, Path(db), [Path(d) for d in dirs or []],
            [Path(f) for f in live or []], trusts_file=Path(trusts) if trusts else None,
            trust_specs=trust or [], as_json=as_json)


@deadletter_app.command("list")
def deadletter_list(
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    limit: int = typer.Option(100, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """List dead-lettered messages with the reason each failed."""
    from pathlib import Path

    from .engine.commands import deadletter_list_command

    _engine(deadletter_list_command, Path(db), limit, as_json)


@deadletter_app.command("show")
def deadletter_show(
    seq: int = typer.Argument(..., help="Dead letter id"),
    db: str = typer.Option(..., "--db", help=_DB_HELP),
) -> None:
    """Show one dead letter: why it failed, where it came from, its text."""
    from pathlib import Path

    from .engine.commands import deadletter_show_command

    _engine(deadletter_show_command, Path(db), seq)


@deadletter_app.command("retry")
def deadletter_retry(
    seq: int | None = typer.Argument(None, help="Dead letter id (or use --all)"),
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    all_: bool = typer.Option(False, "--all", help="Retry every dead letter"),
    trusts: str | None = typer.Option(None, "--trusts", help=_TRUSTS_HELP),
    trust: list[str] = typer.Option(None, "--trust", help=_TRUST_HELP),  # noqa: B008
) -> None:
    """Re-read keys, re-run conversion with the current mappings and apply (older never
    overwrites newer). Add a missing trust with --trusts/--trust."""
    from pathlib import Path

    from .engine.commands import deadletter_retry_command

    _engine(deadletter_retry_command, Path(db), seq, all_,
            trusts_file=Path(trusts) if trusts else None, trust_specs=trust or [])


@app.command()
def record(
    nhs_number: str | None = typer.Argument(None, help="NHS number (10 digits)"),
    db: str = typer.Option(..., "--db", help=_DB_HELP),
    mrn: str | None = typer.Option(None, "--mrn", help="Look up by a trust's MRN: ODS:MRN"),
    as_json: bool = typer.Option(False, "--json", help="Print the FHIR resources as JSON"),
) -> None:
    """Show a patient's shared record: demographics, identifiers, timeline."""
    from pathlib import Path

    from .engine.commands import record_command

    _engine(record_command, Path(db), nhs_number, mrn, as_json)


@app.command()
def demo(
    out: str = typer.Option("demo-out", "--out", help="Working folder (empty, new or a "
                            "previous demo's)"),
    messages: int = typer.Option(4000, "--messages", min=100, help="Approximate message count"),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """Generate the default scenario small, replay it with live traffic, verify it,
    show the reconciliation and one multi-trust patient's record."""
    from pathlib import Path

    from .engine.demo import run_demo

    _engine(run_demo, Path(out), messages, seed)

# --- live: MLLP, monitoring, dashboard -----------------------------------------


@app.command()
def serve(
    db: str = typer.Option(..., "--db", help="SQLite file holding the queue and the record"),
    scenario: str | None = typer.Option(None, "--scenario", help="Scenario TOML (the trusts)"),
    trusts_file: str | None = typer.Option(None, "--trusts", help=_TRUSTS_HELP),
    trust: list[str] = typer.Option(None, "--trust", help=_TRUST_HELP),  # noqa: B008
    mllp_port: int = typer.Option(2575, "--mllp-port", help="MLLP listener port"),
    http_port: int = typer.Option(8080, "--http-port", help="Dashboard, /status, /metrics"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    silent_after: float = typer.Option(30.0, "--silent-after", help="Heartbeat alert (s)"),
    ack_mode: str = typer.Option("auto", "--ack-mode", help="auto | original | enhanced"),
) -> None:
    """Run the engine with its MLLP listener, live release and the dashboard (Ctrl-C stops)."""
    import asyncio
    from pathlib import Path

    from .engine.commands import CommandError, pick_trusts
    from .engine.live import LiveOptions, serve_forever
    from .monitor.metrics import MonitorConfig

    if ack_mode not in ("auto", "original", "enhanced"):
        raise typer.BadParameter("--ack-mode must be auto, original or enhanced")
    try:
        trusts = pick_trusts(Path(db), Path(scenario) if scenario else None,
                             Path(trusts_file) if trusts_file else None, trust or [], [])
    except CommandError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    opts = LiveOptions(mllp_host=host, mllp_port=mllp_port, http_host=host, http_port=http_port,
                       ack_mode=ack_mode, monitor=MonitorConfig(silent_after=silent_after))

    def started(live) -> None:  # noqa: ANN001
        who = ", ".join(f"{t.ods}/{t.app}" for t in trusts) if trusts else "trusts saved in db"
        typer.echo(f"MLLP on {host}:{live.mllp_port} (senders: {who})")
        typer.echo(f"dashboard http://{host}:{live.http_port}/  ·  /status  ·  /metrics")

    asyncio.run(serve_forever(Path(db), trusts, opts, started))


@app.command()
def monitor(
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="The engine's HTTP address"),
    interval: float = typer.Option(1.0, "--interval", help="Seconds between polls"),
    once: bool = typer.Option(False, "--once", help="Print one frame and exit"),
) -> None:
    """Watch a running engine in the terminal (the dashboard, polled from /status)."""
    from .monitor.terminal import watch

    raise typer.Exit(watch(url, interval, once))


@app.command()
def run(
    scenario: str | None = typer.Argument(None, help="Scenario TOML (default: built-in)"),
    out: str = typer.Option("shcr-run", "--out", help="Data folder (generated if empty)"),
    db: str | None = typer.Option(None, "--db", help="Engine database (default OUT/engine.db)"),
    messages: int = typer.Option(20_000, "--messages", min=1, help="About N messages"),
    live_hours: float | None = typer.Option(None, "--live-hours", help="Hours of live feed"),
    live_rate: float | None = typer.Option(None, "--live-rate",
                                           help="Live messages/s, all trusts \\[run].rate (20)"),
    pattern: str | None = typer.Option(None, "--pattern", help="steady | bursty \\[run]"),
    heartbeat: float | None = typer.Option(None, "--heartbeat",
                                           help="Heartbeat interval s \\[run] (1)"),
    silent_after: float | None = typer.Option(None, "--silent-after",
                                              help="Heartbeat alert s \\[run] (5)"),
    mllp_port: int = typer.Option(0, "--mllp-port", help="MLLP port (0 = any free port)"),
    http_port: int = typer.Option(8080, "--http-port", help="Dashboard port (0 = any)"),
    linger: float = typer.Option(0.0, "--linger", help="Keep the dashboard up N s after"),
    keep: bool = typer.Option(False, "--keep", help="Keep an existing database (resume)"),
    backload_batch: int | None = typer.Option(
        None, "--backload-batch", min=1,
        help="Backload release batch \\[run] (500; smaller: lower live p99)"),
    backload_workers: int | None = typer.Option(
        None, "--backload-workers", min=0,
        help="Backload conversion worker processes (default: cores - 2, a core each for "
             "the replay and the live side)"),
    store_outage: float | None = typer.Option(None, "--store-outage",
                                              help="Store down for N s \\[faults]"),
    store_outage_at: float | None = typer.Option(None, "--store-outage-at",
                                                 help="...starting at s (5)"),
    silent_feed: str | None = typer.Option(None, "--silent-feed",
                                           help="ODS of a feed that goes quiet \\[faults]"),
    silent_at: float | None = typer.Option(None, "--silent-at", help="...starting at s (3)"),
    silent_for: float | None = typer.Option(None, "--silent-for",
                                            help="...for s (0: 3x threshold)"),
    malformed_burst: int | None = typer.Option(None, "--malformed-burst",
                                               help="N malformed messages \\[faults]"),
    ack_delay: float | None = typer.Option(None, "--ack-delay", help="Hold ACKs back N s"),
    slow_acks: float | None = typer.Option(None, "--slow-acks",
                                           help="...for this share of messages (0.2)"),
    drop_acks: float | None = typer.Option(None, "--drop-acks", help="Share of ACKs never sent"),
    resets: float | None = typer.Option(None, "--resets",
                                        help="Share of ACKs replaced by a reset"),
    mid_frame_resets: float | None = typer.Option(
        None, "--mid-frame-resets", help="Chance per read of a reset inside a frame"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Backload replay and live MLLP feeds at once, with live latency and optional faults.

    The scenario's \\[run] and \\[faults] tables set the defaults; flags override them.
    """
    import asyncio
    import json
    from pathlib import Path

    from .engine.liverun import progress_line, run_options, run_simulation, summary
    from .engine.views import tally_warning
    from .feeds.scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(scenario)
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if pattern not in (None, "steady", "bursty"):
        raise typer.BadParameter("--pattern must be steady or bursty")
    if silent_feed and silent_feed not in {t.ods for t in sc.trusts}:
        raise typer.BadParameter(f"--silent-feed {silent_feed}: no trust has that ODS code")
    out_dir = Path(out)
    db_path = Path(db) if db else out_dir / "engine.db"
    if not keep:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
    opts = run_options(
        sc, out_dir, db=db_path, messages=messages, live_hours=live_hours, live_rate=live_rate,
        pattern=pattern, heartbeat_interval=heartbeat, silent_after=silent_after,
        mllp_port=mllp_port, http_port=http_port, linger=linger, backload_batch=backload_batch,
        backload_workers=backload_workers,
        store_outage=store_outage, store_outage_at=store_outage_at, silent_feed=silent_feed,
        silent_at=silent_at, silent_for=silent_for, malformed_burst=malformed_burst,
        ack_delay=ack_delay, slow_acks=slow_acks, drop_acks=drop_acks, resets=resets,
        mid_frame_resets=mid_frame_resets)

    def ready(live) -> None:  # noqa: ANN001
        if not as_json:
            typer.echo(f"live feeds → MLLP 127.0.0.1:{live.mllp_port}; dashboard "
                       f"http://127.0.0.1:{live.http_port}/")

    def report(status: dict) -> None:
        if not as_json:
            typer.echo(progress_line(status))

    result = asyncio.run(run_simulation(sc, opts, on_report=report, on_ready=ready))
    data = summary(result)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        rec, d, lat = data["reconciliation"], data["live_delivery"], data["live_latency_ms"]
        typer.echo(f"reconciliation: accepted {rec['accepted']:,} = applied {rec['applied']:,}"
                   f" + duplicate {rec['duplicate']:,} + dead-lettered {rec['dead_lettered']:,}"
                   f" (pending {rec['pending']:,}) → "
                   f"{'OK' if data['reconciliation_ok'] else 'FAIL'}")
        typer.echo(f"live delivery: {d['distinct']:,} distinct sent, {d['queued_once']:,} queued "
                   f"once, lost {d['lost']}, doubled {d['doubled']}, resends absorbed "
                   f"{d['duplicates_absorbed']}, dead-lettered {d['dead_lettered']}")
        typer.echo(f"live feed-to-store latency: p50 {lat['p50']} ms, p90 {lat['p90']} ms, "
                   f"p99 {lat['p99']} ms (last {lat['window']:,} of {lat['count']:,} messages)")
        dur = data["live_latency_during_backload_ms"]
        if dur.get("count"):
            typer.echo(f"while the backload drained ({dur['drain_s']:,} s): {dur['count']:,} live"
                       f" messages, queued → applied p50 {dur['p50']} ms, p99 {dur['p99']} ms, "
                       f"max {dur['max']} ms, {dur['over_1s']} over 1 s")
        for e in data["alert_events"]:
            typer.echo(f"alert {e['state']}: {e['message']}")
    if data["queue_tally_corrected"]:
        typer.echo(f"warning: {tally_warning(data['queue_tally_corrected'])}", err=True)
    raise typer.Exit(0 if data["ok"] else 1)


if __name__ == "__main__":  # pragma: no cover
    app()

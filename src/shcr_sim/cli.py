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
    out: str = typer.Option(..., "--out", help="Directory for backload/, live/, manifest.json"),
    scenario: str | None = typer.Option(None, "--scenario", help="Scenario TOML file"),
    messages: int | None = typer.Option(None, "--messages", min=1, help="About N messages"),
    seed: int | None = typer.Option(None, "--seed", help="Override the scenario's seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar"),
) -> None:
    """Simulate the trusts: write historic backload extracts, live streams and a manifest."""
    import time
    from pathlib import Path

    from .feeds.generate import generate as run
    from .feeds.scenario import ScenarioError, load_scenario

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


# --- fhir: conversion and the mapping harness ----------------------------------


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

    raise typer.Exit(convert_file(file, mapping, validate))


mappings_app = typer.Typer(help="Interface-mapping tests and field coverage.",
                           no_args_is_help=True)
app.add_typer(mappings_app, name="mappings")


@mappings_app.command("test")
def mappings_test(
    directory: str = typer.Argument(..., help="Folder of cases: name.hl7 + name.json"),
    junit: str | None = typer.Option(None, "--junit", help="Write JUnit XML here"),
    mapping: str | None = typer.Option(None, "--mapping", help="Mapping for cases without one"),
) -> None:
    """Run mapping cases; a pass/fail table and diffs by FHIR path; exit 1 on any failure."""
    from rich.console import Console

    from .fhir.commands import run_tests

    raise typer.Exit(run_tests(directory, junit, mapping, Console()))


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

    raise typer.Exit(run_coverage([Path(p) for p in paths], mapping, show_all, Console()))


# --- engine and store: replay, verify, dead letters, the record ---------------
from shcr_sim.engine.commands import register as _register_engine  # noqa: E402

_register_engine(app)

# --- live: MLLP, monitoring, dashboard -----------------------------------------


if __name__ == "__main__":  # pragma: no cover
    app()

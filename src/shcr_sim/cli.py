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

# --- engine and store: replay, verify, dead letters, the record ---------------
from shcr_sim.engine.commands import register as _register_engine  # noqa: E402

_register_engine(app)

# --- live: MLLP, monitoring, dashboard -----------------------------------------


if __name__ == "__main__":  # pragma: no cover
    app()

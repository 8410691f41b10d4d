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

# --- fhir: conversion and the mapping harness ----------------------------------

# --- engine and store: replay, verify, dead letters, the record ---------------

# --- live: MLLP, monitoring, dashboard -----------------------------------------


if __name__ == "__main__":  # pragma: no cover
    app()

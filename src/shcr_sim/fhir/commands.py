"""What the ``convert`` and ``mappings`` commands do (cli.py only parses arguments)."""

from __future__ import annotations

import os
import sys
from itertools import chain, islice
from pathlib import Path
from typing import TextIO

import orjson

from ..hl7 import HL7Error, parse
from .convert import convert_message
from .errors import ConversionError
from .reading import read_messages
from .trusts import TrustDirectory, guess_note, mapping_for_message
from .validate import ValidationError, validate_bundle


def convert_file(path: str | Path, mapping: str | None = None, validate: bool = True,
                 out: TextIO | None = None, err: TextIO | None = None,
                 trusts: TrustDirectory | None = None) -> int:
    """Print one Bundle per message (pretty when there is one); 1 if any message failed.

    ``trusts`` (ODS → (flavour, name)) picks each message's mapping when there is
    no ``mapping``; a trust it does not know gets itk-acute and a note on ``err``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    guessed: set[str] = set()

    def on_guess(ods: str, flavour: str) -> None:
        if ods not in guessed:
            guessed.add(ods)
            err.write(guess_note(ods, flavour) + "\n")
    problem = check_mapping(mapping)
    if problem:
        err.write(f"error: {problem}\n")
        return 2
    try:
        stream = iter(read_messages(path))
        head = list(islice(stream, 2))  # one message: pretty; more: one per line (streamed)
    except OSError as exc:
        err.write(f"error: {exc}\n")
        return 2
    if not head:
        err.write(f"error: {path}: no HL7 messages found\n")
        return 1
    option = orjson.OPT_INDENT_2 if len(head) == 1 else 0
    failed = 0
    try:
        for index, text in enumerate(chain(head, stream), 1):
            try:
                msg = parse(text)
                conv = convert_message(msg, mapping_for_message(msg, mapping, trusts, on_guess))
                if validate:
                    validate_bundle(conv.bundle)
            except (HL7Error, ConversionError) as exc:
                failed += 1
                err.write(f"error: message {index}: {exc}\n")
                continue
            except ValidationError as exc:
                failed += 1
                err.write(f"error: message {index} ({msg.control_id}): invalid FHIR: {exc}\n")
                continue
            out.write(orjson.dumps(conv.bundle, option=option).decode("utf-8") + "\n")
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        _silence(out)
    return 1 if failed else 0


def _silence(out: TextIO) -> None:
    """Point a closed stdout at /dev/null, so the exit-time flush raises nothing."""
    try:
        fd = out.fileno()
    except (OSError, ValueError):
        return  # not a real file (a test's buffer): nothing flushes at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def check_mapping(mapping: str | None) -> str:
    """'' when the --mapping option names a loadable mapping (or is absent), else why not."""
    if not mapping:
        return ""
    from .config import load_mapping

    try:
        load_mapping(mapping)
    except (OSError, ValueError) as exc:
        return str(exc)
    return ""


def run_tests(directory: str | Path, junit: str | Path | None, mapping: str | None,
              console, strict: bool = False, trusts: TrustDirectory | None = None) -> int:
    from .harness import discover, render, run_case, write_junit

    problem = check_mapping(mapping)
    if problem:
        console.print(f"[red]error: {problem}[/red]")
        return 2
    cases = discover(directory)
    if not cases:
        console.print(f"[red]no cases (*.hl7 + *.json) under {directory}[/red]")
        return 1
    results = [run_case(c, mapping, strict, trusts) for c in cases]
    render(results, console)
    if junit:
        write_junit(results, junit)
    return 0 if all(r.passed for r in results) else 1


def run_coverage(paths: list[Path], mapping: str | None, show_all: bool, console,
                 trusts: TrustDirectory | None = None) -> int:
    from .coverage import CoverageReport, add_message, render

    problem = check_mapping(mapping)
    if problem:
        console.print(f"[red]error: {problem}[/red]")
        return 2
    report = CoverageReport()
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in (".hl7", ".txt",
                                                                                 ".er7")))
        else:
            files.append(p)
    guessed: set[str] = set()

    def on_guess(ods: str, flavour: str) -> None:
        if ods not in guessed:
            guessed.add(ods)
            console.print(guess_note(ods, flavour), markup=False, highlight=False)

    for f in files:
        for text in read_messages(f):
            add_message(report, text, lambda m: mapping_for_message(m, mapping, trusts, on_guess))
    render(report, console, show_all=show_all)
    return 0 if report.messages else 1

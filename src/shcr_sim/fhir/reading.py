"""Read the messages of an HL7 file (plain, MLLP-framed or FHS/BHS batch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def read_messages(path: str | Path) -> Iterator[str]:
    """Each message's text, streamed (the codec's reader when present)."""
    try:
        from ..hl7.files import iter_messages
    except ImportError:  # pragma: no cover - the codec ships files.py
        yield from _split(Path(path).read_text(encoding="utf-8-sig"))
        return
    for raw in iter_messages(path):
        yield raw.text


def _split(text: str) -> Iterator[str]:
    current: list[str] = []
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        if line.startswith("MSH") and current:
            yield "\r".join(current)
            current = []
        if line.strip():
            current.append(line)
    if current:
        yield "\r".join(current)

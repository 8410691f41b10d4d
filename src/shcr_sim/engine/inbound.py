"""File inbound: find extract files, read them as messages, remember per-file progress.

A file is identified by its absolute path and a hash of its content, so a resumed
replay skips the messages it already accepted (progress is committed with each
batch) and a file that was completely accepted is not read again. This is how a
resumed replay reconciles: every message of a file is accepted exactly once.
A file delivered again under another name (or changed) is read again: its
messages land as duplicates (same MSH-3/MSH-4/MSH-10) and are counted as such.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shcr_sim.hl7.files import iter_messages

EXTRACT_SUFFIXES = (".hl7", ".txt", ".er7", ".mllp", ".dat", ".batch")


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    lane: str  # "backload" | "live"
    key: str  # content hash

    @property
    def name(self) -> str:
        return str(self.path)


def file_key(path: Path) -> str:
    h = hashlib.blake2b(str(path.resolve()).encode(), digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def discover(dirs: list[Path], live: list[Path]) -> list[SourceFile]:
    """Backload files under each DIR (``DIR/backload`` when present), then live files.

    Order is sorted by path so runs are reproducible; it does not affect the result.
    """
    out: list[SourceFile] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append(SourceFile(d, "backload", file_key(d)))
            continue
        root = d / "backload" if (d / "backload").is_dir() else d
        for p in sorted(root.rglob("*")):
            if not p.is_file() or p.suffix.lower() not in EXTRACT_SUFFIXES:
                continue
            if root == d and (d / "live") in p.parents:
                continue  # a generated scenario's live feed is passed with --live
            out.append(SourceFile(p, "backload", file_key(p)))
    for f in live:
        f = Path(f)
        files = sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]
        out.extend(SourceFile(p, "live", file_key(p)) for p in files)
    return out


def iter_raw(path: Path) -> Iterator[str]:
    """Each message of a file as text (MLLP-framed, plain or FHS/BHS batch)."""
    for m in iter_messages(path):
        yield m.text

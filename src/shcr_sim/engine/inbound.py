"""File inbound: find extract files, read them as messages, remember per-file progress.

A file is identified by its absolute path and a hash of its content, so a resumed
replay skips the messages it already accepted (progress is committed with each
batch) and a file that was completely accepted is not read again. This is how a
resumed replay reconciles: every message of a file is accepted exactly once.
A file delivered again under another name (or changed) is read again: its
messages land as duplicates (same MSH-3/MSH-4/MSH-10) and are counted as such.

Hashing reads every byte of every file (8 GB for ten million messages, ~15 s), so
``KeysAhead`` does it in a thread of its own, in file order, while the reader works
through the files before; ``verify`` never needs the keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shcr_sim.hl7.files import iter_messages

EXTRACT_SUFFIXES = (".hl7", ".txt", ".er7", ".mllp", ".dat", ".batch")


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    lane: str  # "backload" | "live"

    @property
    def name(self) -> str:
        return str(self.path)


def file_key(path: Path, stop: threading.Event | None = None) -> str:
    """The file's absolute path and content, hashed: what its progress is kept under.
    ``stop`` set: give up at the next block (the replay is over)."""
    h = hashlib.blake2b(str(path.resolve()).encode(), digest_size=16)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            if stop is not None and stop.is_set():
                return ""
            h.update(block)  # hashlib lets other threads run while it hashes a block
    return h.hexdigest()


class KeysAhead:
    """``file_key`` of each file, worked out in order by one thread of its own while the
    files before it are read: ``await keys.get(i)``. ``close()`` stops the hashing."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="file-keys")
        self._keys: list[Future[str]] = [self._pool.submit(file_key, f.path, self._stop)
                                         for f in files]

    async def get(self, i: int) -> str:
        return await asyncio.wrap_future(self._keys[i])

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def discover(dirs: list[Path], live: list[Path]) -> list[SourceFile]:
    """Backload files under each DIR (``DIR/backload`` when present), then live files.

    Order is sorted by path so runs are reproducible; it does not affect the result.
    A file named twice (a folder and a file in it, or in both lanes) is listed once,
    where it was first named: its progress is kept under one key. Each file is opened
    once here, so one that cannot be read stops the run before anything is queued.
    """
    out: list[SourceFile] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            out.append(SourceFile(d, "backload"))
            continue
        root = d / "backload" if (d / "backload").is_dir() else d
        for p in sorted(root.rglob("*")):
            if not p.is_file() or p.suffix.lower() not in EXTRACT_SUFFIXES:
                continue
            if root == d and (d / "live") in p.parents:
                continue  # a generated scenario's live feed is passed with --live
            out.append(SourceFile(p, "backload"))
    for f in live:
        f = Path(f)
        files = sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]
        out.extend(SourceFile(p, "live") for p in files)
    seen: set[Path] = set()
    unique = []
    for sf in out:
        where = sf.path.resolve()
        if where not in seen:
            seen.add(where)
            sf.path.open("rb").close()  # OSError now, not hours into the run
            unique.append(sf)
    return unique


def iter_raw(path: Path) -> Iterator[str]:
    """Each message of a file as text (MLLP-framed, plain or FHS/BHS batch)."""
    for m in iter_messages(path):
        yield m.text

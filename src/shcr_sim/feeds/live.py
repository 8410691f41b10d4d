"""The live stream in arrival order with bounded memory: sorted runs spilled to disk,
then merged (``heapq.merge``) into ``live/<ods>.hl7``.

A live interface numbers its messages as it sends them, so MSH-10 is assigned here,
in arrival order, per sending application (MSH-3: each of a trust's systems has its
own counter), continuing after the numbers that system has already used; a resend
gets the number its original was sent with (same bytes).
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

# (arrival, seq, seq of the original for a resend else 0, whether it will be resent, text)
Entry = tuple[int, int, int, int, str]


class LiveSpool:
    """Collects live messages per trust; spills sorted runs when over budget."""

    def __init__(self, tmpdir: Path, budget: int = 50_000) -> None:
        self.tmpdir = tmpdir
        self.budget = budget
        self.buffers: dict[str, list[Entry]] = {}
        self.runs: dict[str, list[Path]] = {}
        self.buffered = 0
        self.order: list[str] = []

    def add(self, ods: str, arrival: int, seq: int, text: str, original: int = 0,
            resent: bool = False) -> None:
        buf = self.buffers.get(ods)
        if buf is None:
            buf = self.buffers[ods] = []
            self.order.append(ods)
        buf.append((arrival, seq, original, int(resent), text))
        self.buffered += 1
        if self.buffered >= self.budget:
            self.spill()

    def spill(self) -> None:
        for ods in self.order:
            buf = self.buffers.get(ods)
            if not buf:
                continue
            buf.sort()
            runs = self.runs.setdefault(ods, [])
            path = self.tmpdir / f"{ods}.run{len(runs):05d}"
            with path.open("wb") as fh:
                fh.writelines(
                    f"{a} {s} {o} {r}\t{t}\n".encode() for a, s, o, r, t in buf
                )
            runs.append(path)
            buf.clear()
        self.buffered = 0

    def _read(self, path: Path) -> Iterator[Entry]:
        with path.open("rb") as fh:
            for line in fh:
                head, _, text = line.rstrip(b"\n").partition(b"\t")
                a, s, o, r = head.split(b" ")
                yield int(a), int(s), int(o), int(r), text.decode()

    def write(
        self, out_dir: Path, numbering: dict[str, tuple[Callable[[int], str], dict[str, int]]]
    ) -> dict[str, int]:
        """Merge each trust's runs into ``out_dir/<ods>.hl7``, numbering MSH-10 with
        ``numbering[ods] = (number → control id, {MSH-3: first number})``; messages per
        trust."""
        self.spill()
        counts: dict[str, int] = {}
        out_dir.mkdir(parents=True, exist_ok=True)
        for ods in self.order:
            make_id, first = numbering[ods]
            nexts = dict(first)
            pending: dict[int, str] = {}  # seq → MSH-10 of originals still to be resent
            written = 0
            with (out_dir / f"{ods}.hl7").open("w", encoding="utf-8", newline="") as fh:
                for _, seq, original, resent, text in heapq.merge(
                    *(self._read(p) for p in self.runs.get(ods, []))
                ):
                    parts = text.split("|", 10)
                    if original:
                        control_id = pending.pop(original)
                    else:
                        n = nexts.get(parts[2], 1)
                        control_id = make_id(n)
                        nexts[parts[2]] = n + 1
                        if resent:
                            pending[seq] = control_id
                    parts[9] = control_id
                    fh.write("|".join(parts))
                    fh.write("\n")
                    written += 1
            counts[ods] = written
            for p in self.runs.get(ods, []):
                p.unlink()
        return counts


def temp_dir(parent: Path) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=".live-runs-", dir=parent)

"""The live stream in arrival order with bounded memory: sorted runs spilled to disk,
then merged (``heapq.merge``) into ``live/<ods>.hl7``."""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterator
from pathlib import Path


class LiveSpool:
    """Collects (arrival, seq, text) per trust; spills sorted runs when over budget."""

    def __init__(self, tmpdir: Path, budget: int = 50_000) -> None:
        self.tmpdir = tmpdir
        self.budget = budget
        self.buffers: dict[str, list[tuple[int, int, str]]] = {}
        self.runs: dict[str, list[Path]] = {}
        self.buffered = 0
        self.order: list[str] = []

    def add(self, ods: str, arrival: int, seq: int, text: str) -> None:
        buf = self.buffers.get(ods)
        if buf is None:
            buf = self.buffers[ods] = []
            self.order.append(ods)
        buf.append((arrival, seq, text))
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
                    f"{a:012d} {s:012d}\t{t}\n".encode() for a, s, t in buf
                )
            runs.append(path)
            buf.clear()
        self.buffered = 0

    def _read(self, path: Path) -> Iterator[tuple[int, int, str]]:
        with path.open("rb") as fh:
            for line in fh:
                head, _, text = line.rstrip(b"\n").partition(b"\t")
                a, s = head.split(b" ")
                yield int(a), int(s), text.decode()

    def write(self, out_dir: Path) -> dict[str, int]:
        """Merge each trust's runs into ``out_dir/<ods>.hl7``; returns messages per trust."""
        self.spill()
        counts: dict[str, int] = {}
        out_dir.mkdir(parents=True, exist_ok=True)
        for ods in self.order:
            n = 0
            with (out_dir / f"{ods}.hl7").open("w", encoding="utf-8", newline="") as fh:
                for _, _, text in heapq.merge(*(self._read(p) for p in self.runs.get(ods, []))):
                    fh.write(text)
                    fh.write("\n")
                    n += 1
            counts[ods] = n
            for p in self.runs.get(ods, []):
                p.unlink()
        return counts


def temp_dir(parent: Path) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=".live-runs-", dir=parent)

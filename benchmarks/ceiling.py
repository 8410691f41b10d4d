"""The engine's ceiling: a replay whose conversion is served from a recording.

A replay's conversion is a pure function of (message, mapping, merges in force)
(``engine.workers``), so the outcomes of one replay can be recorded and served to
a second replay of the same scenario. The second replay still reads, frames, keys,
enqueues, sequences and stores every message, ships every shard through the
workers' pipes and unpickles every result in the engine process, but parsing,
mapping, ``store.prepare`` and validation cost a dictionary lookup. Its throughput
is what no faster conversion (a compiled core, say) could exceed on this machine:
the engine process's own ceiling.

How: ``benchmarks/run.py --ceiling`` sets ``SHCR_BENCH_CEILING`` to
``record:DIR`` or ``serve:FILE`` in a replay child and calls ``install``, which
replaces ``engine.workers._convert_jobs`` in that process and makes the conversion
pool start its workers through ``worker_init``, which does the same in each worker
(spawned workers inherit the environment and ``sys.path``, so they import this
module). Nothing in ``src/`` knows of it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shcr_sim.engine import workers

ENV = "SHCR_BENCH_CEILING"
_real_init = workers._init
_real_convert_jobs = workers._convert_jobs
_served: dict[bytes, bytes] | None = None


def _digest(job: Sequence[Any], merges: Any) -> bytes:
    """The outcome's key: the message, its ordering key, and how many merges are known
    (a message converted again after a merge learned late gets an entry of its own)."""
    known = len(merges.entries) if merges is not None else 0
    return hashlib.blake2b(f"{job[1]}\x00{job[3]}\x00{known}".encode(),
                           digest_size=16).digest()


def _recording(conv: Any, jobs: Sequence[Any], merges: Any) -> tuple[list, float, float, int]:
    out = _real_convert_jobs(conv, jobs, merges)
    directory = os.environ[ENV].split(":", 1)[1]
    with open(os.path.join(directory, f"{os.getpid()}.pkl"), "ab") as fh:
        pickle.dump({_digest(j, merges): pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)
                     for j, o in zip(jobs, out[0], strict=True)}, fh,
                    protocol=pickle.HIGHEST_PROTOCOL)
    return out


def _serving(conv: Any, jobs: Sequence[Any], merges: Any) -> tuple[list, float, float, int]:
    """Recorded outcomes; a message the recording lacks is converted for real (counted).

    A worker loads the recording here, at its first shard, not at start-up, where it
    would hold up keying at accept, which the replay's ingest waits for (0.1 s for the
    130 MB of a 100 k recording, ~1.3 GiB at 1 M). Release starts that much later.
    """
    if _served is None:
        _load()
    assert _served is not None
    found = [_served.get(_digest(j, merges)) for j in jobs]
    missing = [j for j, b in zip(jobs, found, strict=True) if b is None]
    if not missing:
        loads = pickle.loads
        return [loads(b) for b in found], 0.0, 0.0, 0  # type: ignore[arg-type]
    _count_misses(len(missing))
    real, conv_s, val_s, validated = _real_convert_jobs(conv, missing, merges)
    converted = iter(real)
    return ([pickle.loads(b) if b is not None else next(converted) for b in found],
            conv_s, val_s, validated)


def _load() -> None:
    global _served
    with open(os.environ[ENV].split(":", 1)[1], "rb") as fh:
        _served = pickle.load(fh)  # noqa: S301 - this benchmark's own file


def _patch() -> None:
    mode = os.environ[ENV].partition(":")[0]
    if mode == "record":
        workers._convert_jobs = _recording
    elif mode == "serve":
        workers._convert_jobs = _serving
    else:
        raise SystemExit(f"{ENV}: {mode!r} is neither record nor serve")


def worker_init(trusts: Any, validate: str) -> None:
    """The conversion pool's initialiser in a ceiling run: the real one, then the patch."""
    _real_init(trusts, validate)
    _patch()


def install() -> None:
    """In a replay child, before the replay: patch this process and the pool's workers.

    This process (whose live lane converts too) loads a recording here, before the
    replay's clock starts."""
    _patch()
    if os.environ[ENV].startswith("serve:"):
        _load()
    workers._init = worker_init


def pack(directory: Path, into: Path) -> int:
    """Merge a recording's per-process files into one file; the outcomes it holds."""
    merged: dict[bytes, bytes] = {}
    for part in sorted(directory.glob("*.pkl")):
        with part.open("rb") as fh:
            while True:
                try:
                    merged.update(pickle.load(fh))  # noqa: S301 - written above
                except EOFError:
                    break
    with into.open("wb") as fh:
        pickle.dump(merged, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return len(merged)


def _count_misses(n: int) -> None:
    where = os.environ[ENV].split(":", 1)[1]
    with open(f"{where}.misses-{os.getpid()}", "a") as fh:
        fh.write(f"{n}\n")


def misses(recording: Path) -> int:
    """Messages the recording lacked in a serving replay (converted for real)."""
    return sum(int(line) for part in recording.parent.glob(f"{recording.name}.misses-*")
               for line in part.read_text().split())

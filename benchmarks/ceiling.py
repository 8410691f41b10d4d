"""The engine's ceiling: a replay whose conversions are served from a recording.

Conversion is a pure function of (message, mapping, merges in force)
(``engine.workers``), so every outcome of one replay can be recorded and served to
a second replay of the same scenario. The second replay still reads, frames, keys,
enqueues, sequences and stores every message, ships every shard through the
workers' pipes and unpickles every result in the engine process, but each
``Converter.convert`` (parsing, mapping, ``store.prepare``, validation) costs a
digest of the message, a dictionary lookup and an unpickle. Its throughput is what
a faster conversion could approach, not exceed, with this engine on this machine.

How: ``benchmarks/run.py --ceiling`` sets ``SHCR_BENCH_CEILING`` to ``record:DIR``
or ``serve:DIR`` in a replay child and calls ``install``, which replaces
``Converter.convert`` in that process (the live lane and the merges convert there)
and makes the conversion pool start its workers through ``worker_init``, which does
the same in each worker (spawned workers inherit the environment and ``sys.path``,
so they import this module). Nothing in ``src/`` knows of it. Each process keeps
its count of outcomes served and of conversions the recording lacked in a small
file of its own, so the benchmark can refuse a ceiling that was not served.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import pickle
import struct
from pathlib import Path
from typing import Any

from shcr_sim.engine import workers
from shcr_sim.engine.convert import SAMPLE_EVERY, Converter, MergedAt

ENV = "SHCR_BENCH_CEILING"
RECORDING = "recording.pkl"
_real_init = workers._init
_real_convert = Converter.convert
_served: dict[bytes, bytes] | None = None
_fd: int | None = None  # record: this process's append-only file of (key, outcome)
_counts: mmap.mmap | None = None  # serve: (served, lacked) for this process
_served_n = _lacked_n = 0


def _where() -> Path:
    return Path(os.environ[ENV].split(":", 1)[1])


def _key(conv: Converter, raw: str, order_key: str, merged: Any, seq: int,
         prepared: bool) -> bytes:
    """What an outcome depends on: the message, its ordering key, the merges known
    (the view's map is only ever added to, so its size names it within a run),
    whether this conversion validates, and the form of its writes."""
    if isinstance(merged, MergedAt):
        known = len(merged.merges.entries)
    else:
        known = len(merged) if merged else 0
    checked = conv.validate == "full" or (conv.validate == "sampled"
                                          and seq % SAMPLE_EVERY == 0)
    return hashlib.blake2b(f"{raw}\x00{order_key}\x00{known}\x00{checked:d}{prepared:d}"
                           .encode(), digest_size=16).digest()


def _recording(self: Converter, raw: str, message_id: str, order_key: str, event_time: str,
               merged: Any, seq: int = 0, *, prepared: bool = False) -> Any:
    global _fd
    out = _real_convert(self, raw, message_id, order_key, event_time, merged, seq,
                        prepared=prepared)
    if _fd is None:
        _fd = os.open(_where() / f"part-{os.getpid()}.pkl",
                      os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # unbuffered: a pool's worker ends without running exit handlers
    os.write(_fd, pickle.dumps((_key(self, raw, order_key, merged, seq, prepared),
                                pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)),
                               protocol=pickle.HIGHEST_PROTOCOL))
    return out


def _serving(self: Converter, raw: str, message_id: str, order_key: str, event_time: str,
             merged: Any, seq: int = 0, *, prepared: bool = False) -> Any:
    """The recorded outcome; one the recording lacks is converted for real (counted).

    A worker loads the recording at its first conversion, inside the replay's timed
    part (each worker in parallel; 0.11 s for a 100 k recording's 130 MB; ~1.3 GiB
    at 1 M), not at start-up, where it would hold up keying at accept.
    """
    global _served_n, _lacked_n
    if _served is None:
        _load()
    assert _served is not None and _counts is not None
    found = _served.get(_key(self, raw, order_key, merged, seq, prepared))
    if found is None:
        _lacked_n += 1
        out = _real_convert(self, raw, message_id, order_key, event_time, merged, seq,
                            prepared=prepared)
    else:
        _served_n += 1
        out = pickle.loads(found)  # noqa: S301 - this benchmark's own file
    _counts[:16] = struct.pack("<qq", _served_n, _lacked_n)
    return out


def _load() -> None:
    global _served, _counts
    with (_where() / RECORDING).open("rb") as fh:
        _served = pickle.load(fh)  # noqa: S301 - this benchmark's own file
    path = _where() / f"counts-{os.getpid()}"
    path.write_bytes(bytes(16))
    with path.open("r+b") as fh:
        _counts = mmap.mmap(fh.fileno(), 16)


def _patch() -> None:
    mode = os.environ[ENV].partition(":")[0]
    if mode == "record":
        Converter.convert = _recording  # type: ignore[method-assign]
    elif mode == "serve":
        Converter.convert = _serving  # type: ignore[method-assign]
    else:
        raise SystemExit(f"{ENV}: {mode!r} is neither record nor serve")


def worker_init(trusts: Any, validate: str) -> None:
    """The conversion pool's initialiser in a ceiling run: the real one, then the patch."""
    _real_init(trusts, validate)
    _patch()


def install() -> None:
    """In a replay child, before the replay: patch this process and the pool's workers.

    This process loads a recording here, before the replay's clock starts."""
    _patch()
    if os.environ[ENV].startswith("serve:"):
        _load()
    workers._init = worker_init


def pack(directory: Path) -> int:
    """Merge a recording's per-process parts into ``RECORDING``; the outcomes it holds.

    The same key twice must mean the same outcome (conversion is a pure function of
    what the key holds); anything else fails here rather than serving the wrong one.
    """
    merged: dict[bytes, bytes] = {}
    clashes = 0
    for part in sorted(directory.glob("part-*.pkl")):
        with part.open("rb") as fh:
            while True:
                try:
                    key, out = pickle.load(fh)  # noqa: S301 - written above
                except EOFError:
                    break
                seen = merged.setdefault(key, out)
                if seen != out and pickle.loads(seen) != pickle.loads(out):  # noqa: S301
                    clashes += 1
        part.unlink()
    if clashes:
        raise SystemExit(f"ceiling: {clashes} conversions recorded twice with different "
                         "outcomes; conversion is not a pure function of the recorded key")
    with (directory / RECORDING).open("wb") as fh:
        pickle.dump(merged, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return len(merged)


def counts(directory: Path) -> tuple[int, int]:
    """(served, converted for real) summed over a serving replay's processes."""
    served = lacked = 0
    for part in directory.glob("counts-*"):
        s, lk = struct.unpack("<qq", part.read_bytes()[:16])
        served, lacked = served + s, lacked + lk
    return served, lacked

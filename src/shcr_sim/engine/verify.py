"""``verify``: rebuild the expected record without the queue or the sequencer.

Reads every message from the files again, drops what the engine must drop
(unreadable, unknown sender, repeated MSH-10: first copy wins), groups the rest
per patient, sorts each patient's messages by the ordering key, converts them and
applies them to a plain dict where the last event wins. Shared resources (the
trust's Organization and the like) are written by many patients' messages; their
expected version is the one from the latest event over all patients. The result
is compared with the store's current versions, ignoring ``meta``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shcr_sim.hl7 import HL7Error
from shcr_sim.store import SqliteStore, strip_meta

from .convert import Converted, Converter, MergeMap, TrustInfo
from .inbound import discover, iter_raw
from .keys import DEFAULT_TZ, MERGE_TYPES, KeysError, MessageKeys, parse_and_extract


@dataclass(slots=True)
class Difference:
    rkey: str
    kind: str  # "missing" | "unexpected" | "differs"
    paths: list[str] = field(default_factory=list)
    expected: Any = None
    actual: Any = None

    def to_json(self) -> dict:
        return {"resource": self.rkey, "kind": self.kind, "paths": self.paths}


@dataclass(slots=True)
class VerifyResult:
    messages: int
    patients: int
    resources: int
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


def diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ (first 20)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += diff_paths(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out[:20]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff_paths(x, y, f"{path}[{i}]")
        return out[:20]
    return [] if a == b else [path or "(root)"]


async def saved_trusts(db: Path) -> list[TrustInfo] | None:
    import aiosqlite

    async with aiosqlite.connect(str(db)) as conn:
        try:
            async with conn.execute("SELECT value FROM engine_meta WHERE key='trusts'") as cur:
                row = await cur.fetchone()
        except aiosqlite.OperationalError:
            return None
    return [TrustInfo(*t) for t in orjson.loads(row[0])] if row else None


async def verify(
    db: Path, dirs: Sequence[Path], live: Sequence[Path] = (),
    trusts: Sequence[TrustInfo] | None = None,
) -> VerifyResult:
    if trusts is None:
        trusts = await saved_trusts(db)
    converter = Converter(trusts, "off")
    tzs = converter.timezones() if trusts is not None else None

    # 1. read and key every message; first copy of a (MSH-3, MSH-4, MSH-10) wins
    seen: set[str] = set()
    per_patient: dict[str, list[tuple[MessageKeys, str]]] = {}
    count = 0
    for sf in discover(list(dirs), list(live)):
        for raw in iter_raw(sf.path):
            count += 1
            try:
                msg, keys = parse_and_extract(raw)
            except (HL7Error, KeysError):
                continue
            if tzs is not None:
                tz = tzs.get(msg.sender)
                if tz is None:
                    continue  # unknown sender: refused by the engine
                if tz != DEFAULT_TZ:
                    _, keys = parse_and_extract(raw, tz)
            if keys.dedup_key in seen:
                continue
            seen.add(keys.dedup_key)
            per_patient.setdefault(keys.patient_key, []).append((keys, raw))

    # 2. merges, each in force from its own event on
    merges = MergeMap()
    for items in per_patient.values():
        for keys, raw in items:
            if keys.message_type in MERGE_TYPES:
                out = converter.convert(raw, keys.dedup_key, keys.order_key, keys.event_time, None)
                if isinstance(out, Converted) and out.merge:
                    merges.add(keys.order_key, *out.merge)

    # 3. each patient's messages in event order; last event wins per resource
    expected: dict[str, tuple[str, dict]] = {}
    for items in per_patient.values():
        items.sort(key=lambda kr: kr[0].order_key)
        for keys, raw in items:
            out = converter.convert(
                raw, keys.dedup_key, keys.order_key, keys.event_time, merges.at(keys.order_key)
            )
            if isinstance(out, str):
                continue
            for w in out.writes:
                rkey = f"{w.resource['resourceType']}/{w.resource['id']}"
                have = expected.get(rkey)
                if have is None or keys.order_key >= have[0]:
                    expected[rkey] = (keys.order_key, strip_meta(w.resource))

    # 4. compare with the store's current versions
    diffs: list[Difference] = []
    store = await SqliteStore.open(db)
    try:
        actual_keys: set[str] = set()
        async for res in store.iter_current():
            rkey = f"{res['resourceType']}/{res['id']}"
            actual_keys.add(rkey)
            want = expected.get(rkey)
            got = strip_meta(res)
            if want is None:
                diffs.append(Difference(rkey, "unexpected", actual=got))
            elif orjson.dumps(want[1], option=orjson.OPT_SORT_KEYS) != orjson.dumps(
                got, option=orjson.OPT_SORT_KEYS
            ):
                diffs.append(Difference(rkey, "differs", diff_paths(want[1], got), want[1], got))
        for rkey in sorted(set(expected) - actual_keys):
            diffs.append(Difference(rkey, "missing", expected=expected[rkey][1]))
    finally:
        await store.close()
    return VerifyResult(count, len(per_patient), len(expected), diffs)

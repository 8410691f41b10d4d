"""The record-store interface: what the engine, ``verify`` and ``record`` rely on.

Every write carries the ordering key of the message it came from. A write whose
key is older than the current version's is kept as history only and never
becomes current, so the final state does not depend on arrival order. Writing the
same message's resource twice creates no new version (content hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from .compress import pack

Resource = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Write:
    """One resource version produced by converting one message."""

    resource: Resource
    order_key: str  # sortable (event time, precedence, …) of the source message
    event_time: str  # the source event time as sent (HL7 text)
    message_id: str  # the source message's "MSH-3|MSH-4|MSH-10"
    patient_key: str = ""  # "nhs:<n>" or "mrn:<authority>|<mrn>"; "" = not patient data


@dataclass(slots=True)
class ApplyResult:
    created: int = 0  # first version of a resource
    updated: int = 0  # new current version
    history_only: int = 0  # older event: stored as history, not made current
    unchanged: int = 0  # same content (or same message) again: no new version

    def __iadd__(self, other: ApplyResult) -> ApplyResult:
        self.created += other.created
        self.updated += other.updated
        self.history_only += other.history_only
        self.unchanged += other.unchanged
        return self


class NotAStore(LookupError):
    """A database opened for reading holds no shcr-sim store or queue (an empty or
    another application's file): reported, never written to."""


class StoreUnavailable(ConnectionError):
    """The store refused a batch for now (down, in maintenance): nothing was written.

    The engine's release path keeps the batch's rows released and retries with
    back-off; any back end that can be unreachable raises this.
    """


@dataclass(frozen=True, slots=True)
class Version:
    version: int
    current: bool  # became current when written (False: older event, history only)
    last_updated: str
    event_time: str
    order_key: str
    message_id: str
    resource: Resource = field(default_factory=dict)


def content_hash(resource: Resource) -> str:
    """Hash of a resource without the store-owned meta fields."""
    meta = resource.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        resource = dict(resource)
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if rest:
            resource["meta"] = rest
        else:
            resource.pop("meta")
    return hashlib.blake2b(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS),
                           digest_size=16).hexdigest()


class Prepared(NamedTuple):
    """A ``Write`` made ready for the store: keyed, hashed and serialised once.

    Conversion workers build these, so the single store writer neither hashes,
    serialises nor compresses. ``body`` is the resource as sorted-key JSON without the
    store-owned meta, compressed as the store keeps it (``compress.pack``); ``hash``
    is the JSON's digest, i.e. ``content_hash``. Meta the resource carried besides
    the store-owned fields stays in ``body``.
    """

    rkey: str
    rtype: str
    rid: str
    hash: str
    body: bytes
    idents: tuple[str, ...]  # "system|value" of a Patient's identifiers (else none)
    order_key: str
    event_time: str
    message_id: str
    patient_key: str


# The types whose identifiers the store indexes: every look-up the record makes by
# identifier (by NHS number, by a trust's MRN) is for Patients. Results, reports and
# encounters carry identifiers too (about 0.6 entries a message in a backload), each
# a random-keyed insert for the single writer that nothing reads.
INDEXED_BY_IDENTIFIER = frozenset({"Patient"})


def _identifier_keys(idents: Any) -> tuple[str, ...]:
    out = []
    for ident in idents:
        if isinstance(ident, dict) and ident.get("value"):
            out.append(f"{ident.get('system', '')}|{ident['value']}")
    return tuple(out)


_SORT_KEYS = orjson.OPT_SORT_KEYS
_dumps = orjson.dumps
_blake2b = hashlib.blake2b
_new_prepared = tuple.__new__  # Prepared(...) without the generated __new__'s extra call


def prepare(resource: Resource, order_key: str, event_time: str, message_id: str,
            patient_key: str = "") -> Prepared:
    """Key, hash and serialise one resource version (see ``Prepared``).

    On every conversion worker's hot path (once per resource), hence the
    spelled-out fast path; the result is the same as ``content_hash`` and co.
    """
    meta = resource.get("meta")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        resource = {k: v for k, v in resource.items() if k != "meta"}
        if rest:
            resource["meta"] = rest
    body = _dumps(resource, option=_SORT_KEYS)
    rtype = resource["resourceType"]
    rid = resource["id"]
    idents = resource.get("identifier")
    return _new_prepared(Prepared, (
        f"{rtype}/{rid}", rtype, rid, _blake2b(body, digest_size=16).hexdigest(), pack(body),
        _identifier_keys(idents) if idents and rtype in INDEXED_BY_IDENTIFIER else (),
        order_key, event_time, message_id, patient_key))


def prepare_write(w: Write) -> Prepared:
    return prepare(w.resource, w.order_key, w.event_time, w.message_id, w.patient_key)


def strip_meta(resource: Resource) -> Resource:
    """A resource without meta, for comparisons that ignore what the store set."""
    return {k: v for k, v in resource.items() if k != "meta"}


class RecordStore(Protocol):
    async def apply(self, writes: Sequence[Write]) -> ApplyResult:
        """Apply a batch in one transaction (guarded, idempotent)."""
        ...

    async def current(self, rtype: str, rid: str) -> Resource | None: ...

    async def history(self, rtype: str, rid: str) -> list[Version]: ...

    async def by_patient(self, patient_key: str) -> list[Resource]: ...

    async def patients_by_identifier(self, system: str, value: str) -> list[Resource]:
        """The Patients carrying this identifier (only Patients' are indexed)."""
        ...

    def iter_current(self) -> AsyncIterator[Resource]: ...

    async def count(self) -> int: ...

    async def close(self) -> None: ...

"""The engine's side of conversion: pick each trust's mapping, call the converter,
turn its resources into store writes, and turn every failure into a reason.

No mapping rules here — those live in ``fhir/``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pickle
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shcr_sim.hl7 import HL7Error, parse
from shcr_sim.store import Write, prepare

FLAVOUR_BY_VERSION = {
    "2.3": "classic-pas", "2.3.1": "classic-pas", "2.4": "itk-acute", "2.5": "mh-epr",
    "2.5.1": "mh-epr",
}
SAMPLE_EVERY = 50
_PACKINGS = itertools.count(1)  # MergeMap.packed: each packing's token is new in this process
# shared reference data: not indexed under any one patient
NOT_PATIENT_DATA = frozenset({"Organization", "Practitioner", "PractitionerRole", "Location",
                              "Medication", "Device", "HealthcareService"})


@dataclass(frozen=True, slots=True)
class TrustInfo:
    app: str
    ods: str
    flavour: str
    name: str = ""
    timezone: str = ""  # overrides the mapping's time zone when set (--trusts FILE)


@dataclass(slots=True)
class Converted:
    writes: list[Any]  # Write, or store.Prepared when converted with prepared=True
    patient_id: str | None
    merge: tuple[str, str] | None


class MergeMap:
    """Old Patient id → survivor, each effective from its merge's ordering key on.

    ``at(order_key)`` is a lazy view: it costs nothing to make and a lookup only
    reads the entries of the ids it follows, so millions of messages and
    thousands of merges stay cheap. ``entries`` changes only through ``add``, which
    is what makes ``packed`` anew.
    """

    def __init__(self, entries: Iterable[tuple[str, str, str]] = ()) -> None:
        self.entries: list[tuple[str, str, str]] = sorted(entries)  # (order_key, old, survivor)
        self._by_old: dict[str, list[tuple[str, str]]] = {}
        for ok, old, surv in self.entries:
            if old != surv:
                self._by_old.setdefault(old, []).append((ok, surv))
        self._packed: tuple[str, bytes] | None = None

    def add(self, order_key: str, old: str, survivor: str) -> None:
        self.entries.append((order_key, old, survivor))
        self.entries.sort()
        self._packed = None
        if old != survivor:
            chain = self._by_old.setdefault(old, [])
            chain.append((order_key, survivor))
            chain.sort()

    def packed(self) -> tuple[str, bytes]:
        """(token, pickled entries) for the conversion workers, made once per change.

        A worker that has built the map for this token keeps it rather than unpickling
        and indexing the entries again. A replay learns its backload's merges before it
        releases any of it, so all of them go with every shard of every batch (about
        10,000 in a 10 M backload).
        """
        if self._packed is None:
            self._packed = (f"{os.getpid()}:{next(_PACKINGS)}",
                            pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL))
        return self._packed

    def direct(self, old: str, order_key: str) -> str | None:
        """The survivor ``old`` was last merged into at or before ``order_key``."""
        found = None
        for ok, surv in self._by_old.get(old, ()):
            if ok > order_key:
                break
            found = surv
        return found

    def at(self, order_key: str) -> Mapping[str, str] | None:
        """The merges in force for a message with this ordering key (chains resolved)."""
        if not self.entries or self.entries[0][0] > order_key:
            return None
        return MergedAt(self, order_key)


class MergedAt(Mapping[str, str]):
    """The merges in force at one ordering key: old id → final survivor."""

    __slots__ = ("merges", "order_key")

    def __init__(self, merges: MergeMap, order_key: str) -> None:
        self.merges = merges
        self.order_key = order_key

    def get(self, old: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The final survivor of ``old``, else ``default``: without the KeyError that
        ``Mapping.get`` would raise and catch for nearly every message (the converter
        asks about each one's patient)."""
        direct = self.merges.direct
        target = direct(old, self.order_key)
        if target is None:
            return default
        hops = 0
        while hops < 50 and (nxt := direct(target, self.order_key)) is not None:
            target, hops = nxt, hops + 1
        return default if target == old else target

    def __getitem__(self, old: str) -> str:
        target = self.get(old)
        if target is None:
            raise KeyError(old)
        return target

    def _olds(self) -> list[str]:
        return [old for old in self.merges._by_old if old in self]

    def __iter__(self) -> Iterator[str]:
        return iter(self._olds())

    def __len__(self) -> int:
        return len(self._olds())

    def __bool__(self) -> bool:  # only called as ``merged or {}``: cheap, and lookups decide
        return True

    def __contains__(self, old: object) -> bool:
        return isinstance(old, str) and self.get(old) is not None


class Converter:
    """Converts queued messages with the mapping of the trust that sent them."""

    def __init__(self, trusts: Iterable[TrustInfo] | None, validate: str = "off") -> None:
        from shcr_sim.fhir import mapping_for_trust

        self._mapping_for_trust = mapping_for_trust
        self.trusts = {(t.app, t.ods): t for t in trusts} if trusts is not None else None
        self.validate = validate
        self._configs: dict[tuple[str, str], Any] = {}
        self.validate_seconds = 0.0  # busy time in fhir.resources, for the stage clock
        self.validated = 0  # messages (Bundles) validated
        self.validator: Any = None  # fhir.validate.ResourceValidator, made on first use

    def config_for(self, app: str, ods: str, version: str) -> Any:
        key = (app, ods)
        cfg = self._configs.get(key)
        if cfg is None:
            trust = self.trusts.get(key) if self.trusts is not None else None
            if trust is not None:
                cfg = self._mapping_for_trust(ods, trust.flavour, trust.name)
                if trust.timezone:
                    cfg = dataclasses.replace(cfg, timezone=trust.timezone)
            else:
                flavour = FLAVOUR_BY_VERSION.get(version, "itk-acute")
                cfg = self._mapping_for_trust(ods, flavour)
            self._configs[key] = cfg
        return cfg

    def timezones(self) -> dict[tuple[str, str], str]:
        """(MSH-3, MSH-4) → time zone of each configured trust, for the queue's keys."""
        out = {}
        for (app, ods), _t in (self.trusts or {}).items():
            cfg = self.config_for(app, ods, "")
            out[(app, ods)] = getattr(cfg, "timezone", "Europe/London") or "Europe/London"
        return out

    def convert(
        self, raw: str, message_id: str, order_key: str, event_time: str,
        merged: Mapping[str, str] | None, seq: int = 0, *, prepared: bool = False,
    ) -> Converted | str:
        """Store writes for one message, or the reason it must be dead-lettered.

        ``prepared``: the writes come keyed, hashed and serialised (``store.Prepared``),
        which is what a conversion worker sends back to the store writer.
        """
        from shcr_sim.fhir import ConversionError, convert_message

        try:
            msg = parse(raw)
            app, ods = msg.sender
            cfg = self.config_for(app, ods, msg.version)
            conv = convert_message(msg, cfg, merged=merged)
        except ConversionError as exc:
            return f"conversion: {exc}"
        except HL7Error as exc:
            return f"parse: {exc}"
        except Exception as exc:  # noqa: BLE001 - a converter bug must not block the queue
            return f"converter failed ({type(exc).__name__}): {exc}"
        check = self.validate == "full" or (self.validate == "sampled"
                                            and seq % SAMPLE_EVERY == 0)
        patient_ref = f"Patient/{conv.patient_id}" if conv.patient_id else ""
        if prepared:
            ready = [prepare(res, order_key, event_time, message_id,
                             "" if res.get("resourceType") in NOT_PATIENT_DATA else patient_ref)
                     for res in conv.resources]
            if check and (reason := self._validate(conv, ready)):
                return reason
            return Converted(ready, conv.patient_id, conv.merge)
        if check and (reason := self._validate(conv, None)):
            return reason
        writes: list[Any] = [
            Write(res, order_key, event_time, message_id,
                  "" if res.get("resourceType") in NOT_PATIENT_DATA else patient_ref)
            for res in conv.resources
        ]
        return Converted(writes, conv.patient_id, conv.merge)

    def _validate(self, conv: Any, ready: list[Any] | None) -> str | None:
        """Validate one message's resources and Bundle envelope: the reason it fails, or None.

        Each resource goes through its own R4B model, and content this process has
        already validated is skipped (``fhir.validate.ResourceValidator``), which is
        what ``validate_bundle`` on ``conv.bundle`` proves, at a fraction of the cost.
        ``ready``: the message's ``Prepared`` writes, whose hashes are reused.
        """
        from shcr_sim.fhir.validate import ResourceValidator

        t0 = time.perf_counter()
        try:
            if self.validator is None:
                self.validator = ResourceValidator()
            envelope = conv.envelope
            if envelope is None:
                conv.bundle  # noqa: B018 - raises: a conversion without its Bundle envelope
            digests = None
            if ready is not None:  # Prepared leaves store-owned meta out: those are made there
                digests = [None if _store_meta(res) else bytes.fromhex(p.hash)
                           for res, p in zip(conv.resources, ready, strict=True)]
            self.validator.validate(conv.resources, digests, envelope=envelope[:4],
                                    bundle=lambda: conv.bundle)
        except Exception as exc:  # noqa: BLE001 - ValidationError names the path
            return f"validation: {exc}"
        finally:
            self.validate_seconds += time.perf_counter() - t0
            self.validated += 1
        return None


def _store_meta(resource: dict) -> bool:
    meta = resource.get("meta")
    return isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta)

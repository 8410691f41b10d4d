"""The engine's side of conversion: pick each trust's mapping, call the converter,
turn its resources into store writes, and turn every failure into a reason.

No mapping rules here — those live in ``fhir/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shcr_sim.hl7 import HL7Error, parse
from shcr_sim.store import Write

FLAVOUR_BY_VERSION = {
    "2.3": "classic-pas", "2.3.1": "classic-pas", "2.4": "itk-acute", "2.5": "mh-epr",
    "2.5.1": "mh-epr",
}
SAMPLE_EVERY = 50
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
    writes: list[Write]
    patient_id: str | None
    merge: tuple[str, str] | None


class MergeMap:
    """Old Patient id → survivor, each effective from its merge's ordering key on."""

    def __init__(self, entries: Iterable[tuple[str, str, str]] = ()) -> None:
        self.entries: list[tuple[str, str, str]] = sorted(entries)  # (order_key, old, survivor)

    def add(self, order_key: str, old: str, survivor: str) -> None:
        self.entries.append((order_key, old, survivor))
        self.entries.sort()

    def at(self, order_key: str) -> dict[str, str] | None:
        """The merges in force for a message with this ordering key (chains resolved)."""
        direct = {old: surv for ok, old, surv in self.entries if ok <= order_key and old != surv}
        if not direct:
            return None
        resolved: dict[str, str] = {}
        for old in direct:
            target, hops = direct[old], 0
            while target in direct and hops < 50:
                target, hops = direct[target], hops + 1
            if target != old:
                resolved[old] = target
        return resolved or None


class Converter:
    """Converts queued messages with the mapping of the trust that sent them."""

    def __init__(self, trusts: Iterable[TrustInfo] | None, validate: str = "off") -> None:
        from shcr_sim.fhir import mapping_for_trust

        self._mapping_for_trust = mapping_for_trust
        self.trusts = {(t.app, t.ods): t for t in trusts} if trusts is not None else None
        self.validate = validate
        self._configs: dict[tuple[str, str], Any] = {}
        self.validate_seconds = 0.0  # busy time in fhir.resources, for the stage clock
        self.validated = 0

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
        merged: Mapping[str, str] | None, seq: int = 0,
    ) -> Converted | str:
        """Store writes for one message, or the reason it must be dead-lettered."""
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
        if self.validate == "full" or (self.validate == "sampled" and seq % SAMPLE_EVERY == 0):
            from shcr_sim.fhir import validate_bundle

            t0 = time.perf_counter()
            try:
                validate_bundle(conv.bundle)
            except Exception as exc:  # noqa: BLE001 - ValidationError names the path
                return f"validation: {exc}"
            finally:
                self.validate_seconds += time.perf_counter() - t0
                self.validated += 1
        patient_ref = f"Patient/{conv.patient_id}" if conv.patient_id else ""
        writes = [
            Write(res, order_key, event_time, message_id,
                  "" if res.get("resourceType") in NOT_PATIENT_DATA else patient_ref)
            for res in conv.resources
        ]
        return Converted(writes, conv.patient_id, conv.merge)

"""Per-flavour mapping configuration, loaded from TOML data files.

A mapping says where a trust's feed keeps its identifiers, which code system
each local code belongs to, how local codes translate to SNOMED CT / LOINC and
which time zone timestamps without an offset are in. Code never hard-wires one
trust's quirks; the data files under ``fhir/mappings/`` do.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

MAPPINGS_DIR = Path(__file__).parent / "mappings"
FLAVOURS = ("itk-acute", "classic-pas", "mh-epr")


@dataclass(frozen=True, slots=True)
class CodeSystem:
    """One local (or standard) code system a CWE-3 value can name."""

    uri: str
    lookups: tuple[str, ...] = ()  # tables in MappingConfig.lookups, tried in order


@dataclass(frozen=True)
class MappingConfig:
    """Everything the converter needs to know about one trust's feed."""

    name: str
    ods: str = ""  # fixed sending trust; empty = take MSH-4 from each message
    trust_name: str = ""
    timezone: str = "Europe/London"
    # patient identifiers
    nhs_fields: tuple[str, ...] = ("PID-3", "PID-2")
    nhs_authorities: tuple[str, ...] = ("NHS",)
    nhs_type_codes: tuple[str, ...] = ("NH", "NHS")
    mrn_type_codes: tuple[str, ...] = ("MR", "PI", "PT", "PN")
    verification_field: str = "PID-32"
    # identifier systems ({ods} is replaced by the trust's ODS code)
    mrn_system: str = "https://shcr-sim.example/Id/{ods}/mrn"
    visit_system: str = "https://shcr-sim.example/Id/{ods}/visit-number"
    order_system: str = "https://shcr-sim.example/Id/{ods}/order-number"
    document_system: str = "https://shcr-sim.example/Id/{ods}/document-number"
    local_code_system: str = "https://shcr-sim.example/CodeSystem/{ods}/local"
    # CWE-3 value (may contain {ods}) → code system
    code_systems: dict[str, CodeSystem] = field(default_factory=dict)
    # field (e.g. "OBX-3") → CWE-3 key to assume when a code carries none
    field_defaults: dict[str, str] = field(default_factory=dict)
    # field → lookup tables to use there (overrides the code system's list), for
    # feeds whose one local system reuses a code in two catalogues
    field_lookups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # lookup table name → local code → (system, code, display)
    lookups: dict[str, dict[str, tuple[str, str, str]]] = field(default_factory=dict)
    source: str = ""  # where the config was loaded from

    def for_trust(self, ods: str, trust_name: str = "") -> MappingConfig:
        return dataclasses.replace(self, ods=ods, trust_name=trust_name or self.trust_name)


def _parse(data: dict, source: str) -> MappingConfig:
    ident = data.get("identifiers", {})
    systems = data.get("systems", {})
    code_systems = {
        key: CodeSystem(uri=v["uri"], lookups=_names(v.get("lookup", ())))
        for key, v in data.get("code_systems", {}).items()
    }
    lookups: dict[str, dict[str, tuple[str, str, str]]] = {}
    for name, table in data.get("lookups", {}).items():
        rows: dict[str, tuple[str, str, str]] = {}
        for code, target in table.items():
            if not (isinstance(target, list) and len(target) in (2, 3)):
                raise ValueError(f"{source}: lookups.{name}.{code} must be [system, code, display]")
            rows[code] = (target[0], target[1], target[2] if len(target) == 3 else "")
        lookups[name] = rows
    for key, cs in code_systems.items():
        for name in cs.lookups:
            if name not in lookups:
                raise ValueError(f"{source}: code_systems.{key} names unknown lookup {name!r}")
    for key, names in data.get("field_lookups", {}).items():
        for name in _names(names):
            if name not in lookups:
                raise ValueError(f"{source}: field_lookups.{key} names unknown lookup {name!r}")
    defaults = MappingConfig(name="")
    return MappingConfig(
        name=data.get("name", Path(source).stem),
        ods=data.get("ods", ""),
        trust_name=data.get("trust_name", ""),
        timezone=data.get("timezone", defaults.timezone),
        nhs_fields=tuple(ident.get("nhs_fields", defaults.nhs_fields)),
        nhs_authorities=tuple(ident.get("nhs_authorities", defaults.nhs_authorities)),
        nhs_type_codes=tuple(ident.get("nhs_type_codes", defaults.nhs_type_codes)),
        mrn_type_codes=tuple(ident.get("mrn_type_codes", defaults.mrn_type_codes)),
        verification_field=ident.get("verification_field", defaults.verification_field),
        mrn_system=systems.get("mrn", defaults.mrn_system),
        visit_system=systems.get("visit", defaults.visit_system),
        order_system=systems.get("order", defaults.order_system),
        document_system=systems.get("document", defaults.document_system),
        local_code_system=systems.get("local_code", defaults.local_code_system),
        code_systems=code_systems,
        field_defaults=dict(data.get("field_defaults", {})),
        field_lookups={k: _names(v) for k, v in data.get("field_lookups", {}).items()},
        lookups=lookups,
        source=source,
    )


def _names(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@lru_cache(maxsize=64)
def _load_path(path: str) -> MappingConfig:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    shared = MAPPINGS_DIR / "_standard.toml"
    if shared.exists() and Path(path).resolve() != shared.resolve():
        with open(shared, "rb") as fh:
            base = tomllib.load(fh)
        data = _merge(base, data)
    try:
        return _parse(data, path)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: malformed mapping ({type(exc).__name__}: {exc})") from None


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_mapping(flavour_or_path: str | Path) -> MappingConfig:
    """A built-in flavour by name (``itk-acute``…) or a TOML file by path."""
    text = str(flavour_or_path)
    builtin = MAPPINGS_DIR / f"{text}.toml"
    if "/" not in text and not text.endswith(".toml") and builtin.exists():
        return _load_path(str(builtin))
    path = Path(text)
    if not path.exists():
        known = ", ".join(FLAVOURS)
        raise FileNotFoundError(f"no mapping {text!r} (built-in flavours: {known})")
    return _load_path(str(path.resolve()))


@lru_cache(maxsize=256)
def mapping_for_trust(ods: str, flavour: str, trust_name: str = "") -> MappingConfig:
    """The flavour's mapping bound to one trust (its ODS code fills ``{ods}``)."""
    return load_mapping(flavour).for_trust(ods, trust_name)

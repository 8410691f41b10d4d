"""Which trusts are configured: ``--trusts FILE`` / ``--trust``, ``--scenario``, a
generated DIR's manifest, or the trusts saved in the database by an earlier run.

Messages from any other sender are refused (dead-lettered "unknown sender"): there
is deliberately no "accept any sender" switch.

A trusts file is a small TOML with one table per trust::

    [city-acute]
    ods = "RXX01"                      # MSH-4.1
    sending_application = "PAS"        # MSH-3.1, or sending_applications = ["PAS", "LAB"]
    flavour = "itk-acute"              # itk-acute | classic-pas | mh-epr | a mapping TOML
    name = "City Acute"                # optional
    timezone = "Europe/London"         # optional, for timestamps without an offset

``--trust ODS=APP:flavour`` (repeatable, ``APP1,APP2`` for several applications)
says the same on the command line.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .convert import TrustInfo


class TrustsError(ValueError):
    """A trusts file or ``--trust`` value that cannot be used; the text says why."""


def _check_flavour(flavour: str, where: str) -> None:
    from shcr_sim.fhir import load_mapping

    try:
        load_mapping(flavour)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise TrustsError(f"{where}: {exc}") from None


def _check_timezone(tz: str, where: str) -> None:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise TrustsError(f"{where}: unknown time zone {tz!r}") from None


def _strings(value: object, where: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        return [value.strip()]
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return [v.strip() for v in value]
    raise TrustsError(f"{where}: needs sending_application (a name or a list of names)")


def _trust_table(label: str, table: object, where: str) -> list[TrustInfo]:
    if not isinstance(table, dict):
        raise TrustsError(f"{where}: [{label}] must be a table")
    here = f"{where} [{label}]"
    unknown = set(table) - {"ods", "sending_application", "sending_applications", "flavour",
                            "name", "timezone"}
    if unknown:
        raise TrustsError(f"{here}: unknown key(s) {', '.join(sorted(unknown))}")
    ods = table.get("ods")
    if not isinstance(ods, str) or not ods.strip():
        raise TrustsError(f"{here}: needs ods (the MSH-4 sending facility)")
    apps = _strings(table.get("sending_applications", table.get("sending_application")), here)
    flavour = table.get("flavour")
    if not isinstance(flavour, str) or not flavour:
        raise TrustsError(f"{here}: needs flavour (itk-acute, classic-pas, mh-epr or a TOML)")
    _check_flavour(flavour, here)
    name = str(table.get("name", label))
    tz = str(table.get("timezone", ""))
    if tz:
        _check_timezone(tz, here)
    return [TrustInfo(app, ods.strip(), flavour, name, tz) for app in apps]


def load_trusts_file(path: Path) -> list[TrustInfo]:
    """The trusts of a ``--trusts`` TOML file (see the module docstring)."""
    if not path.is_file():
        raise TrustsError(f"no such file: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TrustsError(f"{path}: not valid TOML: {exc}") from None
    out: list[TrustInfo] = []
    if isinstance(data.get("trusts"), list):  # [[trusts]] as in a scenario
        for i, t in enumerate(data.pop("trusts")):
            out += _trust_table(f"trusts #{i + 1}", t, str(path))
    for label, table in data.items():
        out += _trust_table(label, table, str(path))
    if not out:
        raise TrustsError(f"{path}: no trusts (one table per trust: ods, "
                          "sending_application, flavour)")
    return out


def parse_trust_spec(spec: str) -> list[TrustInfo]:
    """``ODS=APP:flavour`` (``APP1,APP2`` for several sending applications)."""
    ods, eq, rest = spec.partition("=")
    apps, colon, flavour = rest.rpartition(":")
    if not eq or not colon or not ods.strip() or not apps.strip() or not flavour.strip():
        raise TrustsError(f"--trust {spec!r}: expected ODS=APP:flavour, e.g. RXX01=PAS:itk-acute")
    _check_flavour(flavour.strip(), f"--trust {spec!r}")
    return [TrustInfo(a.strip(), ods.strip(), flavour.strip(), ods.strip())
            for a in apps.split(",") if a.strip()]


def merge_trusts(base: Iterable[TrustInfo] | None, extra: Iterable[TrustInfo]) -> list[TrustInfo]:
    """``base`` plus ``extra``; an entry of ``extra`` replaces the same (app, ods)."""
    out = {(t.app, t.ods): t for t in base or ()}
    out.update({(t.app, t.ods): t for t in extra})
    return list(out.values())


def user_trusts(trusts_file: Path | None, specs: Sequence[str]) -> list[TrustInfo]:
    """Trusts given with ``--trusts FILE`` and ``--trust ODS=APP:flavour``."""
    out: list[TrustInfo] = load_trusts_file(trusts_file) if trusts_file is not None else []
    for spec in specs:
        out = merge_trusts(out, parse_trust_spec(spec))
    return out


def _apps(primary: object, per_type: object) -> list[str]:
    """A trust's sending applications: the main one plus one per data type (if any)."""
    apps = [primary] if isinstance(primary, str) and primary else []
    more = per_type.values() if isinstance(per_type, dict) else per_type or []
    for a in more:  # type: ignore[union-attr]
        if isinstance(a, str) and a and a not in apps:
            apps.append(a)
    return apps


def trusts_from_scenario(scenario: object) -> list[TrustInfo]:
    """TrustInfo for every sending application of every trust of a scenario."""
    return [
        TrustInfo(app, t.ods, t.flavour, t.name)  # type: ignore[attr-defined]
        for t in scenario.trusts  # type: ignore[attr-defined]
        for app in _apps(t.sending_application,  # type: ignore[attr-defined]
                         getattr(t, "sending_applications", None))
    ]


def resolve_trusts(
    scenario: Path | None, dirs: Sequence[Path], *, default: bool = True
) -> list[TrustInfo] | None:
    """Trusts of ``--scenario FILE``; else those in a generated DIR's manifest.json;
    else the built-in default scenario's — or None when ``default`` is False, so the
    caller can fall back to the trusts saved in the database by an earlier run."""
    from shcr_sim.feeds.scenario import load_scenario, parse_scenario

    if scenario is not None:
        return trusts_from_scenario(load_scenario(scenario))
    for d in dirs:
        manifest = Path(d) / "manifest.json"
        if not manifest.is_file():
            continue
        data = json.loads(manifest.read_text(encoding="utf-8"))
        sc = data.get("scenario")
        if isinstance(sc, dict) and "trusts" in sc:
            return trusts_from_scenario(parse_scenario(sc, str(manifest)))
        if isinstance(sc, str) and (Path(d) / sc).is_file():
            return trusts_from_scenario(load_scenario(Path(d) / sc))
        trusts = data.get("trusts")
        if isinstance(trusts, dict) and trusts:  # generate's manifest: {ods: {...}}
            try:
                return [TrustInfo(app, ods, t["flavour"], t.get("name", ""))
                        for ods, t in trusts.items()
                        for app in _apps(t["sending_application"],
                                         t.get("sending_applications"))]
            except (KeyError, TypeError, AttributeError):
                pass
    return trusts_from_scenario(load_scenario(None)) if default else None

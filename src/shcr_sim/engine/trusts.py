"""Which trusts are configured: from ``--scenario``, a generated DIR's manifest, or the db."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .convert import TrustInfo
from .pipeline import trusts_from_scenario


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
                return [TrustInfo(t["sending_application"], ods, t["flavour"], t.get("name", ""))
                        for ods, t in trusts.items()]
            except (KeyError, TypeError):
                pass
    return trusts_from_scenario(load_scenario(None)) if default else None

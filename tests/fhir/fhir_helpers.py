"""Helpers for the conversion tests: build messages, convert, always validate.

(tests/fhir has no __init__.py on purpose: a package called ``fhir`` would
shadow ``fhir.resources``.)
"""

from __future__ import annotations

from shcr_sim.fhir import Conversion, convert_message, load_mapping, validate_bundle
from shcr_sim.hl7 import parse


def hl7(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def convert(text: str, flavour: str = "itk-acute", merged=None) -> Conversion:
    """Convert and validate: every Bundle a test produces must validate."""
    conv = convert_message(parse(text), load_mapping(flavour), merged=merged)
    validate_bundle(conv.bundle)
    return conv


def by_type(conv: Conversion, rtype: str) -> list[dict]:
    return [r for r in conv.resources if r["resourceType"] == rtype]


def one(conv: Conversion, rtype: str) -> dict:
    found = by_type(conv, rtype)
    assert len(found) == 1, f"expected one {rtype}, got {len(found)}"
    return found[0]


def scenario_trusts() -> dict[str, tuple[str, str]]:
    """ODS → (flavour, name) of the built-in scenario, as the CLI passes it to fhir commands."""
    from shcr_sim.feeds.scenario import load_scenario

    return {t.ods: (t.flavour, t.name) for t in load_scenario(None).trusts}

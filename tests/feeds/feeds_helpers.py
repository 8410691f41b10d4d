"""Shared helpers for the feeds tests: small scenarios and reading generated files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from shcr_sim.feeds.scenario import Scenario, parse_scenario
from shcr_sim.hl7 import Message, parse
from shcr_sim.hl7.files import iter_messages


def default_data() -> dict:
    text = resources.files("shcr_sim.feeds").joinpath("data/default_scenario.toml").read_text()
    return tomllib.loads(text)


ALL_TYPES = ["adt", "pathology", "radiology", "cardiology", "prescribing", "documents"]


def small_scenario(size: int = 250, every_type: bool = False, **live) -> Scenario:
    """The default scenario, smaller; ``every_type``: hospitals send every data type."""
    data = default_data()
    data["population"]["size"] = size
    if every_type:
        for t in data["trusts"]:
            if t["kind"] != "urgent-care":
                t["data_types"] = ALL_TYPES
    data["live"].update(live)
    return parse_scenario(data)


@dataclass
class Generated:
    path: Path
    text: str  # raw ER7
    msg: Message
    lane: str  # backload / live
    ods: str


def read_all(out: Path) -> list[Generated]:
    found: list[Generated] = []
    for path in sorted((out / "backload").glob("*/*.hl7")):
        for raw in iter_messages(path):
            found.append(Generated(path, raw.text, parse(raw.text), "backload", path.parent.name))
    for path in sorted((out / "live").glob("*.hl7")):
        for raw in iter_messages(path):
            found.append(Generated(path, raw.text, parse(raw.text), "live", path.stem))
    return found


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

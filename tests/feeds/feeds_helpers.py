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


def unique(messages: list[Generated]) -> list[Generated]:
    """Drop live resends (same sender -- MSH-3, MSH-4 -- and MSH-10 seen before)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for g in messages:
        key = (g.msg.sender[0], g.ods, g.msg.control_id)
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out


def local_mrn(g: Generated) -> str:
    """The sending trust's own MRN in PID-3 (assigning authority = its ODS code)."""
    for rep in g.msg["PID"].repetitions(3):
        parts = rep.split("^")
        if parts[3:4] == [g.ods]:
            return parts[0]
    raise AssertionError(f"no local MRN in {g.msg.control_id}")

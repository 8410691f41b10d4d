"""Pick a mapping for a message: by its sending trust (MSH-4) when we know it."""

from __future__ import annotations

from functools import lru_cache

from ..hl7 import Message
from .config import MappingConfig, load_mapping, mapping_for_trust

DEFAULT_FLAVOUR = "itk-acute"


@lru_cache(maxsize=1)
def _default_trusts() -> dict[str, tuple[str, str]]:
    """ODS → (flavour, name) from the built-in default scenario, if the feeds package has one."""
    try:
        from ..feeds.scenario import load_scenario

        scenario = load_scenario(None)
    except Exception:  # the scenario is a convenience, never a requirement
        return {}
    return {t.ods: (t.flavour, t.name) for t in scenario.trusts}


def mapping_for_message(msg: Message, override: str | None = None) -> MappingConfig:
    """``override`` (flavour or path) wins; else the default scenario's trust; else itk-acute."""
    if override:
        return load_mapping(override)
    ods = msg.sender[1]
    known = _default_trusts().get(ods)
    if known:
        return mapping_for_trust(ods, known[0], known[1])
    return load_mapping(DEFAULT_FLAVOUR)

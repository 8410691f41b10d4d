"""Pick a mapping for a message: by its sending trust (MSH-4) when the caller knows it.

Which trusts exist is the caller's knowledge (a scenario, the engine's saved
trusts), passed in as ``trusts``; fhir/ itself knows no scenario. When the
sending trust is unknown the mapping is a guess, and ``on_guess`` hears of it so
a command can say so instead of guessing silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..hl7 import Message
from .config import MappingConfig, load_mapping, mapping_for_trust

DEFAULT_FLAVOUR = "itk-acute"

# ODS code → (flavour, trust name)
TrustDirectory = Mapping[str, tuple[str, str]]


def mapping_for_message(msg: Message, override: str | None = None,
                        trusts: TrustDirectory | None = None,
                        on_guess: Callable[[str, str], None] | None = None) -> MappingConfig:
    """``override`` (flavour or path) wins; else the sending trust's flavour; else itk-acute.

    ``on_guess(ods, flavour)`` is called when the last rule applies.
    """
    if override:
        return load_mapping(override)
    ods = msg.sender[1]
    known = trusts.get(ods) if trusts else None
    if known:
        return mapping_for_trust(ods, known[0], known[1])
    if on_guess is not None:
        on_guess(ods, DEFAULT_FLAVOUR)
    return load_mapping(DEFAULT_FLAVOUR)


def guess_note(ods: str, flavour: str, where: str = "the default scenario") -> str:
    """The one wording every command uses for a guessed mapping."""
    who = f"trust {ods}" if ods else "sending facility (MSH-4 is empty)"
    return f"note: no {who} in {where}; using mapping {flavour} — pass --mapping to choose"

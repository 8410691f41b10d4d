"""Simulated trusts: population, journeys, vendor flavours, backload and live writers.

Public API (everything else is internal):

- ``load_scenario(path | None) -> Scenario`` (None = built-in default), ``ScenarioError``
- ``generate(scenario, out, *, messages=None, seed=None, progress=False) -> manifest``
- ``nhs_number_is_valid(str) -> bool``
- ``load_catalogue()`` — the trusts' local code catalogues (``data/codes.toml``)
- ``FLAVOURS`` — how each vendor flavour writes identifiers, times and code systems
"""

from .catalogue import load_catalogue
from .flavours import FLAVOURS
from .generate import generate
from .nhs import nhs_number_is_valid
from .scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "FLAVOURS",
    "Scenario",
    "ScenarioError",
    "generate",
    "load_catalogue",
    "load_scenario",
    "nhs_number_is_valid",
]

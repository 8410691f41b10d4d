"""HL7 v2 → FHIR R4 (UK Core conventions) conversion and validation.

Public API (used by the engine and the CLI):

- ``convert_message(msg, config, *, merged=None) -> Conversion``
- ``Conversion`` (bundle, resources, patient_id, merge, unmapped, event_time)
- ``ConversionError(message_id, segment, field, reason)``
- ``load_mapping(flavour_or_path)``, ``mapping_for_trust(ods, flavour)``
- ``validate_bundle(bundle)`` raising ``ValidationError``
"""

from .config import FLAVOURS, MappingConfig, load_mapping, mapping_for_trust
from .convert import Conversion, convert_message
from .errors import ConversionError
from .validate import ValidationError, validate_bundle

__all__ = [
    "FLAVOURS",
    "Conversion",
    "ConversionError",
    "MappingConfig",
    "ValidationError",
    "convert_message",
    "load_mapping",
    "mapping_for_trust",
    "validate_bundle",
]

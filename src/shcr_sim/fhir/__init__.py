"""HL7 v2 → FHIR R4 (UK Core conventions) conversion and validation."""

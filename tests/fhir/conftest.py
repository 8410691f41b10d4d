"""Fixtures for the conversion tests."""

from __future__ import annotations

import pytest
from fhir_helpers import hl7


@pytest.fixture
def itk_a01() -> str:
    return hl7(
        "MSH|^~\\&|PAS|RX1|SHCR|SHCR|20240315103000+0000||ADT^A01^ADT_A01|MSG0001|P|2.4",
        "EVN|A01|20240315102500+0000",
        "PID|1||9990000018^^^NHS^NH~M000123^^^RX1^PI||SMITH^JOHN^PAUL^^MR^^L||19700412|M"
        "|||1 HIGH STREET^^LEEDS^^LS1 1AA^^H||01132 123456^PRN^PH" + "|" * 19 + "01",
        "PV1|1|I|WARD1^BAY2^BED3||||C1234567^WHO^DOCTOR|||300^General Medicine"
        + "|" * 9 + "V000456" + "|" * 25 + "20240315102500+0000",
        "ZU1|1|X",
    )

"""Provenance.activity: CREATE for what is new, UPDATE (revise) for what changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir_helpers import convert, one

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "mappings"


def _activity(name: str, flavour: str) -> str:
    conv = convert((CASES / f"{name}.hl7").read_text(encoding="utf-8-sig"), flavour)
    coding = one(conv, "Provenance")["activity"]["coding"]
    assert len(coding) == 1
    assert coding[0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
    return coding[0]["code"]


@pytest.mark.parametrize(("name", "flavour", "code"), [
    ("itk_adt_a01_admit", "itk-acute", "CREATE"),
    ("itk_adt_a04_register_ed", "itk-acute", "CREATE"),
    ("itk_adt_a05_preadmit", "itk-acute", "CREATE"),
    ("itk_adt_a28_add_person", "itk-acute", "CREATE"),
    ("itk_mdm_t02_original_with_content", "itk-acute", "CREATE"),
    ("itk_oru_lab_final", "itk-acute", "CREATE"),
    ("itk_rde_o11_new_order", "itk-acute", "CREATE"),
    ("itk_adt_a02_transfer", "itk-acute", "UPDATE"),
    ("itk_adt_a03_discharge", "itk-acute", "UPDATE"),
    ("itk_adt_a08_update", "itk-acute", "UPDATE"),
    ("itk_adt_a31_update_person", "itk-acute", "UPDATE"),
    ("itk_adt_a40_merge", "itk-acute", "UPDATE"),
    ("itk_mdm_t08_replace", "itk-acute", "UPDATE"),
    ("itk_mdm_t11_cancel", "itk-acute", "UPDATE"),
    ("itk_oru_lab_corrected", "itk-acute", "UPDATE"),
    ("itk_oru_entered_in_error", "itk-acute", "UPDATE"),
    ("itk_oru_report_corrected_on_a_later_line", "itk-acute", "UPDATE"),
    ("itk_rde_o11_discontinue", "itk-acute", "UPDATE"),
])
def test_activity_per_message(name, flavour, code):
    assert _activity(name, flavour) == code

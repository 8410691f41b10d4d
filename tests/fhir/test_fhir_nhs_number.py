"""The shared modulus-11 check, and what the converter does with a number that fails it."""

from __future__ import annotations

import pytest
from fhir_helpers import convert, hl7, one
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.fhir import ConversionError
from shcr_sim.nhs_number import SYSTEM as NHS_NUMBER
from shcr_sim.nhs_number import check_digit, is_valid


@pytest.mark.parametrize("number", ["9990000018", "9990000026", "9434765919", "4010232137"])
def test_known_good_numbers_are_valid(number):
    assert is_valid(number)


@pytest.mark.parametrize("number", [
    "9990000019",  # wrong check digit
    "999000001",  # nine digits
    "99900000181",  # eleven
    "999000001X",
    "999 000 0018",  # callers strip spaces, the check does not
    "٩٩٩٠٠٠٠٠١٨",  # Arabic-Indic digits are digits to str.isdigit, not to the NHS
    "",
])
def test_bad_numbers_are_invalid(number):
    assert not is_valid(number)


def test_a_check_digit_of_ten_is_never_issued():
    assert check_digit("999000000") is None  # 11 - (243 % 11) == 10
    assert not any(is_valid(f"999000000{d}") for d in "0123456789")


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_exactly_one_last_digit_is_valid_unless_the_check_is_ten(first9):
    valid = [d for d in "0123456789" if is_valid(first9 + d)]
    check = check_digit(first9)
    assert valid == ([] if check is None else [str(check)])


def _a28(pid3: str) -> str:
    return hl7(
        "MSH|^~\\&|PAS|RX1|SHCR|SHCR|20240315103000+0000||ADT^A28^ADT_A05|M1|P|2.4",
        "EVN|A28|20240315102500+0000",
        f"PID|1||{pid3}||SMITH^JO||19700101|F" + "|" * 24 + "01",
    )


def test_invalid_nhs_number_is_kept_out_and_the_mrn_keys_the_patient():
    conv = convert(_a28("9990000019^^^NHS^NH~M1^^^RX1^PI"))
    patient = one(conv, "Patient")
    assert conv.patient_id == patient["id"] == "RX1-M1"
    assert all(i["system"] != NHS_NUMBER for i in patient["identifier"])
    assert all("9990000019" not in str(i) for i in patient["identifier"])
    assert any("9990000019" in u and "modulus-11" in u for u in conv.unmapped)


def test_valid_nhs_number_after_an_invalid_one_is_used():
    conv = convert(_a28("9990000019^^^NHS^NH~9990000018^^^NHS^NH~M1^^^RX1^PI"))
    nhs = [i for i in one(conv, "Patient")["identifier"] if i["system"] == NHS_NUMBER]
    assert [i["value"] for i in nhs] == ["9990000018"]


def test_invalid_nhs_number_alone_is_a_conversion_error():
    with pytest.raises(ConversionError) as err:
        convert(_a28("9990000019^^^NHS^NH"))
    assert err.value.field == "PID-3" and "modulus-11" in err.value.reason


def test_results_reference_no_invalid_nhs_number():
    text = hl7(
        "MSH|^~\\&|LAB|RX1|SHCR|SHCR|20240315103000+0000||ORU^R01|M2|P|2.4",
        "PID|1||9990000019^^^NHS^NH~M1^^^RX1^PI||SMITH^JO",
        "OBR|1|P1|F1|HB^Haemoglobin|||20240315090000+0000",
        "OBX|1|NM|HB^Haemoglobin||140|g/L|||||F",
    )
    conv = convert(text)
    obs = one(conv, "Observation")
    assert obs["subject"] == {"reference": "Patient/RX1-M1"}

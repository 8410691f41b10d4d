"""ACK builder: original and enhanced mode, ERR by version, broken inbound messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from shcr_sim.hl7 import HL7Error, ack_mode, build_ack, parse, wants_ack

NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)


def inbound(version: str = "2.4", extra: str = "") -> str:
    return (
        f"MSH|^~\\&|PAS|RXX^RXX HOSP|CIE|SHCR|20240701125900+0100||ADT^A01^ADT_A01|C123|P|{version}"
        f"{extra}\rEVN|A01|20240701125900+0100\rPID|1||9990000018^^^NHS^NH"
    )


def test_original_mode_aa_swaps_sender_and_receiver() -> None:
    ack = parse(build_ack(inbound(), now=NOW, control_id="ACK1"))
    msh = ack["MSH"]
    assert msh.field(3) == "CIE" and msh.field(4) == "SHCR"
    assert msh.field(5) == "PAS" and msh.field(6) == "RXX^RXX HOSP"
    assert msh.field(7) == "20240701130000+0100"  # local UK time with offset
    assert ack.message_type == "ACK^A01" and msh.field(9) == "ACK^A01^ACK"
    assert ack.control_id == "ACK1"
    assert ack.version == "2.4" and msh.field(11) == "P"
    assert ack.get("MSA-1") == "AA" and ack.get("MSA-2") == "C123"
    assert "ERR" not in ack


def test_accepts_a_parsed_message_and_bytes() -> None:
    text = inbound()
    a = build_ack(parse(text), now=NOW, control_id="X")
    assert a == build_ack(text.encode(), now=NOW, control_id="X")
    assert a == build_ack(text, now=NOW, control_id="X")


def test_control_ids_differ_between_acks() -> None:
    assert parse(build_ack(inbound(), now=NOW)).control_id != parse(
        build_ack(inbound(), now=NOW)
    ).control_id


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6"])
def test_error_v25_style_err_location_code_severity(version: str) -> None:
    err = HL7Error("NHS number check digit is wrong", "PID", 3, code="102")
    ack = parse(build_ack(inbound(version), "AE", error=err, now=NOW))
    assert ack.get("MSA-1") == "AE"
    assert ack.get("MSA-3") == "NHS number check digit is wrong"
    assert ack.get("ERR-2") == "PID^1^3"
    assert ack.get("ERR-3.1") == "102" and ack.get("ERR-3.3") == "HL70357"
    assert ack.get("ERR-4") == "E"
    assert ack.get_text("ERR-8") == "NHS number check digit is wrong"
    assert ack.get("ERR-1") == ""


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4"])
def test_error_pre_v25_uses_err_1(version: str) -> None:
    err = HL7Error("unknown segment order", "PV1", 0, code="100", occurrence=2)
    ack = parse(build_ack(inbound(version), "AR", error=err, now=NOW))
    assert ack.get("MSA-1") == "AR"
    assert ack.get("ERR-1.1") == "PV1" and ack.get("ERR-1.2") == "2"
    assert ack.get("ERR-1.4.1") == "100"
    assert ack.get("ERR-1.4.3") == "HL70357"
    assert ack.get("ERR-2") == ""


def test_error_text_is_escaped_and_custom_text_wins() -> None:
    err = HL7Error("bad value a|b^c", "PID", 5)
    ack = parse(build_ack(inbound("2.5"), "AE", text="see ERR", error=err, now=NOW))
    assert ack.get("MSA-3") == "see ERR"
    assert ack.get("ERR-3.1") == "207"  # no code given: application internal error
    ack2 = parse(build_ack(inbound("2.5"), "AE", error=err, now=NOW))
    assert ack2.get_text("MSA-3") == "bad value a|b^c"


def test_enhanced_mode_maps_to_commit_codes() -> None:
    text = inbound(extra="|||AL|NE")
    assert ack_mode(text) == "enhanced" and ack_mode(inbound()) == "original"
    assert parse(build_ack(text, "AA", mode="enhanced", now=NOW)).get("MSA-1") == "CA"
    assert parse(build_ack(text, "AE", mode="enhanced", now=NOW)).get("MSA-1") == "CE"
    assert parse(build_ack(text, "CR", mode="enhanced", now=NOW)).get("MSA-1") == "CR"
    assert parse(build_ack(text, "CA", now=NOW)).get("MSA-1") == "AA"
    with pytest.raises(ValueError):
        build_ack(text, "XX")


@pytest.mark.parametrize(
    ("condition", "on_success", "on_error"),
    [("AL", True, True), ("NE", False, False), ("ER", False, True), ("SU", True, False),
     ("", True, True)],
)
def test_wants_ack_honours_msh_15(condition: str, on_success: bool, on_error: bool) -> None:
    text = inbound(extra=f"|||{condition}|NE")
    assert wants_ack(text, accepted=True) is on_success
    assert wants_ack(text, accepted=False) is on_error


def test_wants_application_ack_honours_msh_16() -> None:
    text = inbound(extra="|||NE|ER")
    assert wants_ack(text, accepted=True) is False
    assert wants_ack(text, accepted=True, kind="application") is False
    assert wants_ack(text, accepted=False, kind="application") is True


def test_broken_message_still_gets_an_ack_from_the_salvaged_header() -> None:
    broken = "MSH|^^~&|PAS|RXX|CIE|SHCR|20240101||ADT^A01|C999|P|2.5\rPID|x"
    with pytest.raises(HL7Error):
        parse(broken)
    ack = parse(build_ack(broken, "AR", error=HL7Error("bad MSH-2", "MSH", 2), now=NOW))
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == "C999"
    assert ack["MSH"].field(5) == "PAS" and ack["MSH"].field(6) == "RXX"
    assert ack.version == "2.5"
    assert ack.get("ERR-2") == "MSH^1^2"


@pytest.mark.parametrize("text", ["", "garbage", "PID|1|x", "MSH", b"\xff\xfe\x00"])
def test_hopeless_input_gets_a_default_ack(text: str | bytes) -> None:
    ack = parse(build_ack(text, "AR", error=HL7Error("not HL7"), now=NOW))
    assert ack.get("MSA-1") == "AR" and ack.get("MSA-2") == ""
    assert ack.version == "2.4"
    assert ack.message_type == "ACK"


def test_custom_delimiters_are_echoed() -> None:
    text = "MSH#*@!$#APP#FAC#CIE#SHCR#2024##ADT*A04#C1#P#2.5\rPID#1"
    ack = build_ack(text, "AE", error=HL7Error("x*y", "PID", 3), now=NOW)
    assert ack.startswith("MSH#*@!$#CIE#SHCR#APP#FAC#")
    assert parse(ack).get_text("ERR-8") == "x*y"


def test_character_set_is_echoed() -> None:
    text = inbound(extra="|||AL|NE|GBR|UNICODE UTF-8")
    assert parse(build_ack(text, now=NOW))["MSH"].field(18) == "UNICODE UTF-8"


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1", "2.6"])
@pytest.mark.parametrize("code", ["AA", "AE"])
def test_acks_validate_with_hl7apy(version: str, code: str) -> None:
    err = HL7Error("bad", "PID", 3, code="102") if code == "AE" else None
    ack = build_ack(inbound(version), code, error=err, now=NOW)
    msg = parse_message(ack, find_groups=True, validation_level=VALIDATION_LEVEL.STRICT)
    assert msg.validate() is True

"""The lazy ER7 tokenizer: delimiters, separators, accessors, header shortcuts."""

from __future__ import annotations

import pytest

from shcr_sim.hl7 import HL7Error, parse

ADT = "\r".join(
    [
        "MSH|^~\\&|PAS|RXX^ODS|CIE|SHCR|20240315143000+0000||ADT^A01^ADT_A01|C1|P|2.4",
        "EVN|A01|20240315142500+0000",
        "PID|1||9990000018^^^NHS^NH~RXX123^^^RXX&1.2.3&ISO^PI||O'Brien^Siobhan||19780412|F",
        "OBX|1|TX|C^Comment||first \\F\\ line\\.br\\next||||||F",
        "OBX|2|NM|NA^Sodium||139|mmol/L",
    ]
)


def test_fields_repetitions_components_subcomponents() -> None:
    msg = parse(ADT)
    pid = msg["PID"]
    assert pid.name == "PID"
    assert pid.field(3) == "9990000018^^^NHS^NH~RXX123^^^RXX&1.2.3&ISO^PI"
    assert pid.repetitions(3) == ["9990000018^^^NHS^NH", "RXX123^^^RXX&1.2.3&ISO^PI"]
    assert pid.get(3, rep=2, comp=4, sub=2) == "1.2.3"
    assert pid.get(3, rep=2, comp=4) == "RXX&1.2.3&ISO"
    assert pid.get(3, rep=3) == ""
    assert pid.get(5, comp=2) == "Siobhan"
    assert pid.get(7, comp=1, sub=1) == "19780412"  # no delimiters: component 1 is the value
    assert pid.get(7, comp=2) == ""
    assert pid[3].component(1, rep=2) == "RXX123"
    assert pid[3].component(0, rep=2) == "RXX123^^^RXX&1.2.3&ISO^PI"
    assert pid[99] == "" and pid.field(99) == ""


def test_paths_like_python_hl7() -> None:
    msg = parse(ADT)
    assert msg.get("PID-3(2).1") == "RXX123"
    assert msg.get("PID.3(2).4.3") == "ISO"
    assert msg.get("PID-5.1") == "O'Brien"
    assert msg.get("OBX[2]-5") == "139"
    assert msg.get("OBX[3]-5") == ""
    assert msg.get("ZZZ-1") == ""
    assert msg.get("EVN") == "EVN|A01|20240315142500+0000"
    with pytest.raises(ValueError):
        msg.get("PID/3")


def test_get_text_unescapes_with_message_delimiters() -> None:
    msg = parse(ADT)
    assert msg.get("OBX-5") == "first \\F\\ line\\.br\\next"
    assert msg.get_text("OBX-5") == "first | line\nnext"
    assert msg["OBX"].get_text(5) == "first | line\nnext"


def test_segment_lookup() -> None:
    msg = parse(ADT)
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "OBX", "OBX"]
    assert "PID" in msg and "PV1" not in msg
    assert msg.segment("OBX", 2) is msg.all("OBX")[1]
    assert msg.segment("OBX", 3) is None
    assert msg.all("NTE") == []
    with pytest.raises(KeyError):
        msg["PV1"]


def test_header_shortcuts() -> None:
    msg = parse(ADT)
    assert msg.control_id == "C1"
    assert msg.message_type == "ADT^A01"
    assert msg.version == "2.4"
    assert msg.sender == ("PAS", "RXX")
    assert msg.delims.field == "|" and msg.delims.escape == "\\"


def test_msh_1_and_2_are_the_delimiters_not_split() -> None:
    msh = parse(ADT)["MSH"]
    assert msh.field(1) == "|" and msh.field(2) == "^~\\&"
    assert msh.field(3) == "PAS" and msh.field(9) == "ADT^A01^ADT_A01"
    assert msh.repetitions(2) == ["^~\\&"]
    assert msh[2].repetitions() == ["^~\\&"]
    assert msh[2].component(1) == "^~\\&"
    assert msh.get(2, comp=1) == "^~\\&"


def test_custom_delimiters_from_msh() -> None:
    text = "MSH#*@!$#APP#FAC#R#F#2024##ADT*A04#X9#P#2.5\rPID#1##A*B$C@D#N!F!x!S!y"
    msg = parse(text)
    assert msg.message_type == "ADT^A04"
    assert msg["PID"].get(3, rep=1, comp=2, sub=2) == "C"
    assert msg["PID"].get(3, rep=2) == "D"
    assert msg.get_text("PID-4") == "N#x*y"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators_bom_trailing_spaces_blank_lines(sep: str) -> None:
    lines = ADT.split("\r")
    text = "\ufeff" + sep.join(line + "   " for line in lines) + sep + sep + "  " + sep
    msg = parse(text)
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "OBX", "OBX"]
    assert msg.get("OBX[2]-6") == "mmol/L"
    assert msg.control_id == "C1"


def test_bare_lf_inside_a_cr_message_stays_data() -> None:
    text = "MSH|^~\\&|A|B|C|D|2024||ORU^R01|1|P|2.5\rOBX|1|TX|c||line one\nline two|x\rNTE|1"
    msg = parse(text)
    assert [s.name for s in msg.segments] == ["MSH", "OBX", "NTE"]
    assert msg.get("OBX-5") == "line one\nline two"


def test_lf_before_a_segment_splits_even_in_a_cr_message() -> None:
    text = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1\nPV1|1|I\r"
    assert [s.name for s in parse(text).segments] == ["MSH", "PID", "PV1"]


def test_bytes_are_decoded_as_utf8_with_replacement() -> None:
    raw = "MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1||x||Nguyễn".encode() + b"\xff"
    msg = parse(raw)
    assert msg.get("PID-5") == "Nguyễn\ufffd"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PID|1||x",
        "MSH",
        "MSH|^",
        "MSHA^~\\&|x",
        "MSH|garbage|A",
        "MSH|^^\\&|dup",
        "MSH| ~\\&|sp",
    ],
)
def test_broken_headers_raise_hl7error_naming_msh(text: str) -> None:
    with pytest.raises(HL7Error) as err:
        parse(text)
    assert err.value.segment == "MSH"


def test_segments_are_split_lazily() -> None:
    msg = parse(ADT)
    assert msg.control_id == "C1"
    pid = msg["PID"]
    assert pid._fields is None  # nobody read a PID field yet
    assert pid.get(3, comp=1) == "9990000018"
    assert pid._fields is not None
    assert msg["EVN"]._fields is None


def test_backslash_as_a_separator_and_another_escape_character() -> None:
    # hl7apy mangles this (see codec_reference.py); the standard allows it
    msg = parse("MSH|\\+;~|A|B|C|D|2024||ADT\\A01|1|P|2.6\rPID|1||x\\y~z+w|a;S;b")
    assert msg.message_type == "ADT^A01"
    assert msg["PID"].get(3, rep=1, comp=2, sub=2) == "z"
    assert msg["PID"].get(3, rep=2) == "w"
    assert msg.get_text("PID-4") == "a\\b"


def test_hl7error_keeps_its_fields_through_pickle() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(HL7Error("bad check digit", "PID", 3, code="102")))
    assert (err.reason, err.segment, err.field, err.code) == ("bad check digit", "PID", 3, "102")
    assert str(err) == "PID-3: bad check digit"


def test_every_accessor_reads_through_field() -> None:
    """fhir's coverage report subclasses Segment and hooks field(n)."""
    seen: list[int] = []

    class Recording(type(parse(ADT)["PID"])):  # type: ignore[misc]
        def field(self, n: int) -> str:
            seen.append(n)
            return super().field(n)

    seg = Recording(parse(ADT)["PID"].raw)
    seg.get(3, 2, 1)
    seg.get_text(5, comp=1)
    seg.repetitions(7)
    _ = seg[8]
    assert seen == [3, 5, 7, 8]

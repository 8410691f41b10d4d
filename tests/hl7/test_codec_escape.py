"""Escape sequences: exact round trip with any delimiters, decoding of every sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.hl7 import DEFAULT_DELIMITERS, Delimiters, escape, parse, unescape

PUNCT = "|^~\\&#*@!$%+=:;?/"


def b(text: str) -> str:
    """Write escape sequences with / for readability: b("/F/") == "\\F\\"."""
    return text.replace("/", "\\")


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    chars = draw(st.permutations(PUNCT))[:5]
    return Delimiters(*chars)


@given(text=st.text(), delims=delimiters())
def test_round_trip_any_text_any_delimiters(text: str, delims: Delimiters) -> None:
    escaped = escape(text, delims)
    assert unescape(escaped, delims) == text
    # escaped text never carries a delimiter or a segment/frame breaker
    for ch in (delims.field, delims.component, delims.repetition, delims.subcomponent):
        assert ch not in escaped
    for ch in "\r\n\x0b\x1c":
        assert ch not in escaped


@given(text=st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)))
def test_non_bmp_text_passes_through_untouched(text: str) -> None:
    assert escape(text) == text
    assert unescape(escape(text)) == text


@given(text=st.text(), delims=delimiters())
def test_escaped_text_survives_a_message_field(text: str, delims: Delimiters) -> None:
    d = delims
    header = f"MSH{d.field}{d.component}{d.repetition}{d.escape}{d.subcomponent}"
    body = f"NTE{d.field}1{d.field}{d.field}{escape(text, d)}{d.field}end"
    msg = parse(f"{header}{d.field}A{d.field}B\r{body}")
    assert msg.get_text("NTE-3") == text
    assert msg.get("NTE-4") == "end"


def test_every_named_sequence() -> None:
    assert unescape(b("a/F/b/S/c/T/d/R/e/E/f")) == "a|b^c&d~e\\f"
    assert unescape(b("line/.br/next/.sp/x")) == "line\nnext\nx"
    assert unescape(b("/H/bold/N/ normal")) == "bold normal"
    assert unescape(b("/C2842/x/M2442/y/Zlocal/")) == "xy"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b("/X41/"), "A"),
        (b("/X0D0A/"), "\r\n"),
        (b("/Xe282ac/"), "€"),  # UTF-8 bytes
        (b("/XC3A9/"), "é"),
        (b("/XF09F9880/"), "😀"),  # non-BMP
        (b("/XE9/"), "é"),  # not UTF-8: Latin-1
        (b("/XZZ/"), b("/XZZ/")),  # not hex: kept literally
        (b("/X123/"), b("/X123/")),  # odd length: kept literally
    ],
)
def test_hex_sequences(raw: str, text: str) -> None:
    assert unescape(raw) == text


def test_unknown_and_unterminated_escapes_are_kept() -> None:
    assert unescape(b("C:/temp/q/x")) == b("C:/temp/q/x")
    assert unescape("trailing\\") == "trailing\\"
    assert unescape("no escapes") == "no escapes"


def test_custom_escape_character() -> None:
    d = Delimiters(field="#", component="*", repetition="@", escape="!", subcomponent="$")
    assert unescape("a!F!b!S!c!E!", d) == "a#b*c!"
    assert escape("a#b*c!\\", d) == "a!F!b!S!c!E!\\"
    assert unescape("a\\F\\b", d) == "a\\F\\b"  # backslash is not this message's escape


def test_escape_of_plain_text_returns_same_object() -> None:
    text = "Nothing special here, café."
    assert escape(text, DEFAULT_DELIMITERS) is text

"""HL7 escape sequences, decoded and encoded with the message's own delimiters.

``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` map to the field, component, sub-component,
repetition and escape characters; ``\\.br\\`` is a line break; ``\\Xhh..\\`` is
hex-encoded bytes, decoded as UTF-8 (falling back to Latin-1). Formatting
sequences we do not render (``\\H\\ \\N\\ \\.sp\\`` …) are dropped, as a text
viewer would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Delimiters


def _default():
    from .message import DEFAULT_DELIMITERS

    return DEFAULT_DELIMITERS


def _hex(seq: str) -> str:
    try:
        raw = bytes.fromhex(seq)
    except ValueError:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def unescape(text: str, delims: Delimiters | None = None) -> str:
    """Decode escape sequences. Text without the escape character is returned as is."""
    d = delims or _default()
    esc = d.escape
    if esc not in text:
        return text
    table = {
        "F": d.field,
        "S": d.component,
        "T": d.subcomponent,
        "R": d.repetition,
        "E": esc,
        ".br": "\n",
    }
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find(esc, i)
        if j == -1:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        if k == -1:  # a lone escape character: keep it literally
            out.append(text[j:])
            break
        seq = text[j + 1 : k]
        if seq in table:
            out.append(table[seq])
        elif seq[:1] == "X":
            out.append(_hex(seq[1:]))
        elif seq[:1] in ("H", "N", "Z", "C", "M") or seq[:1] == ".":
            pass  # highlighting / formatting / locally defined: no text
        else:
            out.append(text[j : k + 1])
        i = k + 1
    return "".join(out)


def escape(text: str, delims: Delimiters | None = None) -> str:
    """Encode delimiters and line breaks so text can sit inside a field."""
    d = delims or _default()
    esc = d.escape
    specials = (esc, d.field, d.component, d.subcomponent, d.repetition, "\n", "\r")
    if not any(c in text for c in specials):
        return text
    mapping = {
        esc: f"{esc}E{esc}",
        d.field: f"{esc}F{esc}",
        d.component: f"{esc}S{esc}",
        d.subcomponent: f"{esc}T{esc}",
        d.repetition: f"{esc}R{esc}",
        "\n": f"{esc}.br{esc}",
        "\r": "",
    }
    return "".join(mapping.get(c, c) for c in text.replace("\r\n", "\n"))

"""HL7 escape sequences, decoded and encoded with the message's own delimiters.

``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` map to the field, component, sub-component,
repetition and escape characters; ``\\.br\\`` is a line break; ``\\Xhh..\\`` is
hex-encoded bytes, decoded as UTF-8 (falling back to Latin-1). ``\\.sp\\`` is
a line break too; other formatting sequences (``\\H\\ \\N\\ \\.in\\`` …) and
character-set switches (``\\C..\\ \\M..\\``) carry no text and are dropped, as a
text viewer would. Anything else (a lone escape character, an unknown sequence,
bad hex) is kept literally: losing data is worse than showing a backslash.

``escape`` is exact: ``unescape(escape(s)) == s`` for every string. LF becomes
``\\.br\\``; CR and the MLLP framing bytes (VT, FS) become ``\\X0D\\`` etc., so
escaped text can never break a segment or a frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Delimiters


def _default():
    from .message import DEFAULT_DELIMITERS

    return DEFAULT_DELIMITERS


def _hex(seq: str) -> str | None:
    if len(seq) % 2 or not seq:
        return None
    try:
        raw = bytes.fromhex(seq)
    except ValueError:
        return None
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
        elif seq[:1] == "X" and (decoded := _hex(seq[1:])) is not None:
            out.append(decoded)
        elif seq[:3] == ".sp":
            out.append("\n")
        elif seq in ("H", "N") or seq[:1] in ("C", "M", "Z") or seq[:1] == ".":
            pass  # highlighting / formatting / charset switch / local: no text
        else:
            out.append(text[j : k + 1])
        i = k + 1
    return "".join(out)


def escape(text: str, delims: Delimiters | None = None) -> str:
    """Encode delimiters and line breaks so text can sit inside a field."""
    d = delims or _default()
    esc = d.escape
    mapping = _mapping(d.field, d.component, d.repetition, esc, d.subcomponent)
    if not any(c in text for c in mapping):
        return text
    return "".join([mapping.get(c, c) for c in text])


@lru_cache(maxsize=64)
def _mapping(fs: str, cs: str, rs: str, esc: str, ss: str) -> dict[str, str]:
    return {
        esc: f"{esc}E{esc}",
        fs: f"{esc}F{esc}",
        cs: f"{esc}S{esc}",
        ss: f"{esc}T{esc}",
        rs: f"{esc}R{esc}",
        "\n": f"{esc}.br{esc}",
        "\r": f"{esc}X0D{esc}",
        "\x0b": f"{esc}X0B{esc}",
        "\x1c": f"{esc}X1C{esc}",
    }

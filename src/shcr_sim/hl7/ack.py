"""ACK messages: original mode (AA/AE/AR) and enhanced-mode accept acks (CA/CE/CR).

An ACK must go out even when the inbound message is too broken to parse — the
sender is waiting on the socket — so the header is read from whatever of the MSH
line can be salvaged, falling back to defaults. The reply swaps sender and
receiver, echoes the version and processing id, answers MSH-10 in MSA-2 and, for
errors, names the segment/field at fault in ERR: v2.5+ style (ERR-2 location,
ERR-3 HL7 table 0357 code, ERR-4 severity) or, before v2.5, ERR-1.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Literal

from .escape import escape
from .message import DEFAULT_DELIMITERS, Delimiters, HL7Error, Message, parse
from .timestamps import format_ts, zone

Mode = Literal["original", "enhanced"]

DEFAULT_VERSION = "2.4"
_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
_ORIGINAL = {v: k for k, v in _ENHANCED.items()}
# HL7 table 0357 (message error condition codes) — the ones an engine uses
ERROR_CODES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
_counter = itertools.count(1)


class _Header:
    """The inbound MSH fields an ACK needs (raw, in ``delims``)."""

    __slots__ = ("delims", "fields")

    def __init__(self, delims: Delimiters, fields: dict[int, str]) -> None:
        self.delims = delims
        self.fields = fields

    def get(self, n: int) -> str:
        return self.fields.get(n, "")

    def component(self, n: int, comp: int) -> str:
        parts = self.get(n).split(self.delims.repetition)[0].split(self.delims.component)
        return parts[comp - 1] if len(parts) >= comp else ""


def _from_message(msg: Message) -> _Header:
    msh = msg.msh
    return _Header(msg.delims, {n: msh.field(n) for n in (3, 4, 5, 6, 9, 10, 11, 12, 15, 16, 18)})


def _salvage(text: str) -> _Header:
    """Read what we can of an MSH line that ``parse`` refused."""
    start = text.find("MSH")
    if start == -1:
        return _Header(DEFAULT_DELIMITERS, {})
    line = text[start:]
    for sep in ("\r", "\n"):
        line = line.split(sep, 1)[0]
    if len(line) < 4 or line[3].isalnum() or line[3].isspace():
        return _Header(DEFAULT_DELIMITERS, {})
    parts = line.split(line[3])  # parts[n - 1] is MSH-n for n >= 2
    fields = {n: parts[n - 1] for n in (3, 4, 5, 6, 9, 10, 11, 12, 15, 16, 18) if n <= len(parts)}
    # the delimiters were the problem (or may be): keep only plain text
    safe = {n: v for n, v in fields.items() if v.replace(" ", "").replace(".", "").isalnum()}
    return _Header(DEFAULT_DELIMITERS, safe)


def _header(msg: Message | str | bytes) -> _Header:
    if isinstance(msg, Message):
        return _from_message(msg)
    text = msg.decode("utf-8", errors="replace") if isinstance(msg, bytes) else msg
    try:
        return _from_message(parse(text))
    except HL7Error:
        return _salvage(text)


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out) or (2, 4)


def ack_mode(msg: Message | str | bytes) -> Mode:
    """Enhanced mode when the sender filled MSH-15 or MSH-16, else original."""
    h = _header(msg)
    return "enhanced" if h.get(15) or h.get(16) else "original"


def wants_ack(
    msg: Message | str | bytes,
    accepted: bool,
    kind: Literal["accept", "application"] = "accept",
) -> bool:
    """Should an ACK go back? Honours MSH-15 (accept) or MSH-16 (application):
    AL always, NE never, ER only on error, SU only on success; empty means always."""
    condition = _header(msg).component(15 if kind == "accept" else 16, 1).upper()
    if condition == "NE":
        return False
    if condition == "ER":
        return not accepted
    if condition == "SU":
        return accepted
    return True  # AL, empty (original mode) or unknown: answer


def _err_segment(error: HL7Error, version: tuple[int, ...], d: Delimiters, text: str) -> str:
    code = error.code or "207"
    label = ERROR_CODES.get(code, "")
    seg = error.segment if len(error.segment) == 3 and error.segment.isalnum() else ""
    occurrence = str(error.occurrence) if seg else ""
    field = str(error.field) if seg and error.field else ""
    c, s, f = d.component, d.subcomponent, d.field
    if version >= (2, 5):
        location = c.join([seg, occurrence, field]).rstrip(c)
        code_cwe = c.join([code, escape(label, d), "HL70357"])
        user = escape(text, d)
        return f.join(["ERR", "", location, code_cwe, "E", "", "", "", user]).rstrip(f)
    code_ce = s.join([code, escape(label, d), "HL70357"])
    return f.join(["ERR", c.join([seg, occurrence, field, code_ce])])


def build_ack(
    msg: Message | str | bytes,
    code: str = "AA",
    text: str = "",
    error: HL7Error | None = None,
    mode: Mode = "original",
    control_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """The ER7 text (segments joined by CR, no framing) of the ACK answering ``msg``.

    ``code`` is AA/AE/AR; in enhanced mode it becomes CA/CE/CR (CA/CE/CR are also
    accepted directly). ``error`` adds an ERR segment; its reason is the MSA-3 text
    when ``text`` is empty.
    """
    code = code.upper()
    if mode == "enhanced":
        code = _ENHANCED.get(code, code)
        if code not in _ORIGINAL:
            raise ValueError(f"not an accept-ack code: {code!r}")
    else:
        code = _ORIGINAL.get(code, code)
        if code not in _ENHANCED:
            raise ValueError(f"not an acknowledgment code: {code!r}")
    h = _header(msg)
    d = h.delims
    f, c = d.field, d.component
    version_raw = h.get(12) or DEFAULT_VERSION
    version = _version_tuple(version_raw.split(c)[0])
    trigger = h.component(9, 2)
    if trigger:
        msg_type = c.join(["ACK", trigger, "ACK"] if version >= (2, 3, 1) else ["ACK", trigger])
    else:
        msg_type = "ACK"
    now = now or datetime.now(UTC)
    ts = format_ts(now.astimezone(zone("Europe/London")), "second", True)
    if control_id is None:
        control_id = f"{now:%y%m%d%H%M%S}{next(_counter) % 100000:05d}"
    msh = [
        "MSH",
        d.component + d.repetition + d.escape + d.subcomponent,
        h.get(5),
        h.get(6),
        h.get(3),
        h.get(4),
        ts,
        "",
        msg_type,
        escape(control_id, d),
        h.get(11) or "P",
        version_raw,
    ]
    if h.get(18):
        msh += ["", "", "", "", "", h.get(18)]
    if not text and error is not None:
        text = error.reason
    msa_text = escape(text[:80], d)
    segments = [f.join(msh), f.join(["MSA", code, h.get(10), msa_text]).rstrip(f)]
    if error is not None:
        segments.append(_err_segment(error, version, d, text))
    return "\r".join(segments)

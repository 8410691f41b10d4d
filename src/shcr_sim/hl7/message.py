"""A lazy ER7 tokenizer: split only what a caller reads.

The API follows python-hl7 in spirit: ``msg["PID"]`` is the first PID segment,
``msg["PID"][3]`` is field PID-3 (1-based, as in the standard), and
``msg.get("PID-3(2).4")`` reads repetition 2, component 4 of PID-3.
Values returned by ``get``/``field``/``component`` are *raw* (still escaped);
``get_text`` decodes escape sequences with the message's own delimiters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .escape import unescape


class HL7Error(ValueError):
    """Malformed ER7. ``segment``/``field`` name where it went wrong, when known."""

    def __init__(
        self, reason: str, segment: str = "", field: int = 0, code: str = "", occurrence: int = 1
    ) -> None:
        where = f"{segment}-{field}" if segment and field else segment
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.segment = segment
        self.field = field
        self.code = code  # HL7 table 0357 error code for the ACK ERR segment, if known
        self.occurrence = occurrence  # which repeat of the segment (1-based)

    def __reduce__(self):  # survives pickling to/from worker processes with its fields
        return (type(self), (self.reason, self.segment, self.field, self.code, self.occurrence))


@dataclass(frozen=True, slots=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_DELIMITERS = Delimiters()

_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<segrep>\d+)\])?"
    r"(?:[-.](?P<field>\d+)(?:\((?P<rep>\d+)\))?"
    r"(?:\.(?P<comp>\d+)(?:\.(?P<sub>\d+))?)?)?$"
)


@lru_cache(maxsize=4096)
def _parse_path(path: str) -> tuple[str, int, int, int, int, int]:
    """(segment, segment repeat, field, repetition, component, sub-component); cached."""
    m = _PATH.match(path)
    if not m:
        raise ValueError(f"not an HL7 path: {path!r}")
    return (
        m["seg"],
        int(m["segrep"] or 1),
        int(m["field"] or 0),
        int(m["rep"] or 1),
        int(m["comp"] or 0),
        int(m["sub"] or 0),
    )


def _nth(parts: list[str], n: int) -> str:
    return parts[n - 1] if 0 < n <= len(parts) else ""


def _part(value: str, sep: str, k: int) -> str:
    """Part k (1-based) of ``value`` split on ``sep``, splitting only as far as needed
    (``split(sep, k)[k-1]`` is the k-th part of a full split) and not at all when
    ``sep`` is absent."""
    if sep not in value:
        return value if k == 1 else ""
    if k == 1:
        return value.partition(sep)[0]
    parts = value.split(sep, k) if k > 0 else []
    return parts[k - 1] if len(parts) >= k > 0 else ""


def _select(value: str, d: Delimiters, rep: int, comp: int, sub: int) -> str:
    """Repetition rep, component comp, sub-component sub of a non-empty field value."""
    value = _part(value, d.repetition, rep)
    if comp:
        value = _part(value, d.component, comp)
        if sub:
            value = _part(value, d.subcomponent, sub)
    return value


_HEADERS = ("MSH", "FHS", "BHS")  # segments whose fields 1 and 2 are the delimiters


class Field(str):
    """One field's raw text, with repetition/component helpers (1-based)."""

    delims: Delimiters = DEFAULT_DELIMITERS

    @classmethod
    def of(cls, text: str, delims: Delimiters) -> Field:
        f = cls(text)
        if delims is not DEFAULT_DELIMITERS:
            f.delims = delims
        return f

    def repetitions(self) -> list[str]:
        return self.split(self.delims.repetition) if self else []

    def component(self, comp: int, rep: int = 1) -> str:
        """Component comp (1-based) of repetition rep; comp 0 is the whole repetition."""
        d = self.delims
        value = _nth(self.split(d.repetition), rep)
        return _nth(value.split(d.component), comp) if comp else value


class _DelimiterField(Field):
    """MSH-1 / MSH-2: the delimiters themselves, never split."""

    def repetitions(self) -> list[str]:
        return [str(self)] if self else []

    def component(self, comp: int, rep: int = 1) -> str:
        return str(self) if rep == 1 and comp <= 1 else ""


class Segment:
    """One segment. Fields are split on first access and then cached.

    Every accessor reads through ``field(n)``, so a subclass can observe which fields
    a mapping reads (the fhir coverage report does).
    """

    __slots__ = ("raw", "delims", "_fields", "name")

    def __init__(self, raw: str, delims: Delimiters = DEFAULT_DELIMITERS) -> None:
        self.raw = raw
        self.delims = delims
        self._fields: list[str] | None = None
        self.name = raw[:3]  # a plain attribute: mappings test it ~20 times a message

    @property
    def fields(self) -> list[str]:
        """Index 0 is the segment name; index n is field n (MSH-1 is the field separator)."""
        if self._fields is None:
            parts = self.raw.split(self.delims.field)
            if parts[0] in _HEADERS:
                parts.insert(1, self.delims.field)
            self._fields = parts
        return self._fields

    def field(self, n: int) -> str:
        f = self._fields
        if f is None:
            f = self.fields
        return f[n] if 0 <= n < len(f) else ""

    def __getitem__(self, n: int) -> Field:
        if n <= 2 and self.raw[:3] in _HEADERS:
            return _DelimiterField.of(self.field(n), self.delims)
        return Field.of(self.field(n), self.delims)

    def __len__(self) -> int:
        return len(self.fields) - 1

    def repetitions(self, n: int) -> list[str]:
        value = self.field(n)
        if not value or (n <= 2 and self.raw[:3] in _HEADERS):
            return [value] if value else []
        return value.split(self.delims.repetition)

    def get(self, n: int, rep: int = 1, comp: int = 0, sub: int = 0) -> str:
        """Raw value of field n, repetition rep, component comp, sub-component sub.

        The hot path of every mapping, so ``field(n)`` is inlined here; a subclass
        that overrides ``field`` gets ``_get_via_field`` instead (see
        ``__init_subclass__``), so every read still goes through its ``field``.
        """
        f = self._fields
        if f is None:
            f = self.fields
        value = f[n] if 0 <= n < len(f) else ""
        if not value:
            return ""
        if n <= 2 and self.raw[:3] in _HEADERS:
            return value if rep == 1 and comp <= 1 and sub <= 1 else ""
        d = self.delims
        if rep != 1 or sub:
            return _select(value, d, rep, comp, sub)
        # the common read: first repetition, whole or one component (_select inlined)
        sep = d.repetition
        if sep in value:
            value = value.partition(sep)[0]
        if comp == 1:
            sep = d.component
            return value.partition(sep)[0] if sep in value else value
        if comp:
            sep = d.component
            if sep in value:
                parts = value.split(sep, comp) if comp > 0 else []
                value = parts[comp - 1] if len(parts) >= comp > 0 else ""
            elif comp != 1:
                return ""
        return value

    def _get_via_field(self, n: int, rep: int = 1, comp: int = 0, sub: int = 0) -> str:
        """``get`` reading through ``self.field(n)`` (for subclasses that observe reads)."""
        value = self.field(n)
        if not value:
            return ""
        if n <= 2 and self.raw[:3] in _HEADERS:
            return value if rep == 1 and comp <= 1 and sub <= 1 else ""
        return _select(value, self.delims, rep, comp, sub)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        overrides = cls.field is not Segment.field or cls.fields is not Segment.fields
        if overrides and "get" not in cls.__dict__:
            cls.get = Segment._get_via_field  # type: ignore[method-assign]

    def get_text(self, n: int, rep: int = 1, comp: int = 0, sub: int = 0) -> str:
        value = self.get(n, rep, comp, sub)
        return unescape(value, self.delims) if self.delims.escape in value else value

    def __repr__(self) -> str:
        return f"Segment({self.raw[:40]!r})"

    def __str__(self) -> str:
        return self.raw


def _is_segment_start(line: str, fs: str) -> bool:
    return len(line) >= 4 and line[3] == fs and line[:3].isalnum() and line[:3].isupper()


def _split_lf(piece: str, fs: str, out: list[str]) -> None:
    """Split on LF only where the next line starts a segment; other LFs are data."""
    current = ""
    for line in piece.split("\n"):
        if _is_segment_start(line, fs) or not current.strip():
            if current:
                out.append(current)
            current = line
        else:
            current += "\n" + line
    out.append(current)


def _split_segments(text: str, fs: str = "|") -> list[str]:
    """Segments separated by CR, LF or CRLF; trailing spaces and blank lines dropped.

    A bare LF inside a CR-separated message is kept as data unless what follows it
    looks like a segment (``ABC|``) — hl7apy treats LF as data, senders on Unix use
    it as the separator, and this serves both.
    """
    pieces = text.split("\r")
    if "\n" in text:
        split: list[str] = []
        for piece in pieces:
            if "\n" in piece:
                _split_lf(piece, fs, split)
            else:
                split.append(piece)
        pieces = [p.rstrip("\n") for p in split]
    return [q for p in pieces if (q := p.rstrip(" ")) and not q.isspace()]


_LEAD = "\ufeff\r\n \x0b"  # BOM, blank lines, an MLLP start byte left by a sloppy reader
_TRAIL = "\r\n \x1c"


@lru_cache(maxsize=256)
def _delimiters(fs: str, head: str) -> Delimiters:
    """Delimiters from MSH-1 and MSH-2's first 6 characters (cached: feeds reuse a few)."""
    enc = head
    for stop in (fs, "\r", "\n"):
        enc = enc.split(stop, 1)[0]
    bad = (
        not 2 <= len(enc) <= 5  # v2.7 adds a 5th (truncation) character we do not use
        or any(ch.isalnum() or ch.isspace() for ch in fs + enc)
        or len(set(fs + enc[:4])) != len(enc[:4]) + 1
    )
    if bad:
        raise HL7Error("MSH-1/MSH-2 delimiters are missing or invalid", "MSH", 2, code="102")
    if fs + enc == "|^~\\&":
        return DEFAULT_DELIMITERS
    return Delimiters(
        field=fs,
        component=enc[0],
        repetition=enc[1],
        escape=enc[2] if len(enc) > 2 else "\\",
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )


class Message:
    """A parsed HL7 v2 message; segments are split lazily."""

    __slots__ = ("raw", "delims", "_lines", "_segments", "_index", "_msh")

    def __init__(self, raw: str) -> None:
        if raw[:1] in _LEAD or raw[-1:] in _TRAIL:
            raw = raw.lstrip(_LEAD).rstrip(_TRAIL)
        if raw[:3] != "MSH" or len(raw) < 8:
            raise HL7Error("message does not start with an MSH segment", "MSH", code="100")
        self.delims = _delimiters(raw[3], raw[4:10])
        self.raw = raw
        self._lines: list[str] | None = None
        self._segments: list[Segment] | None = None
        self._index: dict[str, list[Segment]] | None = None
        self._msh: Segment | None = None  # MSH alone, before (and then as) segments[0]

    # -- segments -------------------------------------------------------
    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = _split_segments(self.raw, self.delims.field)
        return self._lines

    @property
    def segments(self) -> list[Segment]:
        if self._segments is None:
            d = self.delims
            segs = [Segment(line, d) for line in self.lines]
            if self._msh is not None:  # keep the MSH already handed out: same object
                segs[0] = self._msh
            self._segments = segs
        return self._segments

    def _by_name(self) -> dict[str, list[Segment]]:
        if self._index is None:
            index: dict[str, list[Segment]] = {}
            for seg in self.segments:
                index.setdefault(seg.name, []).append(seg)
            self._index = index
        return self._index

    def segment(self, name: str, n: int = 1) -> Segment | None:
        """The n-th segment called name (1-based), or None."""
        index = self._index
        if index is None:
            index = self._by_name()
        found = index.get(name)
        return found[n - 1] if found and 0 < n <= len(found) else None

    def peek(self, name: str) -> Segment | None:
        """``segment(name)``'s values, without splitting or indexing the whole message.

        For a caller that reads two or three segments of each message (queue keying):
        the first line starting with ``name`` is found in the raw text. The Segment
        is the message's own once its segments exist, a fresh one before.
        """
        if self._segments is not None or name == "MSH" or len(name) != 3 or not name.isalnum():
            return self.segment(name)
        raw = self.raw
        if self._lines is not None or "\n" in raw:  # LF splitting has its own rules
            for line in self.lines:
                if line[:3] == name:
                    return Segment(line, self.delims)
            return None
        start = raw.find("\r" + name) + 1  # lines are CR-separated and never lstripped
        if not start:
            return None
        end = raw.find("\r", start)
        return Segment((raw[start:end] if end != -1 else raw[start:]).rstrip(" "), self.delims)

    def all(self, name: str) -> list[Segment]:
        return self._by_name().get(name, [])

    def __getitem__(self, name: str) -> Segment:
        seg = self.segment(name)
        if seg is None:
            raise KeyError(name)
        return seg

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._by_name()

    def __iter__(self):
        return iter(self.segments)

    # -- paths ----------------------------------------------------------
    def get(self, path: str) -> str:
        """Raw value at a path such as ``PID-3``, ``PID-3(2).1``, ``OBX[2]-5.1.2``."""
        name, segrep, field, rep, comp, sub = _parse_path(path)
        seg = self.segment(name, segrep)
        if seg is None:
            return ""
        if not field:
            return seg.raw
        return seg.get(field, rep, comp, sub)

    def get_text(self, path: str) -> str:
        value = self.get(path)
        return unescape(value, self.delims) if self.delims.escape in value else value

    # -- header shortcuts -------------------------------------------------
    @property
    def msh(self) -> Segment:
        """The MSH segment (``segments[0]``), without splitting the other segments.

        Queue keying reads the header of every message and little else, so the rest
        stay unsplit until something asks for them.
        """
        segs = self._segments
        if segs is not None:
            return segs[0]
        msh = self._msh
        if msh is None:
            raw = self.raw
            if self._lines is None and "\n" not in raw:  # lines[0], without splitting them all
                line = raw.partition("\r")[0].rstrip(" ")
            else:
                line = self.lines[0]
            msh = self._msh = Segment(line, self.delims)
        return msh

    @property
    def control_id(self) -> str:
        return self.msh.field(10)

    @property
    def message_type(self) -> str:
        """``ADT^A01`` style type + trigger (without the structure component)."""
        msh = self.msh
        code, trigger = msh.get(9, comp=1), msh.get(9, comp=2)
        return f"{code}^{trigger}" if trigger else code

    @property
    def version(self) -> str:
        return self.msh.get(12, comp=1)

    @property
    def sender(self) -> tuple[str, str]:
        """(sending application, sending facility), first components."""
        msh = self.msh
        return msh.get(3, comp=1), msh.get(4, comp=1)

    def __str__(self) -> str:
        return "\r".join(self.lines)

    def __repr__(self) -> str:
        return f"Message({self.message_type} {self.control_id})"


def parse(text: str | bytes, encoding: str = "utf-8") -> Message:
    """Parse one ER7 message (str or bytes); raises HL7Error on a missing MSH."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode(encoding, errors="replace")
    return Message(text)

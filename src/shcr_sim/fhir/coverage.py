"""Field coverage: which HL7 fields carried data that no mapping read.

Coverage mode wraps each segment in a recording subclass (every accessor of
the codec's Segment goes through ``field(n)``), converts the message as usual
and then compares the fields that held data with the fields that were read.
The hot path never pays for this: the engine converts plain segments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..hl7 import HL7Error, Message, Segment, parse
from .config import MappingConfig
from .convert import convert_message
from .errors import ConversionError


class RecordingSegment(Segment):
    """A Segment that remembers which fields were read."""

    __slots__ = ("read",)

    def __init__(self, raw: str, delims) -> None:
        super().__init__(raw, delims)
        self.read: set[int] = set()

    def field(self, n: int) -> str:
        self.read.add(n)
        return super().field(n)


def recording(msg: Message) -> list[RecordingSegment]:
    """Swap the message's segments for recording ones; return them."""
    segs = [RecordingSegment(line, msg.delims) for line in msg.lines]
    msg._segments = segs  # noqa: SLF001 - coverage mode only
    msg._index = None
    return segs


@dataclass(slots=True)
class FieldStats:
    carried: int = 0  # segment occurrences where the field held data
    dropped: int = 0  # ... and no mapping read it


@dataclass(slots=True)
class CoverageReport:
    messages: int = 0
    failed: int = 0
    fields: dict[str, FieldStats] = field(default_factory=dict)
    segments: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def dropped(self) -> list[tuple[str, FieldStats]]:
        rows = [(k, v) for k, v in self.fields.items() if v.dropped]
        return sorted(rows, key=lambda kv: (-kv[1].dropped, _order(kv[0])))

    def all_fields(self) -> list[tuple[str, FieldStats]]:
        return sorted(self.fields.items(), key=lambda kv: _order(kv[0]))


def _order(key: str) -> tuple[str, int]:
    seg, _, n = key.partition("-")
    return seg, int(n)


# Fields that carry message plumbing, not clinical data: never reported as dropped.
STRUCTURAL = frozenset({
    "MSH-5", "MSH-6", "MSH-8", "MSH-11", "MSH-12", "MSH-13", "MSH-14", "MSH-15", "MSH-16",
    "MSH-17", "MSH-18", "MSH-19", "MSH-20", "MSH-21",
    "PID-1", "PV1-1", "NK1-1", "AL1-1", "DG1-1", "OBR-1", "OBX-1", "NTE-1", "TXA-1",
    "PD1-1", "EVN-1", "ORC-1", "NTE-2",
    "TQ1-1",  # set id; the v2.5 timing itself is TQ1-2 onwards
})


def _fields_with_data(seg: Segment) -> Iterable[int]:
    fields = seg.raw.split(seg.delims.field)
    start = 3 if fields[0] in ("MSH", "FHS", "BHS") else 1  # MSH-1/2 are the delimiters
    offset = 1 if start == 3 else 0
    for i in range(1, len(fields)):
        n = i + offset
        if n >= start and fields[i].strip(" " + seg.delims.component
                                          + seg.delims.repetition + seg.delims.subcomponent):
            yield n


def add_message(report: CoverageReport, text: str, config_for) -> None:
    """Convert one message in coverage mode and add its field usage to the report."""
    report.messages += 1
    try:
        msg = parse(text)
        segs = recording(msg)
        config: MappingConfig = config_for(msg)
        convert_message(msg, config)
    except (HL7Error, ConversionError) as exc:
        report.failed += 1
        if len(report.errors) < 20:
            report.errors.append(str(exc))
        return
    for seg in segs:
        report.segments[seg.name] += 1
        for n in _fields_with_data(seg):
            key = f"{seg.name}-{n}"
            if key in STRUCTURAL:
                continue
            stats = report.fields.get(key)
            if stats is None:
                stats = report.fields[key] = FieldStats()
            stats.carried += 1
            if n not in seg.read:
                stats.dropped += 1


def render(report: CoverageReport, console, show_all: bool = False) -> None:
    from rich.table import Table

    rows = report.all_fields() if show_all else report.dropped()
    title = ("Field usage" if show_all else "Fields that carried data no mapping read")
    table = Table(title=f"{title} ({report.messages} messages, {report.failed} not converted)")
    table.add_column("field")
    table.add_column("carried data", justify="right")
    table.add_column("dropped", justify="right")
    table.add_column("dropped %", justify="right")
    for key, st in rows:
        pct = 100.0 * st.dropped / st.carried if st.carried else 0.0
        table.add_row(key, str(st.carried), str(st.dropped), f"{pct:.0f}%")
    console.print(table)
    if not rows:
        console.print("[green]every field that carried data was read by a mapping[/green]")
    for err in report.errors:
        console.print(f"  not converted: {err}", markup=False, highlight=False)

"""What the engine needs to know about a message before it is converted.

Sender, de-duplication key, patient key, event time and the tie-break precedence,
read straight from the ER7 with the project's tokenizer (no mapping rules here).

Ordering key (used by the sequencer, the store guard and ``verify`` alike):
``(event time, event-type precedence, MSH-7, sender, MSH-10)`` encoded as one
sortable string. Every part comes from the message itself, never from arrival
order, so shuffled extracts and interleaved live traffic end in the same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from shcr_sim.event_time import SPECIFIC, event_time_fields
from shcr_sim.hl7 import HL7Time, Message, Segment, TimestampError, parse, parse_ts
from shcr_sim.patient_identity import DEFAULT_RULES, identify, pid_reps

DEFAULT_TZ = "Europe/London"

# Tie-break for events at the same instant: registration before admission before
# transfer before discharge; cancellations after what they cancel; merges after the
# demographics they merge; results, documents and prescriptions after the ADT that
# created their encounter. Anything unknown sorts last.
PRECEDENCE: dict[str, int] = {
    "ADT^A28": 10,  # add person
    "ADT^A04": 20,  # register outpatient / ED
    "ADT^A05": 25,  # pre-admit
    "ADT^A01": 30,  # admit
    "ADT^A31": 35,  # update person
    "ADT^A08": 36,  # update patient
    "ADT^A02": 40,  # transfer
    "ADT^A03": 50,  # discharge
    "ADT^A11": 60,  # cancel admit
    "ADT^A12": 61,  # cancel transfer
    "ADT^A13": 62,  # cancel discharge
    "ADT^A34": 70,  # merge patient id
    "ADT^A40": 71,  # merge patient
    "ORU^R01": 100,
    # documents at one instant: add (T01 notification before the T02 that carries
    # the content, so the content wins a tie), status change (T04), replacement
    # (T10), edit/replace (T08), and the cancel (T11) last, after whatever it cancels
    "MDM^T01": 109,  # original document notification
    "MDM^T02": 110,  # original document notification and content
    "MDM^T04": 111,  # status change notification and content
    "MDM^T10": 112,  # replacement notification and content
    "MDM^T08": 113,  # edit notification and content (replaces the document)
    "MDM^T11": 115,  # cancel notification
    "OMP^O09": 120,
    "RDE^O11": 121,
    "RDS^O13": 122,
}
OTHER_PRECEDENCE = 900
MERGE_TYPES = frozenset({"ADT^A40", "ADT^A34"})


class KeysError(ValueError):
    """The message cannot be queued: the reason names the segment/field at fault."""


class MessageKeys(NamedTuple):
    """The ordering facts of one message. A NamedTuple: conversion workers key every
    message the engine accepts and send these back through the pool's pipe, as plain
    tuples (``workers.key_shard``), ~0.7 µs a message to unpickle in the engine,
    where a frozen slotted dataclass cost ~9."""

    sender_app: str
    sender_fac: str
    control_id: str
    message_type: str
    patient_key: str  # "nhs:<number>" or "mrn:<authority>|<mrn>"
    event_epoch: float
    event_time: str  # the HL7 text the time came from
    precedence: int
    order_key: str

    @property
    def dedup_key(self) -> str:
        return f"{self.sender_app}|{self.sender_fac}|{self.control_id}"


def patient_key(msg: Message) -> str:
    """NHS number (valid mod-11) when present, else (assigning authority, MRN).

    Which identifier is the NHS number and which MRN keys the patient is
    ``shcr_sim.patient_identity.identify`` — the converter's own rule (CX-4 ``NHS``
    or CX-5 ``NH``/``NHS`` with an empty CX-4; the sending trust's own MRN first),
    with the rules every flavour shares, so the queue's patient is the record's.
    """
    return _patient_key(msg.segment("PID"), msg.sender[1])


_PID_FIELDS = DEFAULT_RULES.fields  # the rules are frozen: read the property once


def _patient_key(pid: Segment | None, own: str) -> str:
    """``patient_key`` for the message's first PID (None: none) from trust ``own``."""
    if pid is None:
        raise KeysError("PID: no PID segment, so no patient identifier")
    d = pid.delims
    found = identify(pid_reps([(n, pid.field(n)) for n in _PID_FIELDS], d), own, d)
    if found.nhs:
        return "nhs:" + found.nhs
    if found.mrn:
        return f"mrn:{found.authority}|{found.mrn}"
    raise KeysError("PID-3: no patient identifier (no NHS number or local MRN in PID-3/PID-2)")


def merged_away_keys(msg: Message) -> list[str]:
    """Patient keys the merged-away record named in MRG may have been queued under.

    MRG is read as the converter reads it (``fhir.patient.mrg_key``: MRG-1 as the
    patient identifier list, MRG-4 as the external id) with the same rule as
    ``patient_key``: the key that record's own messages carry comes first, then
    the key of every other identifier it lists (its messages may have been keyed
    by any of them). Empty without an MRG segment.
    """
    mrg = msg.segment("MRG")
    if mrg is None:
        return []
    d = mrg.delims
    found = identify(pid_reps(((2, mrg.field(4)), (3, mrg.field(1))), d), msg.sender[1], d)
    keys = [f"nhs:{found.nhs}"] if found.nhs else []
    if found.mrn:
        keys.append(f"mrn:{found.authority}|{found.mrn}")
    keys += [f"mrn:{auth}|{value}" for value, auth, typ in found.others if typ != "SS"]
    return list(dict.fromkeys(keys))


def _bad_time(path: str, text: str, exc: Exception) -> str:
    why = str(exc)
    if why.startswith("not an HL7 timestamp") and repr(text) in why:
        return f"{path}: {why}"
    return f"{path}: not an HL7 timestamp: {text!r} ({why})"


def event_time(msg: Message, tz: str = DEFAULT_TZ) -> tuple[float, str]:
    """(epoch, HL7 text) of the clinically relevant time.

    Which field is ``shcr_sim.event_time.event_time_fields`` — the converter's
    rule too, so the ordering key and the event time stored with each resource
    version always agree. The first *valued* field wins. A valued field that is
    not an HL7 timestamp is an error naming the field (the message is
    dead-lettered), never silently replaced by MSH-7.
    """
    *specific, (_, msh7) = event_time_fields(msg)
    ts, text = _first_time(specific, msh7, tz)
    return ts.epoch, text


def _first_time(specific: Iterable[tuple[str, str]], msh7: str, tz: str) -> tuple[HL7Time, str]:
    """The first valued (path, text) that parses, else MSH-7; a bad one is an error."""
    for path, value in specific:
        if not value:
            continue
        try:
            ts = parse_ts(value, tz)
        except TimestampError as exc:
            raise KeysError(_bad_time(path, value, exc)) from None
        if ts is not None:
            return ts, value
    try:
        ts = parse_ts(msh7, tz)
    except TimestampError as exc:
        raise KeysError(_bad_time("MSH-7", msh7, exc)) from None
    if ts is None:
        raise KeysError("MSH-7: no event time (message date/time is empty)")
    return ts, msh7


def _specific_values(msg: Message, specific: Iterable[tuple[str, str, int]]
                     ) -> Iterator[tuple[str, str]]:
    """(path, text) of each event-time field, finding each segment only when reached."""
    seg = None
    for path, name, n in specific:
        if seg is None or seg.name != name:
            seg = msg.peek(name)
        yield path, seg.get(n, comp=1) if seg is not None else ""


def _ms(epoch: float) -> int:
    return int(round(epoch * 1000)) + 10**14  # keeps pre-1970 times positive


def order_key(
    event_epoch: float, precedence: int, msh7_epoch: float, app: str, fac: str, cid: str
) -> str:
    return f"{_ms(event_epoch):016d}|{precedence:03d}|{_ms(msh7_epoch):016d}|{app}|{fac}|{cid}"


def extract(msg: Message, tz: str = DEFAULT_TZ) -> MessageKeys:
    """All ordering facts of one parsed message; raises KeysError with a reason.

    Reads MSH, the first PID and the first segment holding the event time (the
    same fields ``sender``, ``event_time`` and ``patient_key`` read, checked in the
    same order) without splitting or indexing the other segments: this runs once
    for every message the engine accepts.
    """
    msh = msg.msh
    app, fac = msh.get(3, comp=1), msh.get(4, comp=1)  # msg.sender
    cid = msh.field(10)
    if not cid:
        raise KeysError("MSH-10: message control id is empty")
    code, trigger = msh.get(9, comp=1), msh.get(9, comp=2)  # msg.message_type
    mtype = f"{code}^{trigger}" if trigger else code
    if not mtype:
        raise KeysError("MSH-9: message type is empty")
    # event_time(msg, tz), reading only the segments it reaches
    msh7_text = msh.get(7, comp=1)
    ts, text = _first_time(_specific_values(msg, SPECIFIC.get(code.upper(), ())),
                           msh7_text, tz)
    epoch = ts.epoch
    msh7_epoch = epoch
    if text != msh7_text:
        try:
            msh7 = parse_ts(msh7_text, tz)
        except TimestampError:
            msh7 = None
        if msh7 is not None:
            msh7_epoch = msh7.epoch
    prec = PRECEDENCE.get(mtype, OTHER_PRECEDENCE)
    key = _patient_key(msg.peek("PID"), fac)
    return MessageKeys(
        sender_app=app,
        sender_fac=fac,
        control_id=cid,
        message_type=mtype,
        patient_key=key,
        event_epoch=epoch,
        event_time=text,
        precedence=prec,
        order_key=order_key(epoch, prec, msh7_epoch, app, fac, cid),
    )


def parse_and_extract(raw: str, tz: str = DEFAULT_TZ) -> tuple[Message, MessageKeys]:
    """Parse + extract; HL7Error and KeysError both carry a human-readable reason."""
    return (msg := parse(raw)), extract(msg, tz)

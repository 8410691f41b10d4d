"""The generator's working records: a trust's counters, a patient's record there, a visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .flavours import FLAVOURS, Flavour
from .population import Person
from .scenario import Trust


@dataclass(slots=True)
class TrustState:
    """Per-trust counters: MRNs, visit/order/document numbers and MSH-10s, in generation order."""

    trust: Trust
    flavour: Flavour = field(init=False)
    ods: str = field(init=False)
    sends: frozenset[str] = field(init=False)
    lab_system: str = field(init=False)
    rad_system: str = field(init=False)
    card_system: str = field(init=False)
    drug_system: str = field(init=False)
    msh_head: str = field(init=False)
    next_mrn: int = 1
    next_msg: int = 1
    next_visit: int = 1
    next_order: int = 1
    next_doc: int = 1

    def __post_init__(self) -> None:
        t = self.trust
        self.flavour = FLAVOURS[t.flavour]
        self.ods = t.ods
        self.sends = frozenset(t.data_types)
        f = self.flavour
        self.lab_system = f.lab_system.format(ods=t.ods)
        self.rad_system = f.rad_system.format(ods=t.ods)
        self.card_system = f.card_system.format(ods=t.ods)
        self.drug_system = f.drug_system.format(ods=t.ods)
        self.msh_head = f"MSH|^~\\&|{t.sending_application}|{t.ods}|SHCR-CIE|SHCR|"

    def new_mrn(self) -> str:
        n = self.next_mrn
        self.next_mrn += 1
        return self.flavour.mrn(self.ods, n)

    def new_visit(self) -> str:
        n = self.next_visit
        self.next_visit += 1
        return f"{self.ods}V{n:08d}"

    def new_order(self) -> int:
        n = self.next_order
        self.next_order += 1
        return n

    def new_doc(self) -> str:
        n = self.next_doc
        self.next_doc += 1
        return f"{self.ods}-DOC-{n:08d}"

    def new_control_id(self) -> str:
        n = self.next_msg
        self.next_msg += 1
        return self.flavour.control_id(self.ods, n)


@dataclass(slots=True)
class Reg:
    """A patient's record at one trust: local MRN and the trust's view of the person."""

    state: TrustState
    mrn: str
    person: Person
    registered: int  # epoch of first contact
    events: list[Event] = field(default_factory=list)
    pid_er7: str = field(default="", init=False)  # cached PID/PD1 until demographics change
    pd1_er7: str = field(default="", init=False)


@dataclass(slots=True)
class Visit:
    """One encounter as it stood at an event (copied when it changes)."""

    number: str
    pclass: str  # E emergency, I inpatient, O outpatient, N not applicable
    ward: str
    bed: str
    specialty: str
    consultant: tuple[str, str, str]
    admit: int
    discharge: int | None = None
    admit_type: str = ""
    prior_ward: str = ""
    disposition: str = ""
    legal: tuple[str, str] | None = None  # mh-epr legal status (code, text)
    er7: str = field(default="", init=False)  # cached PV1; replace() starts a fresh one


@dataclass(slots=True)
class Event:
    """Something that happened at ``time``; ``kind`` picks the message writer."""

    time: int
    seq: int
    dtype: str
    kind: str
    visit: Visit | None = None
    data: dict[str, Any] = field(default_factory=dict)

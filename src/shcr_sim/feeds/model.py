"""The generator's working records: a trust's counters, a patient's record there, a visit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .catalogue import load_people
from .flavours import FLAVOURS, Flavour
from .population import Person
from .scenario import Trust


@dataclass(slots=True)
class TrustState:
    """Per-trust counters: MRNs, visit/order/document numbers and, per sending
    application, MSH-10s (each system numbers its own messages)."""

    trust: Trust
    flavour: Flavour = field(init=False)
    ods: str = field(init=False)
    sends: frozenset[str] = field(init=False)
    lab_system: str = field(init=False)
    rad_system: str = field(init=False)
    card_system: str = field(init=False)
    drug_system: str = field(init=False)
    apps: dict[str, str] = field(init=False)  # data type → sending application (MSH-3)
    msh_heads: dict[str, str] = field(init=False)  # data type → "MSH|…|MSH-6|"
    consultants: tuple[tuple[str, str, str], ...] = field(init=False)
    next_mrn: int = 1
    next_msg: dict[str, int] = field(init=False)  # sending application → next MSH-10 number
    visits_in_hour: dict[int, int] = field(init=False)
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
        self.apps = dict(t.sending_applications)
        self.msh_heads = {
            dtype: f"MSH|^~\\&|{app}|{t.ods}|SHCR-CIE|SHCR|" for dtype, app in self.apps.items()
        }
        self.next_msg = dict.fromkeys(self.apps.values(), 1)
        self.visits_in_hour = {}
        self.consultants = consultant_pool(t.ods)

    def new_mrn(self) -> str:
        n = self.next_mrn
        self.next_mrn += 1
        return self.flavour.mrn(self.ods, n)

    def new_visit(self, t: int) -> str:
        """Visit numbers rise with time: the hour the visit starts, then the PAS's counter
        within that hour (memory bounded by the hours in the window, not the visits)."""
        hour = t // 3600
        n = self.visits_in_hour.get(hour, 0) + 1
        self.visits_in_hour[hour] = n
        return f"{self.ods}V{hour:06d}{n:04d}"

    def new_order(self) -> int:
        n = self.next_order
        self.next_order += 1
        return n

    def new_doc(self) -> str:
        n = self.next_doc
        self.next_doc += 1
        return f"{self.ods}-DOC-{n:08d}"

    def new_control_id(self, app: str) -> tuple[str, int]:
        """(MSH-10, its number) from this sending application's own counter."""
        n = self.next_msg[app]
        self.next_msg[app] = n + 1
        return self.flavour.control_id(self.ods, n), n


def consultant_pool(ods: str, size: int = 14) -> tuple[tuple[str, str, str], ...]:
    """A trust's own consultants (code, surname, given): codes are ``C`` + a GMC-like
    7-digit number, names drawn from the name lists, the same for the same ODS code."""
    people = load_people()
    rng = random.Random(f"consultants:{ods}")
    pool = []
    codes: set[str] = set()
    while len(pool) < size:
        code = f"C{rng.randrange(2_000_000, 7_999_999)}"
        names = people.female if rng.random() < 0.5 else people.male
        person = (code, people.surnames[rng.randrange(len(people.surnames))],
                  names[rng.randrange(len(names))])
        if code not in codes:
            codes.add(code)
            pool.append(person)
    return tuple(pool)


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

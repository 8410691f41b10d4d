"""Vendor flavours: how each kind of trust system writes the same facts.

See ``docs/flavours.md``. A flavour decides the HL7 version, where the NHS number
and MRN sit in PID, how timestamps look, which Z-segment follows PV1, how local
code systems are named and how MRNs / control ids look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import clock

# NHS number verification status 1..8 as each flavour writes it in PID-32
_PID32 = {
    "itk-acute": ("", "01", "02", "03", "04", "05", "06", "07", "08"),
    "mh-epr": ("", "NSTS01", "NSTS02", "NSTS03", "NSTS04", "NSTS05", "NSTS06", "NSTS07",
               "NSTS08"),
}


@dataclass(frozen=True, slots=True)
class Flavour:
    name: str
    version: str
    ts: Callable[[int], str]  # epoch → HL7 TS as this system writes it
    msh_tail: str  # MSH-11 onwards after the version
    zsegment: str  # Z-segment written after PV1 on ADT ("" = none)
    mrn_type: str  # CX-5 of the local MRN
    lab_system: str  # "{ods}" is replaced by the trust's ODS code
    rad_system: str
    card_system: str
    drug_system: str

    def mrn(self, ods: str, n: int) -> str:
        if self.name == "classic-pas":
            return f"{n:08d}"
        if self.name == "mh-epr":
            return f"MH{n:07d}"
        return f"{ods[:1]}{n:07d}"

    def control_id(self, ods: str, n: int) -> str:
        if self.name == "classic-pas":
            return f"{n}"
        if self.name == "mh-epr":
            return f"{ods}-{n:010d}"
        return f"{ods}{n:012d}"

    def pid(
        self,
        nhs: str | None,
        verification: int,
        mrn: str,
        ods: str,
        name: str,
        dob: str,
        sex: str,
        address: str,
        phones: str,
        ethnicity: str,
        death: str = "",
    ) -> str:
        """PID with identifiers placed the way this system places them; ``death`` fills
        PID-29 (date/time of death) and PID-30 (death indicator)."""
        dind = "Y" if death else ""
        if self.name == "itk-acute":
            ids = f"{nhs}^^^NHS^NH~{mrn}^^^{ods}^PI" if nhs else f"{mrn}^^^{ods}^PI"
            p32 = _PID32["itk-acute"][verification] if nhs else ""
            return (
                f"PID|1||{ids}||{name}||{dob}|{sex}|||{address}||{phones}|||||||||{ethnicity}"
                f"|||||||{death}|{dind}||{p32}"
            )
        if self.name == "classic-pas":
            pid2 = f"{nhs}^^^NHS" if nhs else ""
            tail = f"{'|' * 16}{death}|Y" if death else ""
            return (
                f"PID|1|{pid2}|{mrn}^^^{ods}^MR||{name}||{dob}|{sex}|||{address}||{phones}{tail}"
            )
        ids = f"{mrn}^^^{ods}^MR~{nhs}^^^NHS^NHS" if nhs else f"{mrn}^^^{ods}^MR"
        p32 = _PID32["mh-epr"][verification] if nhs else ""
        return (
            f"PID|1||{ids}||{name}||{dob}|{sex}|||{address}||{phones}|||||||||{ethnicity}"
            f"|||||||{death}|{dind}||{p32}"
        )


FLAVOURS: dict[str, Flavour] = {
    "itk-acute": Flavour(
        name="itk-acute",
        version="2.4",
        ts=clock.ts_offset,
        msh_tail="|||AL|NE|GBR|UNICODE UTF-8",
        zsegment="ZU1",
        mrn_type="PI",
        lab_system="{ods}-LAB",
        rad_system="{ods}-RAD",
        card_system="{ods}-CARD",
        drug_system="{ods}-DRUG",
    ),
    "classic-pas": Flavour(
        name="classic-pas",
        version="2.3.1",
        ts=clock.ts_minutes,
        msh_tail="",
        zsegment="",
        mrn_type="MR",
        lab_system="L",
        rad_system="L",
        card_system="L",
        drug_system="L",
    ),
    "mh-epr": Flavour(
        name="mh-epr",
        version="2.5.1",
        ts=clock.ts_seconds,
        msh_tail="|||AL|NE|GBR|UNICODE UTF-8",
        zsegment="ZMH",
        mrn_type="MR",
        lab_system="99MHR",
        rad_system="99MHR",
        card_system="99MHR",
        drug_system="99MHD",
    ),
}

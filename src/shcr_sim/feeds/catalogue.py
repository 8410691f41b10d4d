"""The trusts' local code catalogues (``data/codes.toml``) and name lists (``data/people.toml``).

Loaded once; free text that goes into HL7 fields is escaped here, not per message.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..hl7 import escape

CODES_PATH = "shcr_sim/feeds/data/codes.toml"


def _read(name: str) -> dict:
    return tomllib.loads(resources.files(__package__).joinpath(f"data/{name}").read_text())


@dataclass(frozen=True, slots=True)
class LabTest:
    key: str
    display: str
    loinc: str
    unit: str
    low: float
    high: float
    mean: float
    sd: float
    decimals: int
    text: bool
    results: tuple[str, ...]  # escaped free-text results for text tests
    local: dict[str, str]
    female: tuple[float, float] | None = None  # women's reference range, when it differs


@dataclass(frozen=True, slots=True)
class Panel:
    key: str
    display: str
    loinc: str
    tests: tuple[LabTest, ...]
    local: dict[str, str]


@dataclass(frozen=True, slots=True)
class Measurement:
    key: str
    display: str
    loinc: str
    unit: str
    mean: float
    sd: float
    decimals: int


@dataclass(frozen=True, slots=True)
class Exam:
    """A radiology or cardiology investigation with canned (escaped) report texts."""

    key: str
    display: str
    snomed: str
    modality: str
    findings: tuple[str, ...]
    measurements: tuple[Measurement, ...]
    local: dict[str, str]


@dataclass(frozen=True, slots=True)
class Medication:
    key: str
    display: str
    dmd: str
    dose: str
    unit: str
    form: str
    route: str
    frequency: str
    mental_health: bool
    local: dict[str, str]


@dataclass(frozen=True, slots=True)
class Allergen:
    key: str
    display: str
    snomed: str
    type: str
    reactions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Diagnosis:
    key: str
    display: str
    icd10: str
    snomed: str
    setting: str


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    display: str


@dataclass(frozen=True, slots=True)
class Catalogue:
    panels: dict[str, Panel]
    radiology: tuple[Exam, ...]
    cardiology: dict[str, Exam]
    medications: tuple[Medication, ...]
    mh_medications: tuple[Medication, ...]
    allergens: tuple[Allergen, ...]
    acute_diagnoses: tuple[Diagnosis, ...]
    mh_diagnoses: tuple[Diagnosis, ...]
    legal_status: tuple[Code, ...]
    specialties: dict[str, Code]


def _exam(d: dict) -> Exam:
    return Exam(
        key=d["key"],
        display=d["display"],
        snomed=d["snomed"],
        modality=d.get("modality", ""),
        findings=tuple(escape(f) for f in d["findings"]),
        measurements=tuple(Measurement(**m) for m in d.get("measurements", ())),
        local=d["local"],
    )


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    raw = _read("codes.toml")
    tests = {}
    for t in raw["tests"]:
        tests[t["key"]] = LabTest(
            key=t["key"],
            display=t["display"],
            loinc=t["loinc"],
            unit=t.get("unit", ""),
            low=t.get("low", 0),
            high=t.get("high", 0),
            mean=t.get("mean", 0),
            sd=t.get("sd", 0),
            decimals=t.get("decimals", 0),
            text=t.get("text", False),
            results=tuple(escape(r) for r in t.get("results", ())),
            local=t["local"],
            female=tuple(t["female"]) if "female" in t else None,  # type: ignore[arg-type]
        )
    panels = {
        p["key"]: Panel(p["key"], p["display"], p["loinc"], tuple(tests[k] for k in p["tests"]),
                        p["local"])
        for p in raw["panels"]
    }
    meds = tuple(
        Medication(
            key=m["key"], display=m["display"], dmd=m["dmd"], dose=m["dose"], unit=m["unit"],
            form=m["form"], route=m["route"], frequency=m["frequency"],
            mental_health=m.get("mental_health", False), local=m["local"],
        )
        for m in raw["medications"]
    )
    diags = tuple(Diagnosis(**d) for d in raw["diagnoses"])
    return Catalogue(
        panels=panels,
        radiology=tuple(_exam(e) for e in raw["radiology"]),
        cardiology={e["key"]: _exam(e) for e in raw["cardiology"]},
        medications=tuple(m for m in meds if not m.mental_health),
        mh_medications=tuple(m for m in meds if m.mental_health),
        allergens=tuple(
            Allergen(a["key"], a["display"], a["snomed"], a["type"], tuple(a["reactions"]))
            for a in raw["allergens"]
        ),
        acute_diagnoses=tuple(d for d in diags if d.setting == "acute"),
        mh_diagnoses=tuple(d for d in diags if d.setting == "mental-health"),
        legal_status=tuple(Code(c["code"], c["display"]) for c in raw["legal_status"]),
        specialties={c["code"]: Code(c["code"], c["display"]) for c in raw["specialties"]},
    )


@dataclass(frozen=True, slots=True)
class People:
    male: tuple[str, ...]
    female: tuple[str, ...]
    surnames: tuple[str, ...]  # escaped
    streets: tuple[str, ...]
    towns: tuple[tuple[str, str, int], ...]
    practices: tuple[tuple[str, str, int], ...]
    gps: tuple[tuple[str, str, str], ...]
    consultants: tuple[tuple[str, str, str], ...]
    ethnicity: tuple[str, ...]


@lru_cache(maxsize=1)
def load_people() -> People:
    raw = _read("people.toml")
    return People(
        male=tuple(raw["male"]),
        female=tuple(raw["female"]),
        surnames=tuple(escape(s) for s in raw["surnames"]),
        streets=tuple(raw["streets"]),
        towns=tuple(tuple(t) for t in raw["towns"]),  # type: ignore[misc]
        practices=tuple(tuple(p) for p in raw["practices"]),  # type: ignore[misc]
        gps=tuple(tuple(g) for g in raw["gps"]),  # type: ignore[misc]
        consultants=tuple(tuple(c) for c in raw["consultants"]),  # type: ignore[misc]
        ethnicity=tuple(raw["ethnicity"]),
    )

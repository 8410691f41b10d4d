"""Scenario files (TOML) validated by pydantic: which trusts, how many patients, when.

A bad file raises ``ScenarioError`` whose message names the field at fault, e.g.
``trusts[2].flavour: Input should be 'itk-acute', 'classic-pas' or 'mh-epr'``.
"""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

Flavour = Literal["itk-acute", "classic-pas", "mh-epr"]
Kind = Literal["acute", "mental-health", "urgent-care", "community"]
DataType = Literal["adt", "pathology", "radiology", "cardiology", "prescribing", "documents"]
Encounter = Literal[
    "ed", "outpatient", "elective", "gp_requests", "contact", "admission", "attendance"
]
AppName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,20}$")]
DATA_TYPES: tuple[str, ...] = (
    "adt",
    "pathology",
    "radiology",
    "cardiology",
    "prescribing",
    "documents",
)


# A trust's clinical systems each send their own feed (own MSH-3, own MSH-10 counter):
# an acute trust has a LIMS, a RIS, a cardiology system, ePrescribing and a document
# system besides its PAS; a mental-health or urgent-care EPR sends everything itself.
DEFAULT_APPLICATIONS = {
    "pathology": "LIMS",
    "radiology": "RIS",
    "cardiology": "CVIS",
    "prescribing": "EPMA",
    "documents": "EDMS",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trust(_Model):
    """One sending organisation (MSH-4 = ods; MSH-3 = sending_application for ADT,
    ``sending_applications[data type]`` for everything; after validation that map
    names the sender of every data type the trust sends)."""

    name: str = Field(min_length=1)
    ods: str = Field(pattern=r"^[A-Z0-9]{3,6}$")
    sending_application: AppName
    kind: Kind
    flavour: Flavour
    data_types: list[DataType] = Field(min_length=1)
    sending_applications: dict[DataType, AppName] = Field(
        default_factory=dict,
        description="MSH-3 per data type; defaults: the PAS for adt, LIMS / RIS / CVIS / "
        "EPMA / EDMS at an acute trust, the trust's one EPR elsewhere",
    )
    weight: float = Field(default=1.0, gt=0, description="relative share of patients seen here")
    activity: float = Field(default=1.0, gt=0, description="multiplier on encounter rates")
    backload_from: date | None = Field(
        default=None,
        description="this trust's extract only reaches back to here (e.g. a newer EPR)",
    )
    rates: dict[Encounter, float] = Field(
        default_factory=dict,
        description="encounters per patient-year, overriding the defaults for this kind",
    )

    @model_validator(mode="after")
    def _applications(self) -> Trust:
        given = self.sending_applications
        for dtype in given:
            if dtype not in self.data_types:
                raise ValueError(f"sending_applications.{dtype}: the trust does not send {dtype}")
        if given.get("adt", self.sending_application) != self.sending_application:
            raise ValueError("sending_applications.adt must be the sending_application (PAS)")
        apps = {}
        for dtype in self.data_types:
            default = self.sending_application
            if self.kind == "acute" and dtype != "adt":
                default = DEFAULT_APPLICATIONS[dtype]
            apps[dtype] = given.get(dtype, default)
        object.__setattr__(self, "sending_applications", apps)
        return self

    @model_validator(mode="after")
    def _rates_non_negative(self) -> Trust:
        for key, value in self.rates.items():
            if value < 0:
                raise ValueError(f"rates.{key} must be >= 0")
        return self


class Population(_Model):
    size: int = Field(default=2000, ge=1)
    multi_trust_share: float = Field(default=0.35, ge=0, le=1)
    no_nhs_number_share: float = Field(default=0.03, ge=0, le=1)
    duplicate_share: float = Field(default=0.02, ge=0, le=1)


class Backload(_Model):
    start: date = Field(ge=date(1996, 1, 1), description="UK GMT/BST rules as since 1996")
    end: date = Field(description="cut-over: backload holds events before this date")

    @model_validator(mode="after")
    def _ordered(self) -> Backload:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Live(_Model):
    hours: float = Field(default=24.0, gt=0, le=24 * 366)
    rate_multiplier: float = Field(default=1.0, gt=0)
    resend_rate: float = Field(default=0.01, ge=0, le=1)


class Run(_Model):
    """How ``shcr-sim run`` drives the live feeds (its command-line flags override)."""

    rate: float = Field(default=20.0, ge=0, description="live messages/s over all trusts; "
                        "0 = as fast as the ACKs come back")
    pattern: Literal["steady", "bursty"] = "steady"
    heartbeat_interval: float = Field(default=1.0, gt=0, description="seconds between beats")
    silent_after: float = Field(default=5.0, gt=0, description="heartbeat alert after this "
                                "many seconds without one")
    ack_timeout: float = Field(default=2.0, gt=0, description="a sender's wait for an ACK")
    backload_batch: int = Field(default=500, ge=1, description="backload release batch")

    @model_validator(mode="after")
    def _silence_outlasts_a_lost_ack(self) -> Run:
        # a sender waiting out one lost ACK sends no heartbeat meanwhile: not silence
        if self.silent_after <= self.ack_timeout + self.heartbeat_interval:
            raise ValueError("silent_after must be more than ack_timeout + heartbeat_interval "
                             "(else every lost ACK raises a heartbeat alert)")
        return self


class Faults(_Model):
    """Faults ``shcr-sim run`` injects; times count from the start of the live feeds."""

    store_outage: float = Field(default=0.0, ge=0, description="seconds the record store "
                                "refuses writes (0: none)")
    store_outage_at: float = Field(default=5.0, ge=0)
    ack_delay: float = Field(default=0.0, ge=0, description="seconds an ACK is held back ...")
    slow_acks: float = Field(default=0.2, ge=0, le=1, description="... for this share")
    drop_acks: float = Field(default=0.0, ge=0, le=1, description="share of ACKs never sent")
    resets: float = Field(default=0.0, ge=0, le=1, description="share of ACKs replaced by a "
                          "connection reset")
    mid_frame_resets: float = Field(default=0.0, ge=0, le=1, description="chance per read "
                                    "of a connection reset inside a frame")
    silent_feed: str = Field(default="", description="ODS code of a trust whose feed "
                             "(heartbeats included) goes silent")
    silent_at: float = Field(default=3.0, ge=0)
    silent_for: float = Field(default=0.0, ge=0, description="0: three times silent_after")
    malformed_burst: int = Field(default=0, ge=0, description="malformed messages sent "
                                 "mid-stream by the first live feed")


class Scenario(_Model):
    name: str = Field(min_length=1)
    seed: int = 1
    correction_rate: float = Field(default=0.03, ge=0, le=1)
    population: Population = Population()
    backload: Backload
    live: Live = Live()
    run: Run = Run()
    faults: Faults = Faults()
    trusts: list[Trust] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ods(self) -> Scenario:
        seen: set[str] = set()
        for t in self.trusts:
            if t.ods in seen:
                raise ValueError(f"duplicate trust ods {t.ods!r}")
            seen.add(t.ods)
        return self

    @model_validator(mode="after")
    def _silent_feed_is_a_trust(self) -> Scenario:
        feed = self.faults.silent_feed
        if feed and feed not in {t.ods for t in self.trusts}:
            raise ValueError(f"faults.silent_feed: no trust has ods {feed!r}")
        return self


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = _where(tuple(err["loc"]))
        msg = err["msg"]
        lines.append(f"{where}: {msg}" if where else msg)
    return "\n".join(lines)


def parse_scenario(data: dict, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: invalid scenario\n{format_errors(exc)}") from None


def default_scenario_text() -> str:
    """The built-in scenario file, a commented starting point for your own."""
    return resources.files(__package__).joinpath("data/default_scenario.toml").read_text()


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Load and validate a scenario TOML file; None loads the built-in default."""
    if path is None:
        text = default_scenario_text()
        source = "default scenario"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return parse_scenario(data, source)

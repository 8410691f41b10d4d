"""Who a message is about: the NHS number and the local MRN in its PID identifier fields.

One rule, shared by the converter (``fhir/patient.py``, which builds the Patient
and its identifiers from it) and the engine (``engine/keys.py``, whose patient key
orders and shards the queue). It lives outside both packages because the engine
must not hold mapping rules and fhir must not import the engine; like
``nhs_number`` it is a fact about NHS identifiers that every area needs to read
the same way, so the queue's patient and the record's patient never disagree.

- NHS number: a CX whose assigning authority (CX-4) is one of ``nhs_authorities``,
  or whose CX-4 is empty and identifier type (CX-5) is one of ``nhs_type_codes``;
  it is used only when it passes the modulus-11 check (the first valid one wins).
- MRN: from PID-3 only, type in ``mrn_type_codes`` or empty; the sending trust's
  own MRN (authority empty or = the trust's ODS code, MSH-4) is preferred over an
  earlier one from another authority.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .hl7 import Delimiters, unescape
from .nhs_number import is_valid


@dataclass(frozen=True, slots=True)
class IdentifierRules:
    """Where a feed keeps its identifiers. The defaults are every flavour's union."""

    nhs_fields: tuple[int, ...] = (3, 2)  # PID fields read for the NHS number
    nhs_authorities: tuple[str, ...] = ("NHS",)
    nhs_type_codes: tuple[str, ...] = ("NH", "NHS")
    mrn_type_codes: tuple[str, ...] = ("MR", "PI", "PT", "PN")

    @property
    def fields(self) -> tuple[int, ...]:
        """The PID fields to read, in field order (PID-3 always, for the MRN)."""
        return tuple(sorted(set(self.nhs_fields) | {3}))


DEFAULT_RULES = IdentifierRules()


@dataclass(slots=True)
class PatientIds:
    """The identifiers found, in the order the converter turns them into FHIR."""

    nhs: str = ""  # first valid NHS number ("" when none)
    mrn: str = ""  # the local MRN that keys the Patient ("" when none)
    authority: str = ""  # its assigning authority (the trust's ODS code when empty)
    invalid_nhs: list[tuple[int, str]] = field(default_factory=list)  # (PID field, value)
    others: list[tuple[str, str, str]] = field(default_factory=list)  # (value, authority, type)


def _text(raw: str, delims: Delimiters) -> str:
    return unescape(raw, delims).strip() if delims.escape in raw else raw.strip()


def is_nhs_cx(comps: Sequence[str], delims: Delimiters, rules: IdentifierRules) -> bool:
    """True when a CX (split into components) is flagged as an NHS number."""
    auth = comps[3].split(delims.subcomponent, 1)[0] if len(comps) > 3 else ""
    typ = _text(comps[4], delims) if len(comps) > 4 else ""
    return auth in rules.nhs_authorities or (not auth and typ in rules.nhs_type_codes)


def identify(reps: Iterable[tuple[int, str]], own: str, delims: Delimiters,
             rules: IdentifierRules = DEFAULT_RULES) -> PatientIds:
    """Classify each ``(PID field number, raw CX repetition)`` (see the module doc).

    ``own`` is the sending trust's ODS code (MSH-4): an MRN with no authority is
    the trust's own. PID-2 is read only for the NHS number.
    """
    ids = PatientIds()
    for n, rep in reps:
        comps = rep.split(delims.component)
        value = _text(comps[0], delims)
        if not value:
            continue
        if is_nhs_cx(comps, delims, rules):
            number = value.replace(" ", "")
            if not is_valid(number):
                ids.invalid_nhs.append((n, value))
            elif not ids.nhs:
                ids.nhs = number
            continue
        if n == 2:
            continue
        auth = _text(comps[3].split(delims.subcomponent, 1)[0], delims) if len(comps) > 3 else ""
        typ = _text(comps[4], delims) if len(comps) > 4 else ""  # read as text, as CX-1, CX-4
        if typ == "SS":
            ids.others.append((value, auth, typ))
            continue
        is_own = not auth or auth == own
        if (typ in rules.mrn_type_codes or not typ) and (
            not ids.mrn or (is_own and ids.authority != own)
        ):
            # the sending trust's own MRN keys the patient; another trust's is kept as
            # an identifier
            if ids.mrn:
                ids.others.append((ids.mrn, ids.authority, ""))
            ids.mrn, ids.authority = value, auth or own
            continue
        ids.others.append((value, auth or own, typ))
    return ids


def pid_reps(field_text: Iterable[tuple[int, str]], delims: Delimiters) -> list[tuple[int, str]]:
    """``(field number, raw field)`` → ``(field number, repetition)`` for non-empty ones."""
    return [(n, r) for n, raw in field_text if raw for r in raw.split(delims.repetition) if r]

"""HL7 v2 data types (CX, XPN, XAD, XTN, CWE, XCN, TS) → FHIR datatype dicts.

Every function takes raw (still escaped) component strings from the codec and
returns plain dicts; empty input gives ``None`` so callers can skip the element.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from ..hl7 import Delimiters, HL7Time, TimestampError, parse_ts, unescape
from ..hl7.timestamps import fhir_datetime, fhir_instant
from .config import MappingConfig
from .errors import ConversionError
from .ids import stable_id
from .memo import Memo, memo_for, remember, thaw

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
GMP = "https://fhir.hl7.org.uk/Id/gmp-number"
GMC = "https://fhir.hl7.org.uk/Id/gmc-number"


@lru_cache(maxsize=8192)
def _parse_ts(raw: str, tz: str) -> HL7Time | None:
    """parse_ts, memoised: a message repeats its timestamps (MSH-7, OBR-7 per OBX…)."""
    return parse_ts(raw, tz)


# The FHIR texts of a raw TS (first component still attached), memoised on the raw
# text, the component separator and the zone (everything the text depends on).
# Instants are not: they are mostly message times (MSH-7, OBR-22), new every time.
@lru_cache(maxsize=8192)
def _fhir_datetime(raw: str, comp: str, tz: str) -> str | None:
    return fhir_datetime(raw.split(comp, 1)[0], tz)


def _fhir_instant(raw: str, comp: str, tz: str) -> str | None:
    """Not memoised (see above)."""
    return fhir_instant(raw.split(comp, 1)[0], tz)


@lru_cache(maxsize=4096)
def _fhir_date(raw: str, comp: str, tz: str) -> str | None:
    t = _parse_ts(raw.split(comp, 1)[0], tz)
    return t.to_fhir_date() if t else None


class Ctx:
    """What every mapping function needs: the message, its config and sender.

    Kept as a small object (not a pydantic model) so the hot path stays cheap.
    """

    __slots__ = ("msg", "config", "ods", "delims", "message_id", "unmapped", "merged", "memo")

    def __init__(self, msg, config: MappingConfig, ods: str, merged) -> None:
        self.msg = msg
        self.config = config
        self.ods = ods
        self.delims: Delimiters = msg.delims
        self.memo: Memo = memo_for(config, ods, self.delims)
        self.message_id = msg.control_id
        self.unmapped: list[str] = []
        self.merged = merged or {}

    # -- text ---------------------------------------------------------------
    def text(self, raw: str) -> str:
        return unescape(raw, self.delims).strip() if self.delims.escape in raw else raw.strip()

    def comps(self, raw: str) -> list[str]:
        return raw.split(self.delims.component) if raw else []

    def subs(self, raw: str) -> list[str]:
        return raw.split(self.delims.subcomponent) if raw else []

    def reps(self, raw: str) -> list[str]:
        return [r for r in raw.split(self.delims.repetition) if r] if raw else []

    def system(self, template: str) -> str:
        return template.replace("{ods}", self.ods)

    def error(self, segment: str, field: str | int, reason: str) -> ConversionError:
        return ConversionError(self.message_id, segment, field, reason)

    # -- time -----------------------------------------------------------------
    def ts(self, raw: str, where: str) -> HL7Time | None:
        if not raw:
            return None
        try:
            return _parse_ts(raw.split(self.delims.component, 1)[0], self.config.timezone)
        except TimestampError as exc:
            raise self._ts_error(where, exc) from None

    def _ts_error(self, where: str, exc: TimestampError) -> ConversionError:
        return self.error(where.split("-")[0], where, f"bad timestamp: {exc}")

    def _text(self, fhir_text: Callable[[str, str, str], str | None], raw: str,
              where: str) -> str | None:
        if not raw:
            return None
        try:
            return fhir_text(raw, self.delims.component, self.config.timezone)
        except TimestampError as exc:
            raise self._ts_error(where, exc) from None

    def datetime(self, raw: str, where: str) -> str | None:
        return self._text(_fhir_datetime, raw, where)

    def instant(self, raw: str, where: str) -> str | None:
        """An instant needs seconds: widened."""
        return self._text(_fhir_instant, raw, where)

    def date(self, raw: str, where: str) -> str | None:
        return self._text(_fhir_date, raw, where)


def _c(parts: list[str], n: int) -> str:
    return parts[n - 1] if 0 < n <= len(parts) else ""


def compact(**elements: object) -> dict:
    """The elements that have a value, in the order given (FHIR omits empty elements)."""
    return {k: v for k, v in elements.items() if v}


# -- names ------------------------------------------------------------------
_NAME_USE = {"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "A": "usual",
             "C": "usual", "B": "official", "U": "temp", "P": "official", "S": "anonymous"}


def human_name(ctx: Ctx, raw: str) -> dict | None:
    """XPN: family ^ given ^ middle ^ suffix ^ prefix ^ degree ^ type."""
    c = ctx.comps(raw)
    family = ctx.text(_c(c, 1).split(ctx.delims.subcomponent, 1)[0])
    given = [g for g in (ctx.text(_c(c, 2)), ctx.text(_c(c, 3))) if g]
    if not family and not given:
        return None
    prefix = ctx.text(_c(c, 5))
    suffix = ctx.text(_c(c, 4))
    return compact(use=_NAME_USE.get(_c(c, 7)), family=family, given=given,
                   prefix=[prefix] if prefix else None, suffix=[suffix] if suffix else None)


# -- addresses ----------------------------------------------------------------
_ADDR_USE = {"H": "home", "B": "work", "O": "work", "C": "temp", "M": "home", "BA": "billing",
             "P": "home", "L": "home"}


def address(ctx: Ctx, raw: str) -> dict | None:
    """XAD: street ^ other ^ city ^ state/county ^ postcode ^ country ^ type."""
    c = ctx.comps(raw)
    lines = [x for x in (ctx.text(_c(c, 1).split(ctx.delims.subcomponent, 1)[0]),
                         ctx.text(_c(c, 2))) if x]
    city, district, postcode, country = (ctx.text(_c(c, i)) for i in (3, 4, 5, 6))
    if not (lines or city or district or postcode):
        return None
    kind = _c(c, 7)
    return compact(use=_ADDR_USE.get(kind), type="postal" if kind == "M" else None,
                   line=lines, city=city, district=district, postalCode=postcode,
                   country=country)


# -- telecom ------------------------------------------------------------------
_TEL_USE = {"PRN": "home", "ORN": "home", "WPN": "work", "VHN": "temp", "ASN": "work",
            "EMR": "temp", "NET": "home", "BPN": "work", "PRS": "mobile"}


def telecom(ctx: Ctx, raw: str) -> dict | None:
    """XTN: number ^ use ^ equipment ^ email ^ country ^ area ^ local … ^ unformatted(12)."""
    c = ctx.comps(raw)
    use_code, equip = _c(c, 2), _c(c, 3)
    email = ctx.text(_c(c, 4))
    number = ctx.text(_c(c, 1)) or ctx.text(_c(c, 12)) or " ".join(
        x for x in (ctx.text(_c(c, 6)), ctx.text(_c(c, 7))) if x)
    if use_code == "NET" or equip in ("Internet", "X.400") or (email and not number):
        value, system = email or number, "email"
    elif equip == "FX":
        value, system = number, "fax"
    else:
        value, system = number, "phone"
    if not value:
        return None
    out = {"system": system, "value": value}
    use = "mobile" if equip == "CP" else _TEL_USE.get(use_code)
    if use:
        out["use"] = use
    return out


# -- codes --------------------------------------------------------------------
def coding(system: str, code: str, display: str = "") -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


_CODEABLE: dict[tuple[int, str, str], bytes] = {}


def codeable(ctx: Ctx, raw: str, where: str) -> dict | None:
    """CE/CWE → CodeableConcept, with the configured system and standard translations.

    The local code system comes from CWE-3 (looked up in the mapping's
    ``code_systems``), or the mapping's default for the field; a lookup table
    adds a SNOMED CT / LOINC coding next to the local one. The alternate
    triplet (CWE-4..6) becomes a second coding. Memoised (see ``memo``): a
    feed sends the same codes over and over.
    """
    key = (ctx.memo.token, raw, where)
    frozen = _CODEABLE.get(key)
    if frozen is not None:
        return thaw(frozen)
    out = _codeable(ctx, raw, where)
    remember(_CODEABLE, key, out)
    return out


def _codeable(ctx: Ctx, raw: str, where: str) -> dict | None:
    c = ctx.comps(raw)
    code, text = ctx.text(_c(c, 1)), ctx.text(_c(c, 2))
    if not code and not text:
        return None
    out: dict = {}
    codings: list[dict] = []
    if code:
        codings.extend(_codings(ctx, code, text, _c(c, 3), where))
    alt_code = ctx.text(_c(c, 4))
    if alt_code:
        for extra in _codings(ctx, alt_code, ctx.text(_c(c, 5)), _c(c, 6), where):
            if extra not in codings:
                codings.append(extra)
    if codings:
        out["coding"] = codings
    if text:
        out["text"] = text
    return out


def _codings(ctx: Ctx, code: str, display: str, sys_key: str, where: str) -> list[dict]:
    cfg = ctx.config
    key = sys_key or cfg.field_defaults.get(where, "")
    cs = cfg.code_systems.get(key)
    if cs is None and key:
        # keys may be written with {ods}: try the templated form
        for k, v in cfg.code_systems.items():
            if "{ods}" in k and ctx.system(k) == key:
                cs = v
                break
    if cs is None:
        uri = ctx.system(cfg.local_code_system)
        if key:
            uri = f"{uri}/{_slug(key)}"
        return [coding(uri, code, display)]
    out = [coding(ctx.system(cs.uri), code, display)]
    tables = cfg.field_lookups.get(where, cs.lookups) if cs.lookups else ()
    for table in tables:
        hit = cfg.lookups[table].get(code)
        if hit:
            std = coding(hit[0], hit[1], hit[2])
            if std != out[0]:
                out.append(std)
            break
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text)


# -- people --------------------------------------------------------------------
_PRACTITIONER: dict[tuple[int, str], bytes] = {}


def practitioner_ref(ctx: Ctx, raw: str) -> dict | None:
    """XCN → a logical Reference (identifier + display), no resource needed (memoised)."""
    key = (ctx.memo.token, raw)
    frozen = _PRACTITIONER.get(key)
    if frozen is not None:
        return thaw(frozen)
    out = _practitioner_ref(ctx, raw)
    remember(_PRACTITIONER, key, out)
    return out


def _practitioner_ref(ctx: Ctx, raw: str) -> dict | None:
    c = ctx.comps(raw)
    ident = ctx.text(_c(c, 1))
    family, given, prefix = ctx.text(_c(c, 2)), ctx.text(_c(c, 3)), ctx.text(_c(c, 6))
    display = " ".join(x for x in (prefix, given, family) if x)
    if not ident and not display:
        return None
    ref: dict = {"type": "Practitioner"}
    if ident:
        ref["identifier"] = {"system": practitioner_system(ctx, ident), "value": ident}
    if display:
        ref["display"] = display
    return ref


def practitioner_system(ctx: Ctx, ident: str) -> str:
    if len(ident) == 8 and ident[0] == "G" and ident[1:].isdigit():
        return GMP
    if len(ident) == 8 and ident[0] == "C" and ident[1:].isdigit():
        return GMC  # consultant codes carry the GMC number after a 'C'
    return ctx.system("https://shcr-sim.example/Id/{ods}/staff")


@lru_cache(maxsize=1024)
def _org_reference(ods: str) -> str:
    return f"Organization/{stable_id(ods)}"


def org_ref(ods: str, display: str = "") -> dict:
    ref = {"reference": _org_reference(ods)}
    if display:
        ref["display"] = display
    return ref

"""The interface-mapping test harness: ``name.hl7`` + ``name.json`` cases.

The expected document is one of (see fixtures/mappings/README.md):

- a full Bundle (``"resourceType": "Bundle"`` at the top) — exact comparison,
  ignoring ``meta.lastUpdated``;
- ``{"bundle": {...}}`` — the same, with room for a ``"mapping"`` key;
- a partial document ``{"contains": [fragments], "absent": [...], "unmapped":
  [...], "patient_id": ..., "merge": [...]}`` — every fragment must be contained
  in some produced resource of its type (by id when the fragment has one);
- ``{"error": {"segment", "field", "reason"}}`` — conversion must fail so.

``"mapping"`` (a flavour name, or a TOML path relative to the case) picks the
mapping; otherwise ``--mapping``, then the sending trust in ``trusts`` (the CLI
passes the default scenario's), then itk-acute. Every Bundle produced is
validated with fhir.resources. With ``strict``, the message itself must also
pass hl7apy's strict structure validation (segment order, cardinality, data
types of its HL7 version).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from ..hl7 import HL7Error, parse
from .compare import diff_bundles, diff_fragment
from .config import MappingConfig, load_mapping
from .convert import Conversion, convert_message
from .errors import ConversionError
from .trusts import TrustDirectory, mapping_for_message
from .validate import ValidationError, validate_bundle


@dataclass(slots=True)
class Case:
    name: str
    hl7: Path
    expected: Path | None


@dataclass(slots=True)
class CaseResult:
    name: str
    passed: bool
    kind: str  # exact | contains | error | missing
    mapping: str = ""
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0


def discover(directory: str | Path) -> list[Case]:
    """Every ``*.hl7`` under directory (recursively), with its sibling ``.json``."""
    root = Path(directory)
    cases = []
    for path in sorted(root.rglob("*.hl7")):
        expected = path.with_suffix(".json")
        name = str(path.relative_to(root).with_suffix(""))
        cases.append(Case(name, path, expected if expected.exists() else None))
    return cases


def _mapping(doc: dict, case: Case, override: str | None, msg,
             trusts: TrustDirectory | None) -> MappingConfig:
    chosen = doc.get("mapping")
    if chosen:
        rel = case.hl7.parent / chosen
        return load_mapping(rel if str(chosen).endswith(".toml") and rel.exists() else chosen)
    return mapping_for_message(msg, override, trusts)


def run_case(case: Case, override: str | None = None, strict: bool = False,
             trusts: TrustDirectory | None = None) -> CaseResult:
    started = time.perf_counter()
    result = _run(case, override, trusts)
    if strict and result.kind != "missing":
        problem = structure_problem(case.hl7.read_bytes().decode("utf-8-sig", errors="replace"))
        if problem:
            result.passed = False
            result.differences.append(f"structure (hl7apy strict): {problem}")
    result.seconds = time.perf_counter() - started
    return result


def structure_problem(text: str) -> str:
    """'' if hl7apy parses and validates the message strictly, else its complaint."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    er7 = text.replace("\r\n", "\r").replace("\n", "\r").strip()
    try:
        parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
    except Exception as exc:  # hl7apy raises many types; all mean "not strictly valid"
        return f"{type(exc).__name__}: {exc}"
    return ""


def _run(case: Case, override: str | None, trusts: TrustDirectory | None) -> CaseResult:
    if case.expected is None:
        return CaseResult(case.name, False, "missing", differences=[
            f"no expectation: create {case.hl7.with_suffix('.json').name}"])
    try:
        doc = json.loads(case.expected.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return CaseResult(case.name, False, "missing", differences=[f"bad expectation: {exc}"])
    if not isinstance(doc, dict):
        return CaseResult(case.name, False, "missing",
                          differences=["expectation must be a JSON object"])
    kind = ("exact" if doc.get("resourceType") == "Bundle" or "bundle" in doc
            else "error" if "error" in doc else "contains")
    try:
        msg = parse(case.hl7.read_bytes().decode("utf-8-sig", errors="replace"))
    except HL7Error as exc:
        return _expect_error(case, doc, kind, "", None, exc)
    try:
        config = _mapping(doc, case, override, msg, trusts)
    except (OSError, ValueError) as exc:
        return CaseResult(case.name, False, kind, differences=[f"mapping: {exc}"])
    try:
        conv = convert_message(msg, config)
    except ConversionError as exc:
        return _expect_error(case, doc, kind, config.name, exc, None)
    if kind == "error":
        return CaseResult(case.name, False, kind, config.name, [
            f"expected ConversionError {doc['error']}, but the message converted"])
    diffs: list[str] = []
    try:
        validate_bundle(conv.bundle)
    except ValidationError as exc:
        diffs.extend(f"invalid FHIR: {e}" for e in exc.errors)
    if kind == "exact":
        expected = doc if doc.get("resourceType") == "Bundle" else doc["bundle"]
        diffs.extend(diff_bundles(expected, conv.bundle))
    else:
        diffs.extend(_check_partial(doc, conv))
    return CaseResult(case.name, not diffs, kind, config.name, diffs)


def _expect_error(case: Case, doc: dict, kind: str, mapping: str,
                  exc: ConversionError | None, hl7_exc: HL7Error | None) -> CaseResult:
    text = str(exc or hl7_exc)
    if kind != "error":
        return CaseResult(case.name, False, kind, mapping, [f"conversion failed: {text}"])
    want = doc["error"] if isinstance(doc["error"], dict) else {"reason": str(doc["error"])}
    diffs = []
    got_segment = exc.segment if exc else (hl7_exc.segment if hl7_exc else "")
    got_field = exc.field if exc else ""
    got_reason = exc.reason if exc else (hl7_exc.reason if hl7_exc else "")
    if "segment" in want and want["segment"] != got_segment:
        diffs.append(f"error.segment: expected {want['segment']!r} got {got_segment!r}")
    if "field" in want and want["field"] != got_field:
        diffs.append(f"error.field: expected {want['field']!r} got {got_field!r}")
    if "reason" in want and want["reason"].lower() not in got_reason.lower():
        diffs.append(f"error.reason: expected to contain {want['reason']!r} got {got_reason!r}")
    return CaseResult(case.name, not diffs, kind, mapping, diffs)


def _check_partial(doc: dict, conv: Conversion) -> list[str]:
    diffs: list[str] = []
    for fragment in doc.get("contains", []):
        diffs.extend(diff_fragment(fragment, conv.resources))
    produced = {f"{r['resourceType']}/{r['id']}" for r in conv.resources}
    types = {r["resourceType"] for r in conv.resources}
    for item in doc.get("absent", []):
        if item in produced or item in types:
            diffs.append(f"{item}: expected absent, but produced")
    for item in doc.get("unmapped", []):
        if not any(item in u for u in conv.unmapped):
            diffs.append(f"unmapped: expected an entry containing {item!r}, got {conv.unmapped}")
    if "patient_id" in doc and doc["patient_id"] != conv.patient_id:
        diffs.append(f"patient_id: expected {doc['patient_id']!r} got {conv.patient_id!r}")
    if "merge" in doc:
        want = tuple(doc["merge"]) if doc["merge"] else None
        if want != conv.merge:
            diffs.append(f"merge: expected {want!r} got {conv.merge!r}")
    if "resource_count" in doc and doc["resource_count"] != len(conv.resources):
        diffs.append(f"resource_count: expected {doc['resource_count']} got "
                     f"{len(conv.resources)}")
    return diffs


def run_directory(directory: str | Path, override: str | None = None,
                  strict: bool = False, trusts: TrustDirectory | None = None) -> list[CaseResult]:
    return [run_case(case, override, strict, trusts) for case in discover(directory)]


def write_junit(results: list[CaseResult], path: str | Path, suite: str = "mappings") -> None:
    """JUnit XML, one testcase per mapping case, failures carrying the diff lines."""
    failures = sum(1 for r in results if not r.passed)
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                       failures=str(failures), errors="0",
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        tc = ET.SubElement(ts, "testcase", classname=f"{suite}.{r.mapping or 'unknown'}",
                           name=r.name, time=f"{r.seconds:.3f}")
        if not r.passed:
            first = r.differences[0] if r.differences else "failed"
            fail = ET.SubElement(tc, "failure", message=first[:200], type=r.kind)
            fail.text = "\n".join(r.differences)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def render(results: list[CaseResult], console) -> None:
    """A pass/fail table, then each failure's differences by FHIR path."""
    from rich.table import Table

    table = Table(title="Interface-mapping cases")
    table.add_column("case")
    table.add_column("mapping")
    table.add_column("kind")
    table.add_column("result")
    table.add_column("differences", justify="right")
    for r in results:
        table.add_row(r.name, r.mapping, r.kind,
                      "[green]pass[/green]" if r.passed else "[red]FAIL[/red]",
                      str(len(r.differences)) if r.differences else "")
    console.print(table)
    for r in results:
        if r.passed:
            continue
        console.print(f"[bold red]FAIL[/bold red] {r.name}")
        for line in r.differences:
            console.print(f"    {line}", markup=False, highlight=False)
    passed = sum(r.passed for r in results)
    colour = "green" if passed == len(results) else "red"
    console.print(f"[{colour}]{passed}/{len(results)} cases pass[/{colour}]")

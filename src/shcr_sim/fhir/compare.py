"""Compare produced FHIR with an expectation and describe differences by FHIR path.

Paths read like ``Patient/abc.name[0].family: expected 'SMITH' got 'SMYTH'``.
Two kinds of comparison:

- exact: every element must be equal (``meta.lastUpdated`` ignored);
- contained: every element of the expected fragment must be present in the
  actual value (dict keys a subset; each expected list item matches some item).
"""

from __future__ import annotations

from typing import Any

IGNORED = ("lastUpdated",)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return a == b


def strip_ignored(value: Any) -> Any:
    """A copy without meta.lastUpdated (and meta left empty by that)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "meta" and isinstance(v, dict):
                v = {mk: mv for mk, mv in v.items() if mk not in IGNORED}
                if not v:
                    continue
            out[k] = strip_ignored(v)
        return out
    if isinstance(value, list):
        return [strip_ignored(v) for v in value]
    return value


def diff_exact(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in expected:
            sub = f"{path}.{key}" if path else key
            if key not in actual:
                out.append(f"{sub}: expected {_show(expected[key])} got nothing")
            else:
                out.extend(diff_exact(expected[key], actual[key], sub))
        for key in actual:
            if key not in expected:
                sub = f"{path}.{key}" if path else key
                out.append(f"{sub}: unexpected {_show(actual[key])}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        for i in range(max(len(expected), len(actual))):
            sub = f"{path}[{i}]"
            if i >= len(actual):
                out.append(f"{sub}: expected {_show(expected[i])} got nothing")
            elif i >= len(expected):
                out.append(f"{sub}: unexpected {_show(actual[i])}")
            else:
                out.extend(diff_exact(expected[i], actual[i], sub))
        return out
    if type(expected) is not type(actual) and not (
        isinstance(expected, int | float) and isinstance(actual, int | float)
        and not isinstance(expected, bool) and not isinstance(actual, bool)
    ):
        return [f"{path}: expected {_show(expected)} got {_show(actual)}"]
    return [] if _same_scalar(expected, actual) else [
        f"{path}: expected {_show(expected)} got {_show(actual)}"
    ]


def diff_contained(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected {_show(expected)} got {_show(actual)}"]
        out: list[str] = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else key
            if key not in actual:
                out.append(f"{sub}: expected {_show(value)} got nothing")
            else:
                out.extend(diff_contained(value, actual[key], sub))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list {_show(expected)} got {_show(actual)}"]
        out = []
        used: set[int] = set()
        for i, item in enumerate(expected):
            # same position first (keeps diffs readable), then anywhere in the list
            order = ([i] if i < len(actual) else []) + [j for j in range(len(actual)) if j != i]
            match = next((j for j in order if j not in used
                          and not diff_contained(item, actual[j], "")), None)
            if match is not None:
                used.add(match)
                continue
            if i < len(actual):
                out.extend(diff_contained(item, actual[i], f"{path}[{i}]"))
            else:
                out.append(f"{path}[{i}]: expected {_show(item)} got nothing")
        return out
    if _same_scalar(expected, actual):
        return []
    return [f"{path}: expected {_show(expected)} got {_show(actual)}"]


def _key(res: dict) -> str:
    return f"{res.get('resourceType')}/{res.get('id')}"


def diff_bundles(expected: dict, actual: dict) -> list[str]:
    """Exact comparison of two Bundles; entries matched by resource type and id."""
    expected, actual = strip_ignored(expected), strip_ignored(actual)
    out: list[str] = []
    top_e = {k: v for k, v in expected.items() if k != "entry"}
    top_a = {k: v for k, v in actual.items() if k != "entry"}
    out.extend(diff_exact(top_e, top_a, "Bundle"))
    e_entries = {_key(e.get("resource", {})): e for e in expected.get("entry", [])}
    a_entries = {_key(e.get("resource", {})): e for e in actual.get("entry", [])}
    for key, entry in e_entries.items():
        if key not in a_entries:
            out.append(f"{key}: expected resource missing")
            continue
        got = a_entries[key]
        out.extend(diff_exact(entry.get("resource"), got.get("resource"), key))
        rest_e = {k: v for k, v in entry.items() if k != "resource"}
        rest_a = {k: v for k, v in got.items() if k != "resource"}
        out.extend(diff_exact(rest_e, rest_a, f"{key}(entry)"))
    for key in a_entries:
        if key not in e_entries:
            out.append(f"{key}: unexpected resource")
    if not out and list(e_entries) != list(a_entries):
        out.append("Bundle.entry: same resources in a different order")
    return out


def diff_fragment(fragment: dict, resources: list[dict]) -> list[str]:
    """A resource fragment must be contained in some produced resource of its type."""
    rtype = fragment.get("resourceType")
    if not rtype:
        return ["contains: fragment without resourceType"]
    candidates = [r for r in resources if r.get("resourceType") == rtype]
    if "id" in fragment:
        wanted = f"{rtype}/{fragment['id']}"
        found = [r for r in candidates if r.get("id") == fragment["id"]]
        if not found:
            have = ", ".join(_key(r) for r in candidates) or "none"
            return [f"{wanted}: expected resource missing (have: {have})"]
        return diff_contained(fragment, found[0], wanted)
    if not candidates:
        return [f"{rtype}: expected a {rtype}, none produced"]
    best: list[str] | None = None
    for res in candidates:
        d = diff_contained(fragment, res, _key(res))
        if not d:
            return []
        if best is None or len(d) < len(best):
            best = d
    return best or []

"""Validate a Bundle with fhir.resources (R4B models), naming the failing path.

Imported lazily: pydantic model construction is slow to import and the engine
may run with validation off.
"""

from __future__ import annotations


class ValidationError(ValueError):
    """A Bundle that fhir.resources rejects; ``errors`` lists 'path: message'."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)"
                                                 if len(errors) > 5 else ""))


def _path(loc: tuple, bundle: dict) -> str:
    parts: list[str] = []
    node = bundle
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(node, dict) and "resourceType" in node and "id" in node:
            parts = [f"{node['resourceType']}/{node['id']}"]
    return ".".join(parts)


def validate_bundle(bundle: dict) -> None:
    """Raise ValidationError unless the Bundle validates against the R4B models."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError as PydanticError

    try:
        Bundle.model_validate(bundle)
    except PydanticError as exc:
        raise ValidationError(
            [f"{_path(tuple(e['loc']), bundle)}: {e['msg']}" for e in exc.errors()]
        ) from None

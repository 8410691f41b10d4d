"""Validate FHIR output with fhir.resources (R4B models), naming the failing path.

``validate_bundle`` checks a whole Bundle, the reference. ``ResourceValidator`` is
what the engine uses per message: each resource through its own model class, and
content already validated in this process is not validated again (same content,
same verdict), so shared reference data costs once per worker, not per message.

Imported lazily: pydantic model construction is slow to import and the engine
may run with validation off.
"""

from __future__ import annotations

import hashlib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import orjson


class ValidationError(ValueError):
    """A Bundle that fhir.resources rejects; ``errors`` lists 'path: message'."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)"
                                                 if len(errors) > 5 else ""))


def _path(loc: tuple, bundle: dict, parts: list[str] | None = None) -> str:
    parts = list(parts or ())
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


DEFAULT_CAPACITY = 262_144  # digests remembered per process: ~21 MB at most


class SeenDigests:
    """A bounded set of content digests (two generations, an approximate LRU).

    New digests go into the young generation; when it holds half the capacity it
    becomes the old one and the previous old one is dropped whole. A hit in the old
    generation is carried into the young one, so content that keeps coming back
    (a trust's Organization, its clinicians) stays while one-off content ages out.
    O(1) per call, and never more than ``capacity`` digests, however long the run.
    """

    __slots__ = ("capacity", "_old", "_young")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self._young: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, digest: object) -> bool:
        if digest in self._young:
            return True
        if digest in self._old:
            self.add(digest)  # type: ignore[arg-type]
            return True
        return False

    def add(self, digest: bytes) -> None:
        if len(self._young) >= self.capacity // 2:
            self._old, self._young = self._young, set()
        self._young.add(digest)

    def __len__(self) -> int:
        """Digests held (an upper bound: one carried forward counts in both)."""
        return len(self._young) + len(self._old)


def digest(body: bytes) -> bytes:
    """The 16-byte content digest of a resource's sorted-key JSON (``Prepared.hash`` as bytes)."""
    return hashlib.blake2b(body, digest_size=16).digest()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(FHIR element type, is a list) of a model field's annotation, or (None, False)."""
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None, False
            annotation = args[0]
        elif origin is list and not many:
            many, annotation = True, typing.get_args(annotation)[0]
        else:
            break
    # Element-or-Resource fields (contained, entry.resource) pick their class by content
    if (isinstance(annotation, type) and issubclass(annotation, FhirBase)
            and not issubclass(annotation, FhirElementOrResourceBase) and origin is None):
        return annotation.get_model_klass(), many
    return None, False


def _element_fields(klass: Any) -> dict[str, tuple[bytes, Any, bool]]:
    """JSON name → (digest tag, element model class, is a list) of each complex field."""
    out = {}
    for name, info in klass.model_fields.items():
        element, many = _unwrap(info.annotation)
        if element is not None:
            tag = f"{element.__module__}.{element.__qualname__}\0".encode()
            out[info.alias or name] = (tag, element, many)
    return out


def _resource_class(rtype: Any) -> Any:
    """The R4B model class ``Bundle.entry.resource`` would pick for this resourceType."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    if rtype is None:
        return Resource
    try:
        klass = get_fhir_model_class(rtype)
    except ValueError:
        klass = None
    if klass is None or not klass.has_resource_base():
        raise LookupError(f"unknown resource type {rtype!r}")
    return klass


class ResourceValidator:
    """Validates a message's resources one by one, each distinct content once per process.

    What it proves is what ``validate_bundle`` proves of the transaction Bundle the
    converter builds. ``Bundle.model_validate`` validates each ``entry.resource`` with
    the model class of its resourceType, and within it each complex field with the
    field's element class (``Element.model_validate(value)``), as here. What the
    Bundle adds is its envelope — ``id`` (an id), ``identifier`` (system: uri, value:
    string), ``timestamp`` (an instant), ``type``/``request.method`` (constants) and
    each entry's ``fullUrl``/``request.url`` (``<base>/<type>/<id>``: valid when the
    type is known and the id valid, which the resource's model checks). Pass
    ``envelope`` and its four values are checked with the same field types (~5 µs).

    Verdicts are remembered by content digest (``seen``: resources, ``parts``: their
    elements; bounded together by ``capacity``): a resource that passed before is
    skipped whole; in a new resource, each top-level element (a
    reference, a code, a name) that passed before is handed to the model as an
    already-validated instance, which fhir.resources accepts without looking inside
    (the parent's own checks never read a child's content). The rest is validated in
    place, so the errors are exactly the whole resource's. Resources are validated
    as their sorted-key JSON reloads, the bytes the digest covers and the store keeps.
    When anything fails and ``bundle`` is given, the whole Bundle is validated with
    ``validate_bundle`` so the message is exactly the reference one.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        # whole resources and their elements each get half: one-off elements (a message's
        # Provenance entity, references to its new results) cannot push resources out
        self.seen = SeenDigests(max(capacity // 2, 2))
        self.parts = SeenDigests(max(capacity // 2, 2))
        self.checked = 0  # resources validated through their model class
        self.skipped = 0  # resources whose content had already passed
        self.reused = 0  # elements of checked resources that had already passed
        self._classes: dict[Any, Any] = {}
        self._fields: dict[Any, dict[str, tuple[bytes, Any, bool]]] = {}
        self._done: dict[Any, Any] = {}  # element class → its validated stand-in
        self._envelope: tuple[Any, ...] | None = None

    def _class(self, rtype: Any) -> Any:
        if rtype is not None and not isinstance(rtype, str):
            raise LookupError(f"unknown resource type {rtype!r}")
        klass = self._classes.get(rtype)
        if klass is None:
            klass = self._classes[rtype] = _resource_class(rtype)
            self._fields[klass] = _element_fields(klass)
        return klass

    def _stand_in(self, element: Any) -> Any:
        done = self._done.get(element)
        if done is None:
            done = self._done[element] = element.model_construct()
        return done

    def _envelope_errors(self, envelope: Sequence[Any]) -> list[str]:
        from pydantic import TypeAdapter
        from pydantic import ValidationError as PydanticError

        if self._envelope is None:
            from fhir.resources.R4B import fhirtypes

            self._envelope = tuple(TypeAdapter(t) for t in (
                fhirtypes.IdType, fhirtypes.UriType, fhirtypes.StringType, fhirtypes.InstantType))
        errors = []
        for path, adapter, value in zip(("id", "identifier.system", "identifier.value",
                                         "timestamp"), self._envelope, envelope, strict=False):
            try:
                adapter.validate_python(value)
            except PydanticError as exc:
                errors += [f"{path}: {e['msg']}" for e in exc.errors()]
        return errors

    def _check(self, klass: Any, data: dict) -> list[bytes]:
        """Validate one resource in place, reusing elements seen before: the new digests."""
        parts, fresh = self.parts, []
        fields = self._fields[klass]
        for key, value in data.items():
            spec = fields.get(key)
            if spec is None:
                continue
            tag, element, many = spec
            if many:
                if type(value) is not list or not all(type(v) is dict for v in value):
                    continue  # not a list of objects: the model says what is wrong
                items = value
            elif type(value) is dict:
                items = [value]
            else:
                continue
            out = []
            for item in items:
                d = hashlib.blake2b(tag + orjson.dumps(item, option=orjson.OPT_SORT_KEYS),
                                    digest_size=16).digest()
                if d in parts:
                    self.reused += 1
                    out.append(self._stand_in(element))
                else:
                    fresh.append(d)
                    out.append(item)
            data[key] = out if many else out[0]
        klass.model_validate(data)
        return fresh

    def validate(self, resources: Sequence[dict], digests: Sequence[bytes | None] | None = None,
                 *, envelope: Sequence[Any] | None = None,
                 bundle: Callable[[], dict] | None = None) -> None:
        """Raise ValidationError unless every resource (and the envelope, if given) validates.

        ``digests[i]``: the digest of resource i as sorted-key JSON (``store.Prepared.hash``),
        when the caller has it; ``None``: made here. Pass it only for a resource without
        store-owned meta, which ``Prepared`` leaves out.
        """
        from pydantic import ValidationError as PydanticError

        errors = self._envelope_errors(envelope) if envelope is not None else []
        seen = self.seen
        for i, res in enumerate(resources):
            d = digests[i] if digests is not None else None
            body = None
            if d is None:
                body = orjson.dumps(res, option=orjson.OPT_SORT_KEYS)
                d = digest(body)
            if d in seen:
                self.skipped += 1
                continue
            if body is None:
                body = orjson.dumps(res, option=orjson.OPT_SORT_KEYS)
            self.checked += 1
            rtype = res.get("resourceType")
            start = ([f"{rtype}/{res['id']}"] if "resourceType" in res and "id" in res
                     else [f"entry[{i}]", "resource"])  # as _path names it in a Bundle
            try:
                fresh = self._check(self._class(rtype), orjson.loads(body))
            except PydanticError as exc:
                errors += [f"{_path(tuple(e['loc']), res, start)}: {e['msg']}"
                           for e in exc.errors()]
            except LookupError as exc:
                errors.append(f"{'.'.join(start)}.resourceType: {exc}")
            else:
                seen.add(d)
                for fd in fresh:
                    self.parts.add(fd)
        if errors:
            if bundle is not None:
                try:
                    validate_bundle(bundle())  # the reference names the failure
                except ValidationError:
                    raise
                except Exception:  # noqa: BLE001, S110 - e.g. its KeyError for an unknown type
                    pass
                else:  # the reference accepts it: its verdict stands, nothing is refused
                    return
            raise ValidationError(errors)

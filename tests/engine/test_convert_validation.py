"""Per-message validation in the engine: each resource through its own R4B model, each
distinct content once per process, and still every failure named by its path."""

from __future__ import annotations

import copy
import re

import pytest

import shcr_sim.fhir as fhir
from shcr_sim.engine.convert import SAMPLE_EVERY, Converted, Converter
from shcr_sim.fhir import ValidationError, validate_bundle
from shcr_sim.fhir.validate import ResourceValidator, SeenDigests
from shcr_sim.hl7 import parse

ADT = "\r".join([
    "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240315103000+0000||ADT^A08|{cid}|P|2.4",
    "EVN|A08|20240315102500+0000",
    "PID|1||9990000018^^^NHS^NH~M123^^^RXX01^PI||{family}^Ann||19700101|F",
    "|".join(["PV1", "1", "I", "WARD1^^^RXX01", *[""] * 15, "V1^^^RXX01^VN"]),
])


def msg(cid: str = "M1", family: str = "SMITH") -> str:
    return ADT.format(cid=cid, family=family)


@pytest.fixture
def broken_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversion yields a Patient whose name[0].family is a number (an R4B string)."""
    real = fhir.convert_message

    def convert(*args, **kwargs):
        conv = real(*args, **kwargs)
        for res in conv.resources:
            if res["resourceType"] == "Patient":
                res["name"][0]["family"] = 5
        return conv

    monkeypatch.setattr(fhir, "convert_message", convert)


def _reference_reason(text: str) -> str:
    conv = fhir.convert_message(parse(text), Converter(None).config_for("PAS", "RXX01", "2.4"))
    with pytest.raises(ValidationError) as exc:
        validate_bundle(conv.bundle)
    return f"validation: {exc.value}"


@pytest.mark.parametrize("prepared", [True, False])
@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_invalid_resource_is_rejected_with_its_path(broken_family, mode: str,
                                                   prepared: bool) -> None:
    conv = Converter(None, mode)
    reason = conv.convert(msg(), "m", "k", "t", None, seq=SAMPLE_EVERY, prepared=prepared)
    assert isinstance(reason, str)
    assert re.fullmatch(r"validation: Patient/[A-Za-z0-9\-.]+\.name\[0\]\.family: "
                        r"Input should be a valid string", reason), reason
    assert reason == _reference_reason(msg())  # the very message validate_bundle gives
    assert conv.validated == 1
    # warm: the same bad content again is validated again (only passes are remembered)
    again = conv.convert(msg(), "m", "k", "t", None, seq=0, prepared=prepared)
    assert again == reason
    if mode == "sampled":  # not this message's turn: converted, not validated
        assert isinstance(conv.convert(msg(), "m", "k", "t", None, seq=1,
                                       prepared=prepared), Converted)
        assert conv.validated == 2


def test_bad_element_inside_content_seen_before_is_still_rejected() -> None:
    """Reuse is per element digest: changing one nested value is new content."""
    conv = Converter(None, "full")
    assert isinstance(conv.convert(msg("M1"), "m", "k", "t", None, prepared=True), Converted)
    base = fhir.convert_message(parse(msg("M2")), conv.config_for("PAS", "RXX01", "2.4"))
    bad = copy.deepcopy(base.resources)
    patient = next(r for r in bad if r["resourceType"] == "Patient")
    patient["identifier"][0]["system"] = ["not", "a", "uri"]
    with pytest.raises(ValidationError, match=r"Patient/[^.]+\.identifier\[0\]\.system: "):
        conv.validator.validate(bad)
    conv.validator.validate(base.resources)  # the good version still passes


def test_identical_content_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir.resources.R4B.organization import Organization
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.reference import Reference

    calls: dict[str, int] = {}

    def counting(klass):
        real = klass.model_validate.__func__

        def model_validate(cls, *args, **kwargs):
            calls[cls.__name__] = calls.get(cls.__name__, 0) + 1
            return real(cls, *args, **kwargs)

        monkeypatch.setattr(klass, "model_validate", classmethod(model_validate))

    for klass in (Organization, Patient, Reference):
        counting(klass)
    for prepared in (True, False):
        calls.clear()
        conv = Converter(None, "full")
        first = conv.convert(msg("M1"), "m", "k", "t", None, prepared=prepared)
        assert isinstance(first, Converted)
        seen = dict(calls)
        assert seen["Organization"] == 1 and seen["Patient"] == 1
        # another message: same Organization and Patient, new Encounter and Provenance
        second = conv.convert(msg("M2"), "m", "k", "t", None, prepared=prepared)
        assert isinstance(second, Converted)
        assert calls["Organization"] == 1 and calls["Patient"] == 1, calls
        # references the first message validated (to the Patient, the trust) are reused
        assert calls.get("Reference", 0) - seen.get("Reference", 0) < seen.get("Reference", 0)
        assert conv.validator.skipped >= 2 and conv.validator.reused > 0
        assert conv.validated == 2


def test_unknown_resource_type_is_named() -> None:
    with pytest.raises(ValidationError, match=r"entry\[0\]\.resource\.resourceType: "
                                              r"unknown resource type 'Nope'"):
        ResourceValidator().validate([{"resourceType": "Nope"}])
    with pytest.raises(ValidationError, match=r"Address/a\.resourceType: unknown resource"):
        ResourceValidator().validate([{"resourceType": "Address", "id": "a"}])


def test_envelope_is_checked_with_the_bundle_field_types() -> None:
    conv = fhir.convert_message(parse(msg()), Converter(None).config_for("PAS", "RXX01", "2.4"))
    bundle_id, system, mid, recorded, _ = conv.envelope
    v = ResourceValidator()
    v.validate(conv.resources, envelope=(bundle_id, system, mid, recorded))
    with pytest.raises(ValidationError, match=r"^timestamp: .*Instant"):
        v.validate(conv.resources, envelope=(bundle_id, system, mid, "2024-03-15"))
    with pytest.raises(ValidationError, match=r"^identifier.value: "):
        v.validate(conv.resources, envelope=(bundle_id, system, "", recorded))
    # with the Bundle at hand, a failure is named by validate_bundle itself
    bundle = copy.deepcopy(conv.bundle)
    bundle["timestamp"] = "2024-03-15"
    with pytest.raises(ValidationError) as ours:
        v.validate(conv.resources, envelope=(bundle_id, system, mid, "2024-03-15"),
                   bundle=lambda: bundle)
    with pytest.raises(ValidationError) as ref:
        validate_bundle(bundle)
    assert str(ours.value) == str(ref.value)


def test_seen_digests_are_bounded_and_keep_what_recurs() -> None:
    seen = SeenDigests(capacity=8)
    keep = b"k" * 16
    seen.add(keep)
    for i in range(1000):
        seen.add(i.to_bytes(16, "big"))
        assert keep in seen  # asked for often: carried into each new generation
        assert len(seen) <= 8
    assert 0 .to_bytes(16, "big") not in seen  # long gone
    assert 999 .to_bytes(16, "big") in seen


def test_validator_cache_stays_within_capacity() -> None:
    v = ResourceValidator(capacity=16)
    for i in range(200):
        v.validate([{"resourceType": "Organization", "id": f"o{i}", "name": f"Org {i}",
                     "identifier": [{"system": "https://example.org/ods", "value": f"X{i}"}]}])
        assert len(v.seen) + len(v.parts) <= 16
    assert v.checked == 200 and v.skipped == 0


def _leaves(node, path=()):
    """(container, key) of every primitive value inside a resource, but its type and id."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, dict | list):
            yield from _leaves(value, (*path, key))
        elif path or key not in ("resourceType", "id"):
            yield node, key


def test_same_verdict_and_errors_as_validate_bundle(tmp_path) -> None:
    """Generated messages, then each with one value broken: the per-resource path (with
    its cache warm) accepts what ``validate_bundle`` accepts, rejects what it rejects,
    and names the same failures."""
    import random

    from shcr_sim.engine.trusts import trusts_from_scenario
    from shcr_sim.feeds.generate import generate
    from shcr_sim.feeds.scenario import load_scenario
    from shcr_sim.hl7 import iter_messages

    scenario = load_scenario(None)
    generate(scenario, tmp_path, messages=300, seed=11)
    conv = Converter(trusts_from_scenario(scenario), "full")
    texts = [m.text for p in sorted(tmp_path.rglob("*.hl7")) for m in iter_messages(p)]
    rng = random.Random(5)
    rejected = 0
    for text in texts:
        assert isinstance(conv.convert(text, "m", "k", "t", None, prepared=True), Converted)
        parsed = parse(text)
        good = fhir.convert_message(parsed, conv.config_for(*parsed.sender, parsed.version))
        bad = copy.deepcopy(good.resources)
        container, key = rng.choice([leaf for res in bad for leaf in _leaves(res)])
        container[key] = rng.choice([5, ["x"], {"x": 1}, "", None, True, "not a date"])
        bundle = fhir.Conversion(bad, None, envelope=(*good.envelope[:4], tuple(bad))).bundle
        try:
            validate_bundle(bundle)
            expected = None
        except ValidationError as exc:
            expected = exc.errors
        try:
            conv.validator.validate(bad)  # no Bundle to fall back on: our own paths
            got = None
        except ValidationError as exc:
            got = exc.errors
        assert got == expected, (container, key)
        rejected += expected is not None
    assert rejected > len(texts) // 3  # the corruptions did reach the models

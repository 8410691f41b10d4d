"""The engine's patient key and the converter's Patient agree on who the patient is.

Both read identifiers with ``shcr_sim.patient_identity``; these tests prove the
agreement on every mapping fixture and on a generated multi-trust set, and pin
the two rules the engine used to get wrong (CX-5-only NHS numbers, the sending
trust's own MRN first).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.engine import pipeline
from shcr_sim.engine.keys import KeysError, merged_away_keys, patient_key
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.fhir import ConversionError, convert_message, load_mapping
from shcr_sim.fhir.config import MappingConfig
from shcr_sim.fhir.datatypes import Ctx
from shcr_sim.fhir.patient import identifier_rules
from shcr_sim.fhir.patient import patient_key as fhir_patient_key
from shcr_sim.fhir.reading import read_messages
from shcr_sim.fhir.trusts import mapping_for_message
from shcr_sim.hl7 import HL7Error, parse
from shcr_sim.patient_identity import DEFAULT_RULES

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "fixtures" / "mappings"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
TRUSTS = {t.ods: (t.flavour, t.name) for t in load_scenario(None).trusts}


def _converter_key(msg, config: MappingConfig, conv) -> str:
    """The converter's patient as an engine key: its NHS number, else authority|MRN.

    Read with the converter's own ``patient_key`` (the id it must have used), and
    from the Patient resource's identifiers when the message carries one.
    """
    ctx = Ctx(msg, config, config.ods or msg.sender[1], None)
    key, _ = fhir_patient_key(ctx, msg["PID"])
    assert key.id == conv.patient_id
    for res in conv.resources:
        if res["resourceType"] == "Patient" and res["id"] == conv.patient_id:
            nhs = [i["value"] for i in res["identifier"] if i["system"] == NHS]
            assert nhs == ([key.nhs] if key.nhs else [])
    return f"nhs:{key.nhs}" if key.nhs else f"mrn:{key.authority}|{key.mrn}"


def _agree(raw: str, config: MappingConfig | None = None) -> tuple[str, str] | None:
    """(engine key, converter key), or None when the converter refuses the message."""
    try:
        msg = parse(raw)
        config = config or mapping_for_message(msg, None, TRUSTS)
        conv = convert_message(msg, config)
    except (HL7Error, ConversionError):
        return None
    if conv.patient_id is None:
        return None
    return patient_key(msg), _converter_key(msg, config, conv)


def test_default_identifier_rules_are_the_mappings_defaults() -> None:
    assert identifier_rules(MappingConfig(name="")) == DEFAULT_RULES


def test_every_mapping_fixture_keys_the_converters_patient() -> None:
    checked = 0
    for path in sorted(MAPPINGS.glob("*.hl7")):
        doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        raw = path.read_bytes().decode("utf-8-sig")
        config = load_mapping(doc["mapping"]) if doc.get("mapping") else None
        pair = _agree(raw, config)
        if pair is None:
            continue
        assert pair[0] == pair[1], path.name
        checked += 1
    assert checked >= 40  # the fixtures are mostly convertible; a glob mistake must not pass


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen3")
    result = CliRunner().invoke(app, ["generate", "--out", str(out), "--messages", "1500",
                                      "-q", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out


def test_generated_messages_key_the_converters_patient(generated: Path) -> None:
    total = nhs_keyed = mrn_keyed = 0
    for path in sorted(generated.rglob("*.hl7")):
        for raw in read_messages(path):
            pair = _agree(raw)
            assert pair is not None, raw[:200]
            assert pair[0] == pair[1], raw.split("\r", 4)[:4]
            total += 1
            nhs_keyed += pair[0].startswith("nhs:")
            mrn_keyed += pair[0].startswith("mrn:")
    assert total >= 1500
    assert nhs_keyed and mrn_keyed  # both branches of the rule are exercised


def _adt(pid3: str, pid2: str = "") -> str:
    return "\r".join([
        "MSH|^~\\&|PAS|RZ1|SHCR|CIE|20240615103000+0100||ADT^A28^ADT_A05|C1|P|2.4",
        "EVN|A28|20240615102500+0100",
        f"PID|1|{pid2}|{pid3}||LEE^KIM||19600101|F",
    ])


def test_nhs_number_flagged_only_by_type_code_keys_the_patient() -> None:
    assert patient_key(parse(_adt("9990000069^^^^NH~R7^^^RZ1^PI"))) == "nhs:9990000069"
    assert patient_key(parse(_adt("9990000069^^^^NHS~R7^^^RZ1^PI"))) == "nhs:9990000069"
    # a CX-5 NH with some other authority is that authority's number, not an NHS number
    assert patient_key(parse(_adt("9990000069^^^RZ9^NH~R7^^^RZ1^PI"))) == "mrn:RZ1|R7"


def test_the_sending_trusts_own_mrn_is_preferred() -> None:
    key = patient_key(parse(_adt("X1^^^RAJ^MR~M9^^^RZ1^MR")))
    assert key == "mrn:RZ1|M9"
    assert patient_key(parse(_adt("X1^^^RAJ^MR~M9^^^^MR"))) == "mrn:RZ1|M9"
    assert patient_key(parse(_adt("X1^^^RAJ^MR"))) == "mrn:RAJ|X1"


def test_invalid_nhs_number_alone_is_no_key() -> None:
    with pytest.raises(KeysError, match="PID-3"):
        patient_key(parse(_adt("9990000019^^^NHS^NH")))


def test_merged_away_keys_name_the_converters_old_patient_first() -> None:
    checked = 0
    for path in sorted(MAPPINGS.glob("*.hl7")):
        raw = path.read_bytes().decode("utf-8-sig")
        if "\rMRG|" not in raw.replace("\n", "\r"):
            continue
        msg = parse(raw)
        doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        config = load_mapping(doc["mapping"]) if doc.get("mapping") else mapping_for_message(
            msg, None, TRUSTS)
        try:
            conv = convert_message(msg, config)
        except ConversionError:
            continue
        old = next(r for r in conv.resources if r["id"] == conv.merge[0])
        nhs = [i["value"] for i in old["identifier"] if i["system"] == NHS]
        usual = next((i for i in old["identifier"] if i.get("use") == "usual"), None)
        expected = (f"nhs:{nhs[0]}" if nhs else
                    f"mrn:{usual['assigner']['identifier']['value']}|{usual['value']}")
        assert merged_away_keys(msg)[0] == expected, path.name
        checked += 1
    assert checked >= 2


def test_a_merged_away_mrn_without_authority_is_the_sending_trusts() -> None:
    raw = "\r".join([
        "MSH|^~\\&|PAS|RZ1|SHCR|CIE|20240615103000+0100||ADT^A40^ADT_A39|C9|P|2.4",
        "EVN|A40|20240615102500+0100",
        "PID|1||R7^^^RZ1^PI||LEE^KIM||19600101|F",
        "MRG|R6~9990000019^^^NHS^NH",
    ])
    # an invalid NHS number is no key (patient_key would never have produced it)
    assert merged_away_keys(parse(raw)) == ["mrn:RZ1|R6"]
    assert pipeline._mrg_keys(raw) == ["mrn:RZ1|R6"]

"""The converter's memo tables never change what a conversion produces.

Memoised results are keyed by everything they depend on (config object, trust,
delimiters, raw text), every hit is a fresh copy, tables are bounded, and
coverage mode (which watches field reads) bypasses them.
"""

from __future__ import annotations

import dataclasses

import orjson
from fhir_helpers import by_type, hl7, one

from shcr_sim.fhir import convert_message, load_mapping
from shcr_sim.fhir import memo as memo_mod
from shcr_sim.fhir.config import CodeSystem
from shcr_sim.fhir.coverage import CoverageReport, add_message
from shcr_sim.fhir.ids import fresh_id, stable_id
from shcr_sim.hl7 import parse

ORU = hl7(
    "MSH|^~\\&|LAB|RX1|SHCR|SHCR|20240315103000+0000||ORU^R01|MEMO1|P|2.4",
    "PID|1||9990000018^^^NHS^NH~M000123^^^RX1^PI||SMITH^JOHN||19700412|M",
    "OBR|1|P1|F1|FBC^Full blood count^L|||20240315090000+0000"
    + "|" * 15 + "20240315100000+0000||HM|F",
    "OBX|1|NM|HB^Haemoglobin^L|1|135|g/L^g/L^UCUM|130-170|N|||F",
)


def _json(conv) -> bytes:
    return orjson.dumps(conv.bundle)


def test_a_second_conversion_is_identical_and_shares_no_dicts(itk_a01):
    config = load_mapping("itk-acute")
    expected = _json(convert_message(parse(itk_a01), config))
    first = convert_message(parse(itk_a01), config)  # served from the memo
    # callers may edit what they get back: a later conversion must not see it
    patient = one(first, "Patient")
    patient["identifier"][0]["value"] = "changed"
    patient["name"][0]["family"] = "changed"
    one(first, "Encounter")["serviceType"]["coding"][0]["code"] = "changed"
    second = convert_message(parse(itk_a01), config)
    assert _json(second) == expected
    assert one(second, "Patient")["identifier"] is not patient["identifier"]


def test_results_memo_returns_fresh_copies():
    config = load_mapping("itk-acute")
    expected = _json(convert_message(parse(ORU), config))
    first = convert_message(parse(ORU), config)  # served from the memo
    obs = one(first, "Observation")
    obs["code"]["coding"].clear()
    obs["valueQuantity"]["unit"] = "changed"
    assert _json(convert_message(parse(ORU), config)) == expected


def test_another_config_for_the_same_trust_is_not_served_from_the_memo():
    config = load_mapping("itk-acute")
    before = one(convert_message(parse(ORU), config), "Observation")["code"]
    other = dataclasses.replace(config, code_systems={
        **config.code_systems, "L": CodeSystem(uri="https://example.org/other-lab")})
    after = one(convert_message(parse(ORU), other), "Observation")["code"]
    assert after["coding"][0]["system"] == "https://example.org/other-lab"
    assert before["coding"][0]["system"] != after["coding"][0]["system"]
    # and the first config still gets its own answer
    again = one(convert_message(parse(ORU), config), "Observation")["code"]
    assert again == before


def test_notes_are_replayed_on_a_memo_hit():
    text = ORU.replace("9990000018^^^NHS^NH", "9990000019^^^NHS^NH")  # fails modulus 11
    config = load_mapping("itk-acute")
    first = convert_message(parse(text), config).unmapped
    second = convert_message(parse(text), config).unmapped
    assert any("modulus-11" in note for note in first)
    assert first == second


def test_coverage_mode_reads_the_same_fields_with_a_warm_memo(itk_a01):
    config = dataclasses.replace(load_mapping("itk-acute"))  # a config no memo has seen

    def fields(text: str) -> dict:
        report = CoverageReport()
        add_message(report, text, lambda _m: config)
        return {k: (v.carried, v.dropped) for k, v in report.fields.items()}

    cold, cold_oru = fields(itk_a01), fields(ORU)
    assert cold and cold_oru
    for _ in range(3):  # warm every memo table with the same segments
        convert_message(parse(itk_a01), config)
        convert_message(parse(ORU), config)
    assert fields(itk_a01) == cold
    assert fields(ORU) == cold_oru


def test_tables_are_bounded():
    table: dict = {}
    for i in range(100):
        memo_mod.remember(table, i, {"n": i}, limit=8)
        memo_mod.put(table, ("k", i), i, limit=8)
        assert len(table) <= 8
    assert memo_mod.thaw(table[99]) == {"n": 99}


def test_fresh_id_is_stable_id():
    for parts in (("RX1", "M1"), ("RX1", "A-B", "1"), (" x ", "y"), ("é",), ("a" * 70,)):
        assert fresh_id(*parts) == stable_id(*parts)


def test_many_observations_still_get_their_own_ids():
    text = ORU + "OBX|2|NM|PLT^Platelets^L|1|250|10*9/L|150-400|N|||F\r"
    conv = convert_message(parse(text), load_mapping("itk-acute"))
    ids = [o["id"] for o in by_type(conv, "Observation")]
    assert len(set(ids)) == 2

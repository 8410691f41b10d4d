"""Every local code the simulated trusts send maps to a standard code, and every
message the simulator writes converts and validates."""

from __future__ import annotations

import pytest
from fhir_helpers import convert

from shcr_sim.feeds.catalogue import load_catalogue
from shcr_sim.feeds.flavours import FLAVOURS
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.fhir import load_mapping
from shcr_sim.fhir.datatypes import LOINC, SNOMED, Ctx, codeable
from shcr_sim.hl7 import parse

catalogue = load_catalogue()
ODS = "RQ9"


def _ctx(flavour: str) -> Ctx:
    msg = parse(f"MSH|^~\\&|APP|{ODS}|X|Y|20240101||ORU^R01|1|P|2.4\r")
    return Ctx(msg, load_mapping(flavour), ODS, None)


def _standard(ctx: Ctx, local: str, system: str, where: str) -> set[tuple[str, str]]:
    cc = codeable(ctx, f"{local}^text^{system.replace('{ods}', ODS)}", where) or {}
    return {(c["system"], c["code"]) for c in cc.get("coding", [])}


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_every_catalogue_code_maps_to_a_standard_code(flavour):
    ctx = _ctx(flavour)
    f = FLAVOURS[flavour]
    missing = []
    for panel in catalogue.panels.values():
        if (LOINC, panel.loinc) not in _standard(ctx, panel.local[flavour], f.lab_system, "OBR-4"):
            missing.append(f"panel {panel.key}")
        for test in panel.tests:
            if (LOINC, test.loinc) not in _standard(ctx, test.local[flavour], f.lab_system,
                                                    "OBX-3"):
                missing.append(f"test {test.key}")
    for exam in catalogue.radiology:
        if (SNOMED, exam.snomed) not in _standard(ctx, exam.local[flavour], f.rad_system,
                                                  "OBR-4"):
            missing.append(f"radiology {exam.key}")
    for exam in catalogue.cardiology.values():
        if (SNOMED, exam.snomed) not in _standard(ctx, exam.local[flavour], f.card_system,
                                                  "OBR-4"):
            missing.append(f"cardiology {exam.key}")
    for med in catalogue.medications + catalogue.mh_medications:
        if (SNOMED, med.dmd) not in _standard(ctx, med.local[flavour], f.drug_system, "RXE-2"):
            missing.append(f"medication {med.key}")
    assert missing == []


def test_generated_feeds_all_convert_and_validate(tmp_path):
    scenario = load_scenario(None)
    from shcr_sim.fhir.reading import read_messages
    from shcr_sim.fhir.trusts import mapping_for_message

    generate(scenario, tmp_path, messages=250, seed=7)
    trusts = {t.ods: (t.flavour, t.name) for t in scenario.trusts}
    seen: dict[str, int] = {}
    for path in sorted(tmp_path.rglob("*.hl7")):
        for text in read_messages(path):
            msg = parse(text)
            flavour = mapping_for_message(msg, trusts=trusts).name
            conv = convert(text, flavour)  # convert() validates every Bundle
            assert conv.patient_id
            seen[msg.message_type.split("^")[0]] = seen.get(msg.message_type.split("^")[0], 0) + 1
    assert seen.get("ADT", 0) > 0 and seen.get("ORU", 0) > 0 and seen.get("MDM", 0) > 0

"""Scenario files: the default loads; a bad file is refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
from feeds_helpers import default_data
from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.feeds.scenario import ScenarioError, load_scenario, parse_scenario
from shcr_sim.hl7 import parse
from shcr_sim.hl7.files import iter_messages


def test_default_scenario_shape() -> None:
    sc = load_scenario(None)
    kinds = [t.kind for t in sc.trusts]
    assert kinds.count("acute") == 3
    assert kinds.count("mental-health") == 1
    assert kinds.count("urgent-care") == 1
    uc = next(t for t in sc.trusts if t.kind == "urgent-care")
    assert uc.data_types == ["documents"]
    assert {t.flavour for t in sc.trusts} == {"itk-acute", "classic-pas", "mh-epr"}
    assert len({t.ods for t in sc.trusts}) == len(sc.trusts)


def _error(data: dict) -> str:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    return str(err.value)


def test_bad_flavour_names_the_trust_and_field() -> None:
    data = default_data()
    data["trusts"][2]["flavour"] = "epic"
    assert (
        "trusts[2].flavour: Input should be 'itk-acute', 'classic-pas' or 'mh-epr'"
        in _error(data)
    )


def test_unknown_field_is_refused() -> None:
    data = default_data()
    data["population"]["sise"] = 10
    assert "population.sise: Extra inputs are not permitted" in _error(data)


def test_bad_values_name_their_fields() -> None:
    data = default_data()
    data["trusts"][0]["data_types"] = ["adt", "x-rays"]
    data["live"]["resend_rate"] = 1.5
    data["backload"]["end"] = data["backload"]["start"]
    message = _error(data)
    assert "trusts[0].data_types[1]" in message
    assert "live.resend_rate" in message
    assert "backload: Value error, end must be after start" in message


def test_duplicate_ods_is_refused() -> None:
    data = default_data()
    data["trusts"][1]["ods"] = data["trusts"][0]["ods"]
    assert "duplicate trust ods 'RZ1'" in _error(data)


def test_cli_exits_non_zero_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[backload]\nstart = 2024-01-01\nend = 2025-01-01\n'
        '[[trusts]]\nname = "A"\nods = "AB1"\nsending_application = "X"\nkind = "acute"\n'
        'flavour = "epic"\ndata_types = ["adt"]\n'
    )
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path / "o"), "--scenario",
                                      str(bad)])
    assert result.exit_code == 2
    assert "trusts[0].flavour: Input should be" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path / "o"), "--scenario",
                                      str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "cannot read scenario" in result.output


def test_not_toml_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_rates_are_checked_and_used(tmp_path: Path) -> None:
    data = default_data()
    data["trusts"][0]["rates"] = {"xray": 1.0}
    assert "trusts[0].rates.xray" in _error(data)
    data["trusts"][0]["rates"] = {"ed": -1.0}
    assert "rates.ed must be >= 0" in _error(data)

    from shcr_sim.feeds.generate import generate

    data = default_data()
    data["population"]["size"] = 150
    data["population"]["duplicate_share"] = 0.0  # a duplicate's first visit is an ED one
    data["trusts"] = [data["trusts"][0]]
    data["trusts"][0]["rates"] = {"ed": 0.0, "elective": 0.0, "gp_requests": 0.0}
    manifest = generate(parse_scenario(data), tmp_path / "a")
    counts = manifest["trusts"]["RZ1"]["backload"]
    assert counts["ADT^A04"] > 0  # outpatients still come
    # no ED, no elective lists: the only admissions are final ones ending in death
    admitted, died = set(), set()
    for path in (tmp_path / "a").rglob("*.hl7"):
        for raw in iter_messages(path):
            m = parse(raw.text)
            if m.message_type == "ADT^A01":
                admitted.add(m.get("PV1-19.1"))
            if m.message_type == "ADT^A03" and m.get("PV1-36") == "DIED":
                died.add(m.get("PV1-19.1"))
    assert admitted <= died


def test_backload_before_1996_is_refused() -> None:
    data = default_data()
    data["backload"]["start"] = "1990-01-01"
    assert "backload.start: Input should be greater than or equal to 1996-01-01" in _error(data)


def test_printed_default_is_a_usable_starting_point(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "--print-scenario"])
    assert result.exit_code == 0
    mine = tmp_path / "mine.toml"
    mine.write_text(result.output.replace("size = 2000", "size = 40"))
    sc = load_scenario(mine)
    assert sc.population.size == 40
    assert sc.trusts == load_scenario(None).trusts


def test_out_is_required_to_generate() -> None:
    result = CliRunner().invoke(app, ["generate"])
    assert result.exit_code == 2
    assert "--out DIR is required" in result.output


def test_a_trust_extract_can_start_later(tmp_path: Path) -> None:
    from shcr_sim.feeds.generate import generate

    data = default_data()
    data["population"]["size"] = 200
    data["trusts"][0]["backload_from"] = "2025-07-01"
    manifest = generate(parse_scenario(data), tmp_path)
    assert manifest["trusts"]["RZ1"]["backload_from"] == "2025-07-01"
    assert manifest["trusts"]["RZ2"]["backload_from"] == "2024-01-01"
    earliest: dict[str, str] = {}
    for path in (tmp_path / "backload").rglob("*.hl7"):
        for raw in iter_messages(path):
            m = parse(raw.text)
            ods = m.sender[1]
            day = (m.get("EVN-2") or m.get("OBR-22") or m.get("ORC-9"))[:8]
            earliest[ods] = min(earliest.get(ods, day), day)
    assert earliest["RZ1"] >= "20250701"
    assert earliest["RZ2"] < "20240401"


def test_sending_applications_default_per_kind_of_trust() -> None:
    data = default_data()
    for t in data["trusts"]:
        t.pop("sending_applications", None)
    sc = parse_scenario(data)
    acute = next(t for t in sc.trusts if t.ods == "RZ1")
    assert acute.sending_applications == {
        "adt": "NFPAS", "pathology": "LIMS", "radiology": "RIS", "cardiology": "CVIS",
        "prescribing": "EPMA", "documents": "EDMS"}
    mh = next(t for t in sc.trusts if t.kind == "mental-health")
    assert set(mh.sending_applications.values()) == {mh.sending_application}
    # the resolved map validates again as it stands (a manifest or model_dump round trip)
    again = parse_scenario(sc.model_dump(mode="json"))
    assert again.trusts == sc.trusts


def test_bad_sending_applications_name_the_field() -> None:
    data = default_data()
    data["trusts"][1]["sending_applications"] = {"cardiology": "CGH_CARD"}  # not sent there
    data["trusts"][0]["sending_applications"] = {"adt": "OTHER"}
    data["trusts"][2]["sending_applications"] = {"pathology": "bad name!"}
    message = _error(data)
    assert "trusts[1]: Value error, sending_applications.cardiology" in message
    assert "trusts[0]: Value error, sending_applications.adt must be the sending_application" \
        in message
    assert "trusts[2].sending_applications.pathology: String should match pattern" in message

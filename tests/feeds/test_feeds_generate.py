"""Generator output: same seed same bytes, manifest matches the files, ids and order."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from feeds_helpers import Generated, local_mrn, small_scenario, tree_bytes
from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.nhs import nhs_number_is_valid
from shcr_sim.hl7 import parse_ts


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    sc = small_scenario(120, rate_multiplier=30.0, resend_rate=0.05)
    generate(sc, tmp_path / "a")
    generate(sc, tmp_path / "b")
    generate(sc, tmp_path / "c", seed=sc.seed + 1)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 10
    assert a != c
    assert json.loads(a["manifest.json"])["seed"] == sc.seed
    assert json.loads(c["manifest.json"])["seed"] == sc.seed + 1


def test_layout_and_manifest_counts_match_files(feeds_run, feeds_messages) -> None:
    out, manifest = feeds_run
    counted: dict[str, Counter[str]] = {}
    per_file: Counter[str] = Counter()
    for g in feeds_messages:
        counted.setdefault(f"{g.ods}/{g.lane}", Counter())[g.msg.message_type] += 1
        per_file[str(g.path.relative_to(out))] += 1
    for ods, t in manifest["trusts"].items():
        assert dict(counted.get(f"{ods}/backload", {})) == t["backload"]
        assert dict(counted.get(f"{ods}/live", {})) == t["live"]
    assert dict(per_file) == manifest["files"]
    assert manifest["total"] == len(feeds_messages)
    people = manifest["patients"]
    assert people["patients"] == manifest["population"] == 600
    assert people["with_nhs_number"] + people["without_nhs_number"] == 600
    assert people["without_nhs_number"] > 0 and people["known_at_several_trusts"] > 100
    merges = sum(t["backload"].get("ADT^A40", 0) + t["live"].get("ADT^A40", 0)
                 for t in manifest["trusts"].values())
    assert 0 < merges <= people["duplicate_registrations"]
    assert people["died"] > 0
    assert manifest["backload"]["messages"] + manifest["live"]["messages"] == manifest["total"]
    # data-type files only for what each trust sends
    for ods in manifest["trusts"]:
        files = {p.stem for p in (out / "backload" / ods).glob("*.hl7")}
        assert files, ods
        assert (out / "live" / f"{ods}.hl7").exists()
    assert {p.stem for p in (out / "backload" / "NZU").glob("*.hl7")} == {"documents"}
    kinds = {g.msg.message_type for g in feeds_messages}
    assert {"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A28", "ADT^A31",
            "ADT^A40", "ORU^R01", "RDE^O11", "MDM^T02"} <= kinds


_DATA_TYPE = {"ADT": "adt", "RDE": "prescribing", "MDM": "documents"}


def _data_type(g: Generated) -> str:
    """Which of the trust's systems sent this: from the message, not the file name."""
    kind = g.msg.message_type.split("^")[0]
    if kind != "ORU":
        return _DATA_TYPE[kind]
    section = g.msg.get("OBR-24")
    return {"RAD": "radiology", "EC": "cardiology"}.get(section, "pathology")


def test_sender_and_control_ids(feeds_scenario, feeds_messages: list[Generated]) -> None:
    """MSH-3 names the trust's system for the data type (PAS for ADT, LIMS, RIS …); the
    trust's ODS code is MSH-4; (MSH-3, MSH-4, MSH-10) is unique but for live resends."""
    trusts = {t.ods: t for t in feeds_scenario.trusts}
    seen: dict[tuple[str, str, str], str] = {}
    resends = 0
    apps: set[tuple[str, str]] = set()
    for g in feeds_messages:
        app_, fac = g.msg.sender
        dtype = _data_type(g)
        assert fac == g.ods
        assert app_ == trusts[g.ods].sending_applications[dtype], (g.ods, dtype, app_)
        if dtype == "adt":
            assert app_ == trusts[g.ods].sending_application
        apps.add((fac, app_))
        key = (app_, fac, g.msg.control_id)
        if key in seen:
            assert g.lane == "live", "only live messages are ever resent"
            assert seen[key] == g.text, "a resend repeats the original bytes"
            resends += 1
        seen[key] = g.text
    assert resends > 0
    assert {app for ods, app in apps if ods == "RZ1"} == {
        "NFPAS", "NF_LIMS", "NF_RIS", "NF_CVIS", "NF_EPMA", "NF_EDMS"}


def test_manifest_names_every_sending_application(feeds_run) -> None:
    _, manifest = feeds_run
    rz1 = manifest["trusts"]["RZ1"]
    assert rz1["sending_application"] == "NFPAS"
    assert rz1["sending_applications"] == {
        "adt": "NFPAS", "pathology": "NF_LIMS", "radiology": "NF_RIS", "cardiology": "NF_CVIS",
        "prescribing": "NF_EPMA", "documents": "NF_EDMS"}
    # a mental-health EPR sends its own letters (and, by default, everything it sends);
    # its ePrescribing is a separate system
    rzm = manifest["trusts"]["RZM"]["sending_applications"]
    assert rzm["prescribing"] == "PV_EPMA"
    assert {rzm[k] for k in rzm if k != "prescribing"} == {"PVCARE"}


def test_backload_files_are_in_local_id_order(feeds_messages: list[Generated]) -> None:
    by_file: dict[Path, list[Generated]] = {}
    for g in feeds_messages:
        if g.lane == "backload":
            by_file.setdefault(g.path, []).append(g)
    out_of_time_order = 0
    for path, msgs in by_file.items():
        mrns = [local_mrn(g) for g in msgs]
        assert mrns == sorted(mrns), path
        times = [parse_ts(g.msg.get("MSH-7")).epoch for g in msgs]
        out_of_time_order += sum(1 for x, y in zip(times, times[1:], strict=False) if y < x)
    assert out_of_time_order > 0, "extracts are grouped by patient, not by time"


def test_live_stream_is_after_cut_over_and_in_arrival_order(feeds_run, feeds_messages) -> None:
    out, manifest = feeds_run
    cut = parse_ts(manifest["live"]["start"].replace("-", "").replace(":", "")
                   .replace("T", "").replace("Z", "+0000")).epoch
    live = [g for g in feeds_messages if g.lane == "live"]
    assert live
    for g in live:
        assert _event_time(g) >= cut
    for g in feeds_messages:
        if g.lane == "backload":
            assert _event_time(g) < cut
    # arrival order: per trust, first sends step back in MSH-7 by at most the send jitter;
    # resends (same MSH-10 again) arrive up to 15 minutes after their original
    for ods in manifest["trusts"]:
        seen: set[tuple[str, str]] = set()
        last = 0.0
        for g in (g for g in live if g.ods == ods):
            t = parse_ts(g.msg.get("MSH-7")).epoch
            key = (g.msg.sender[0], g.msg.control_id)
            if key in seen:
                assert last - 1200 <= t <= last
                continue
            seen.add(key)
            assert t >= last - 300
            last = max(last, t)


def _number(control_id: str) -> int:
    return int(control_id[-10:].lstrip("-") or 0)


def test_live_interfaces_number_messages_as_they_send(feeds_messages) -> None:
    """MSH-10 rises in arrival order on each live feed, per sending application (each
    system numbers its own messages), after every backload number of that system."""
    highest_backload: dict[tuple[str, str], int] = {}
    for g in feeds_messages:
        if g.lane == "backload":
            key = (g.ods, g.msg.sender[0])
            n = _number(g.msg.control_id)
            highest_backload[key] = max(highest_backload.get(key, 0), n)
    last: dict[tuple[str, str], int] = {}
    for g in feeds_messages:
        if g.lane != "live":
            continue
        key = (g.ods, g.msg.sender[0])
        n = _number(g.msg.control_id)
        if n <= last.get(key, 0):
            continue  # a resend: checked to repeat its original's bytes elsewhere
        assert n == last.get(key, n - 1) + 1 or key not in last
        assert n > highest_backload.get(key, 0)
        last[key] = n
    assert len(last) >= 10
    assert len({ods for ods, _ in last}) >= 4


def test_flavours_place_identifiers_their_own_way(feeds_messages: list[Generated]) -> None:
    checked = Counter()
    for g in feeds_messages:
        if "PID" not in g.msg:
            continue
        m = g.msg
        version = m.version
        pid3 = m["PID"].repetitions(3)
        if version == "2.4":  # itk-acute
            nhs = [r for r in pid3 if r.split("^")[3:5] == ["NHS", "NH"]]
            assert pid3[-1].endswith(f"^^^{g.ods}^PI")
            if nhs:
                assert pid3[0] == nhs[0]
                assert m.get("PID-32") in {f"0{i}" for i in range(1, 9)}
            assert parse_ts(m.get("MSH-7")).had_offset
        elif version == "2.3.1":  # classic-pas
            nhs = [m.get("PID-2")] if m.get("PID-2") else []
            assert len(pid3) == 1 and pid3[0].endswith(f"^^^{g.ods}^MR")
            assert len(m.get("MSH-7")) == 12  # minutes, no offset
            assert "ZU1" not in m and "ZMH" not in m
        else:  # mh-epr
            assert version == "2.5.1"
            nhs = pid3[1:]
            assert pid3[0].endswith(f"^^^{g.ods}^MR")
            if nhs:
                assert nhs[0].endswith("^^^NHS^NHS")
                assert m.get("PID-32").startswith("NSTS")
            assert not parse_ts(m.get("MSH-7")).had_offset
        for n in nhs:
            assert nhs_number_is_valid(n.split("^")[0])
        checked[version] += 1
        checked[f"{version}-nhs" if nhs else f"{version}-mrn-only"] += 1
    for version in ("2.4", "2.3.1", "2.5.1"):
        assert checked[f"{version}-nhs"] > 0
    assert sum(checked[f"{v}-mrn-only"] for v in ("2.4", "2.3.1", "2.5.1")) > 0


def test_messages_option_scales_the_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["generate", "--out", str(tmp_path), "--messages", "3000", "--seed", "5", "-q"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert 2000 <= manifest["total"] <= 4500
    assert manifest["seed"] == 5


def test_generating_into_a_log_prints_a_progress_line_now_and_then(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """On a log or a pipe a long run reports in plain lines, where a bar shows nothing."""
    import importlib

    gen = importlib.import_module("shcr_sim.feeds.generate")  # the package re-exports it
    for forced_terminal in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # rich would draw a bar
        monkeypatch.delenv(forced_terminal, raising=False)
    sc = small_scenario(60, rate_multiplier=30.0)
    generate(sc, tmp_path / "quiet", messages=800)
    assert capsys.readouterr().err == ""  # no progress asked for: nothing
    manifest = generate(sc, tmp_path / "short", messages=800, progress=True)
    lines = capsys.readouterr().err.splitlines()
    # shorter than the interval: only the closing line, with the final counts
    assert len(lines) == 1 and lines[0].startswith("generate: ")
    assert f"{manifest['total']:,} of 800 messages" in lines[0]
    assert f"{manifest['population']:,} patients" in lines[0]
    monkeypatch.setattr(gen, "PLAIN_PROGRESS_EVERY_S", 0.0)
    manifest = generate(sc, tmp_path / "log", messages=6000, progress=True)
    lines = capsys.readouterr().err.splitlines()
    counts = [int(line.split()[1].replace(",", "")) for line in lines]
    assert len(counts) >= 3 and counts == sorted(counts)  # every 100 patients, growing
    assert counts[-1] == manifest["total"] and counts.count(counts[-1]) == 1


def _event_time(g: Generated) -> float:
    """Event time as the engine reads it: EVN-2, else OBR-22/OBR-7, TXA-4, ORC-9, MSH-7."""
    m = g.msg
    for path in ("EVN-2", "OBR-22", "ORC-9", "TXA-6", "MSH-7"):
        value = m.get(path)
        if value:
            return parse_ts(value).epoch
    raise AssertionError("no time")


def test_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Determinism must not lean on dict/set ordering of strings (PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    outs = []
    for hash_seed in ("1", "12345"):
        out = tmp_path / f"h{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run(
            [sys.executable, "-m", "shcr_sim.cli", "generate", "--out", str(out),
             "--messages", "1500", "-q"],
            check=True, env=env, capture_output=True,
        )
        outs.append(tree_bytes(out))
    assert outs[0] == outs[1]


def test_spilling_the_live_stream_changes_nothing(tmp_path: Path) -> None:
    """Bounded memory: tiny spill runs merge to exactly what one in-memory sort gives."""
    sc = small_scenario(150, rate_multiplier=40.0, resend_rate=0.1)
    generate(sc, tmp_path / "big")
    generate(sc, tmp_path / "tiny", live_budget=7)
    big, tiny = tree_bytes(tmp_path / "big"), tree_bytes(tmp_path / "tiny")
    assert big == tiny
    assert sum(len(v) for k, v in big.items() if k.startswith("live/")) > 10_000
    assert not list((tmp_path / "tiny").glob(".live-runs-*")), "spill files are removed"


def test_escaped_free_text_reads_back(feeds_messages: list[Generated]) -> None:
    texts = [s.get_text(5) for g in feeds_messages if g.msg.message_type == "MDM^T02"
             for s in g.msg.all("OBX") if s.get(2) == "TX"]
    assert any("A&E" in t for t in texts)
    raw = [g.text for g in feeds_messages if "re-attend A\\T\\E" in g.text]
    assert raw
    cultures = [s.get_text(5) for g in feeds_messages if g.msg.message_type == "ORU^R01"
                for s in g.msg.all("OBX") if s.get(2) == "TX" and "cfu" in s.get_text(5)]
    assert any(">10^5 cfu/mL" in t for t in cultures)


def test_the_engine_accepts_every_sender_the_trusts_use(feeds_run, feeds_scenario,
                                                        feeds_messages) -> None:
    """Each sending application a run writes is a known sender for the engine, whether it
    learns the trusts from the scenario or from the manifest of the generated folder."""
    from shcr_sim.engine.mllp_server import SenderPolicy
    from shcr_sim.engine.trusts import resolve_trusts, trusts_from_scenario

    out, _ = feeds_run
    senders = {g.msg.sender for g in feeds_messages}
    assert len(senders) > 10
    policy = SenderPolicy.from_trusts(feeds_scenario.trusts)
    from_scenario = {(t.app, t.ods) for t in trusts_from_scenario(feeds_scenario)}
    from_manifest = {(t.app, t.ods) for t in resolve_trusts(None, [out]) or []}
    for sender in senders:
        assert policy.permits(*sender), sender
        assert sender in from_scenario and sender in from_manifest, sender

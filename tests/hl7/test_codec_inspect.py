"""The field-numbered view behind ``shcr-sim inspect``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shcr_sim.cli import app
from shcr_sim.hl7 import parse, write_batch
from shcr_sim.hl7.inspect import describe

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7"


def test_describe_gives_paths_that_message_get_reads_back() -> None:
    text = (FIXTURES / "adt_a01_itk_v24.hl7").read_bytes().decode()
    msg = parse(text)
    lines = describe(msg, width=200)
    assert lines[0] == "ADT^A01 RXX00012345 v2.4 from PAS/RXX"
    rows = [line.split(None, 1) for line in lines[1:]]
    assert len(rows) > 40
    for path, shown in rows:
        raw = shown.split("  → ")[0]
        assert msg.get(path) == raw, path
    assert "  PID-3(2).1         RXX1234567" in lines
    assert any(line.startswith("  AL1-5") and "→ 'Wheeze & rash'" in line for line in lines)
    assert any(line.startswith("  PID-7") and line.endswith("→ 1978-04-12") for line in lines)


def test_inspect_command_reads_any_file_shape(tmp_path: Path) -> None:
    text = (FIXTURES / "adt_a40_v24.hl7").read_bytes().decode()
    batch = tmp_path / "batch.hl7"
    write_batch(batch, [[text, text.replace("RXX00099999", "SECOND")]])
    result = CliRunner().invoke(app, ["inspect", str(batch), "--index", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#1 at byte ")
    assert "ADT^A40 SECOND v2.4 from PAS/RXX" in result.output
    assert "MRG-1.1            RXX2222222" in result.output

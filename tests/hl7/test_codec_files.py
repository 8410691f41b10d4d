"""HL7 files read as streams: MLLP-framed, plain and batch files, with real-world mess."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shcr_sim.hl7 import frame, iter_messages, parse, write_batch, write_messages
from shcr_sim.hl7.files import RawMessage


def adt(i: int) -> str:
    return "\r".join(
        [
            f"MSH|^~\\&|PAS|RXX|CIE|SHCR|20240101120000||ADT^A08|CTRL{i:06d}|P|2.4",
            "EVN|A08|20240101120000",
            f"PID|1||9990000018^^^NHS^NH~M{i}^^^RXX^PI||Doe^Jane||19700101|F",
            "PV1|1|O",
        ]
    )


MESSAGES = [adt(i) for i in range(7)]


def control_ids(path: Path, **kw: object) -> list[str]:
    return [parse(m.text).control_id for m in iter_messages(path, **kw)]  # type: ignore[arg-type]


@pytest.mark.parametrize("framing", ["plain", "mllp"])
@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1 << 20])
def test_round_trip_every_framing_and_separator(
    tmp_path: Path, framing: str, sep: str, chunk_size: int
) -> None:
    path = tmp_path / "x.hl7"
    assert write_messages(path, MESSAGES, framing=framing, segment_sep=sep) == 7  # type: ignore[arg-type]
    got = list(iter_messages(path, chunk_size=chunk_size))
    assert [m.index for m in got] == list(range(7))
    assert [parse(m.text).control_id for m in got] == [f"CTRL{i:06d}" for i in range(7)]
    assert [parse(m.text).get("PID-3(2).1") for m in got] == [f"M{i}" for i in range(7)]
    raw = path.read_bytes()
    for m in got:  # the offset points at the message in the file
        assert raw[m.offset : m.offset + 3] == b"MSH"


@pytest.mark.parametrize("chunk_size", [3, 50, 1 << 20])
def test_batch_file_envelope_is_skipped(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "batch.hl7"
    assert write_batch(path, [MESSAGES[:3], MESSAGES[3:]]) == 7
    text = path.read_bytes().decode()
    assert text.startswith("FHS|^~\\&|") and "\rBHS|" in text and "\rBTS|3\r" in text
    assert text.endswith("BTS|4\rFTS|2\r")
    assert control_ids(path, chunk_size=chunk_size) == [f"CTRL{i:06d}" for i in range(7)]


def test_batch_inside_one_mllp_frame(tmp_path: Path) -> None:
    batch = tmp_path / "batch.hl7"
    write_batch(batch, [MESSAGES[:2]])
    path = tmp_path / "framed.hl7"
    path.write_bytes(frame(batch.read_bytes()) + frame(MESSAGES[2].encode()))
    assert control_ids(path) == ["CTRL000000", "CTRL000001", "CTRL000002"]


def test_bom_blank_lines_trailing_spaces_and_bad_bytes(tmp_path: Path) -> None:
    body = "\r\n\r\n".join(
        "\r\n".join(line + "  " for line in m.split("\r")) for m in MESSAGES[:3]
    )
    path = tmp_path / "messy.hl7"
    path.write_bytes(b"\xef\xbb\xbf\r\n\r\n" + body.encode() + b"\xff\xfe\r\n   \r\n")
    got = list(iter_messages(path, chunk_size=5))
    assert [parse(m.text).control_id for m in got] == ["CTRL000000", "CTRL000001", "CTRL000002"]
    assert got[0].text.startswith("MSH|")
    assert all(not m.text.endswith((" ", "\n", "\r")) for m in got)
    assert got[2].text.endswith("PV1|1|O  \ufffd\ufffd")  # bad bytes replaced, not fatal


def test_bom_before_mllp_frames(tmp_path: Path) -> None:
    path = tmp_path / "framed.hl7"
    path.write_bytes(b"\xef\xbb\xbf\r\n" + b"".join(frame(m.encode()) for m in MESSAGES[:2]))
    got = list(iter_messages(path))
    assert [parse(m.text).control_id for m in got] == ["CTRL000000", "CTRL000001"]
    assert got[0].offset == 6  # just after the VT


def test_lines_before_the_first_message_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "junk.hl7"
    path.write_text("export of 2 messages\r" + "\r".join(MESSAGES[:2]))
    skipped: list[tuple[int, str]] = []
    got = list(iter_messages(path, on_skipped=lambda off, text: skipped.append((off, text))))
    assert len(got) == 2
    assert skipped == [(0, "export of 2 messages")]


def test_empty_and_garbage_files_yield_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"")
    assert list(iter_messages(empty)) == []
    garbage = tmp_path / "garbage.hl7"
    garbage.write_bytes(b"not hl7 at all\n" * 1000)
    skipped: list[str] = []
    assert list(iter_messages(garbage, chunk_size=100, on_skipped=lambda o, t: skipped.append(t)))\
        == []
    assert "".join(skipped).replace("\n", "").count("not hl7 at all") >= 999


def test_large_file_is_read_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader pulls chunks as messages are consumed, not the whole file up front."""
    path = tmp_path / "big.hl7"
    n = 20_000
    write_messages(path, (adt(i) for i in range(n)))
    size = path.stat().st_size
    reads: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f):  # type: ignore[no-untyped-def]
            self.f = f

        def read(self, k: int) -> bytes:
            data = self.f.read(k)
            reads.append(len(data))
            return data

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    import shcr_sim.hl7.files as files

    monkeypatch.setattr(files, "open", lambda p, mode: Spy(real_open(p, mode)), raising=False)
    it = iter_messages(path, chunk_size=4096)
    first = list(itertools.islice(it, 10))
    assert len(first) == 10
    assert sum(reads) <= 2 * 4096 < size  # only the first chunk(s) were read
    rest = sum(1 for _ in it)
    assert 10 + rest == n
    assert sum(reads) == size
    assert max(reads) <= 4096


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6),
    chunk=st.integers(min_value=1, max_value=300),
    shape=st.sampled_from(["plain", "mllp", "batch"]),
    sep=st.sampled_from(["\r", "\n", "\r\n"]),
    bom=st.booleans(),
)
def test_any_chunk_size_gives_the_same_messages(
    tmp_path: Path, sizes: list[int], chunk: int, shape: str, sep: str, bom: bool
) -> None:
    msgs = [adt(i) + "\r" + "\r".join(f"NTE|{k}|L|note {k}" for k in range(s)) for i, s in
            enumerate(sizes)]
    path = tmp_path / f"any-{shape}.hl7"
    if shape == "batch":
        write_batch(path, [msgs[:1], msgs[1:]], segment_sep=sep)
    else:
        write_messages(path, msgs, framing=shape, segment_sep=sep)  # type: ignore[arg-type]
    if bom:
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    got = list(iter_messages(path, chunk_size=chunk))
    assert [m.text.replace(sep, "\r") for m in got] == msgs
    assert [m.index for m in got] == list(range(len(msgs)))
    assert all(isinstance(m, RawMessage) for m in got)


def _line_starts_by_hand(buf: bytes, scan: int, first_is_line: bool) -> list[int]:
    """What ``_boundaries`` must find, the slow obvious way: every line start whose
    segment name (after spaces or BOM bytes) is MSH or an envelope's, not followed by
    a letter or digit, with that name at ``scan`` or later."""
    starts = ([0] if first_is_line else []) + [k + 1 for k, b in enumerate(buf) if b in b"\r\n"]
    found = []
    for j in sorted(set(starts)):
        i = j
        while i < len(buf) and buf[i] in b" \t\xef\xbb\xbf":
            i += 1
        name, after = buf[i : i + 3], buf[i + 3 : i + 4]
        if i >= scan and name in (b"MSH", b"FHS", b"BHS", b"BTS", b"FTS") and not (
                after.isalnum()):
            found.append(j)
    return found


_PIECES = [b"MSH", b"FHS", b"BTS", b"BHS", b"FTS", b"M", b"S", b"H", b"B", b"X", b"x", b"1",
           b"|", b"\r", b"\n", b"\r\n", b" ", b"  \t ", b"\t", b"\xef\xbb\xbf", b"\xbb"]


@st.composite
def _buffer_and_scan(draw: st.DrawFn) -> tuple[bytes, int]:
    buf = b"".join(draw(st.lists(st.sampled_from(_PIECES), max_size=40)))
    return buf, draw(st.integers(min_value=0, max_value=len(buf) + 2))


@settings(max_examples=600)
@given(case=_buffer_and_scan(), first_is_line=st.booleans())
@example(case=(b"\r  MSH|", 2), first_is_line=False)  # padding that starts before scan
@example(case=(b" \tMSH", 1), first_is_line=True)
@example(case=(b"\r\n\xef\xbb\xbfBTS", 3), first_is_line=False)
@example(case=(b"\rMSHx|\rMSH|", 0), first_is_line=False)  # MSHx names no segment
def test_message_boundaries_are_the_line_starts_an_obvious_scan_finds(
        case: tuple[bytes, int], first_is_line: bool) -> None:
    from shcr_sim.hl7.files import _boundaries

    buf, scan = case
    assert _boundaries(buf, scan, first_is_line) == _line_starts_by_hand(buf, scan,
                                                                         first_is_line)


def test_mllp_file_noise_is_reported_and_a_truncated_last_frame_raises(tmp_path: Path) -> None:
    from shcr_sim.hl7 import START, MLLPError

    path = tmp_path / "cut.hl7"
    path.write_bytes(frame(MESSAGES[0].encode()) + b"noise" + frame(MESSAGES[1].encode())
                     + START + MESSAGES[2].encode()[:40])
    skipped: list[tuple[int, str]] = []
    got: list[str] = []
    with pytest.raises(MLLPError, match="ended inside a frame"):
        for m in iter_messages(path, on_skipped=lambda o, t: skipped.append((o, t))):
            got.append(parse(m.text).control_id)
    assert got == ["CTRL000000", "CTRL000001"]  # everything complete was delivered first
    assert skipped == [(-1, "5 bytes outside MLLP frames")]


def test_a_runaway_plain_message_raises_instead_of_filling_memory(tmp_path: Path) -> None:
    from shcr_sim.hl7 import HL7Error

    path = tmp_path / "runaway.hl7"
    path.write_bytes((MESSAGES[0] + "\r").encode() + b"MSH|^~\\&|A|B\rOBX|1|TX|" + b"x" * 5000)
    got: list[str] = []
    with pytest.raises(HL7Error, match="exceeds max_size"):
        for m in iter_messages(path, chunk_size=512, max_size=2000):
            got.append(parse(m.text).control_id)
    assert got == ["CTRL000000"]

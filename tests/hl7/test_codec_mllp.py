"""MLLP framing and the incremental decoder: any split of the stream gives the same frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.hl7 import END, START, MLLPDecoder, MLLPError, frame

payloads = st.lists(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    min_size=1,
    max_size=8,
)


def feed_in_pieces(decoder: MLLPDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    points = sorted({min(c, len(data)) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        out += decoder.feed(data[start:point])
        start = point
    return out


def test_frame_bytes() -> None:
    assert START == b"\x0b" and END == b"\x1c\r"
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"


@given(payloads=payloads, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30))
def test_any_split_points_give_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = MLLPDecoder()
    assert feed_in_pieces(decoder, stream, cuts) == payloads
    assert decoder.pending == 0 and decoder.discarded == 0 and decoder.broken == 0
    decoder.close()  # nothing open: no error


@given(payloads=payloads)
def test_one_byte_at_a_time(payloads: list[bytes]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = MLLPDecoder()
    out = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    assert out == payloads


def test_several_frames_in_one_read_and_offsets() -> None:
    stream = frame(b"A") + b"\r\n" + frame(b"BB") + frame(b"")
    decoder = MLLPDecoder()
    assert decoder.feed_with_offsets(stream) == [(0, b"A"), (6, b"BB"), (11, b"")]


def test_whitespace_between_frames_is_ignored_other_bytes_are_counted() -> None:
    decoder = MLLPDecoder()
    assert decoder.feed(b"\r\n \t" + frame(b"A") + b"noise" + frame(b"B")) == [b"A", b"B"]
    assert decoder.discarded == 5


def test_strict_decoder_raises_on_bytes_outside_a_frame_and_keeps_earlier_frames() -> None:
    decoder = MLLPDecoder(strict=True)
    with pytest.raises(MLLPError) as err:
        decoder.feed(frame(b"A") + b"noise" + frame(b"B"))
    assert err.value.frames == [b"A"]
    assert "outside an MLLP frame" in str(err.value)
    assert decoder.feed(b"") == [b"B"]  # the stream carries on after the fault


def test_oversize_frame_raises_and_decoder_recovers_at_next_frame() -> None:
    decoder = MLLPDecoder(max_size=10)
    with pytest.raises(MLLPError) as err:
        decoder.feed(frame(b"ok") + START + b"x" * 11)
    assert err.value.frames == [b"ok"]
    assert "max_size" in str(err.value)
    assert decoder.pending == 0
    # the rest of the runaway frame is dropped, the next frame is read
    assert decoder.feed(b"yyy" + END + frame(b"next")) == [b"next"]
    assert decoder.broken == 1


def test_oversize_frame_seen_whole_in_one_read() -> None:
    decoder = MLLPDecoder(max_size=4)
    with pytest.raises(MLLPError):
        decoder.feed(frame(b"12345") + frame(b"1234"))
    assert decoder.feed(b"") == [b"1234"]


def test_frame_cut_short_by_a_new_start_is_dropped() -> None:
    decoder = MLLPDecoder()
    assert decoder.feed(START + b"half" + frame(b"whole")) == [b"whole"]
    assert decoder.broken == 1


def test_fs_split_from_its_cr_and_fs_without_cr() -> None:
    decoder = MLLPDecoder()
    assert decoder.feed(START + b"A\x1c") == []
    assert decoder.feed(b"\r") == [b"A"]
    assert decoder.feed(START + b"B\x1c" + START + b"C\x1c\r") == [b"B", b"C"]


def test_close_inside_a_frame_raises() -> None:
    decoder = MLLPDecoder()
    decoder.feed(START + b"unfinished")
    assert decoder.pending == len(b"unfinished")
    with pytest.raises(MLLPError, match="ended inside a frame"):
        decoder.close()

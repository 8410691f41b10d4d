"""MLLP framing: ``VT payload FS CR``, and an incremental decoder for sockets and files.

TCP delivers bytes, not messages: a read may hold half a frame, or three frames
and the start of a fourth. ``MLLPDecoder.feed`` keeps the partial frame between
calls and returns every complete payload, so the caller never sees a boundary.

Bytes outside a frame: CR/LF/space/tab between frames are ignored silently (many
senders add them); anything else is discarded and counted in ``discarded`` —
or raises ``MLLPError`` when the decoder is ``strict``. A frame longer than
``max_size`` always raises: the partial frame is dropped and the decoder skips to
the next VT, so one runaway sender cannot exhaust memory. A VT inside an open
frame means the previous frame was cut short; it is dropped (counted in
``broken``) and the new frame starts. ``FS`` followed by anything other than CR
still ends the frame (lenient, like most engines).
"""

from __future__ import annotations

START = b"\x0b"
END = b"\x1c\r"
_CR = 0x0D
_BLANK = b" \t\r\n"

DEFAULT_MAX_SIZE = 64 * 1024 * 1024


class MLLPError(ValueError):
    """Bad MLLP stream. ``frames`` holds the payloads completed before the fault."""

    def __init__(self, reason: str, frames: list[bytes] | None = None) -> None:
        super().__init__(reason)
        self.frames: list[bytes] = frames or []


def frame(payload: bytes) -> bytes:
    """Wrap one message in an MLLP frame."""
    return START + payload + END


class MLLPDecoder:
    """Incremental MLLP decoder: ``feed(bytes) -> [payload, ...]``."""

    __slots__ = (
        "max_size",
        "strict",
        "discarded",
        "broken",
        "_buf",
        "_in_frame",
        "_scan",
        "_base",
        "_start",
        "_skipping",
    )

    def __init__(
        self, max_size: int = DEFAULT_MAX_SIZE, strict: bool = False, offset: int = 0
    ) -> None:
        self.max_size = max_size
        self.strict = strict
        self.discarded = 0  # bytes thrown away outside frames (whitespace not counted)
        self.broken = 0  # frames dropped: cut short by a new VT, or oversize
        self._buf = bytearray()
        self._in_frame = False
        self._scan = 0  # where to resume looking for FS in _buf
        self._base = offset  # stream offset of _buf[0]
        self._start = 0  # stream offset of the open frame's VT
        self._skipping = False  # after an oversize frame: drop bytes up to the next VT

    @property
    def pending(self) -> int:
        """Bytes held in an unfinished frame."""
        return len(self._buf) if self._in_frame else 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the payloads of all frames now complete."""
        return [payload for _, payload in self.feed_with_offsets(data)]

    def feed_with_offsets(self, data: bytes) -> list[tuple[int, bytes]]:
        """Like ``feed``, with the stream offset of each frame's VT byte."""
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        n = len(buf)
        try:
            while pos < n:
                if not self._in_frame:
                    vt = buf.find(START, pos)
                    if self._skipping:
                        self._skipping = vt == -1
                    else:
                        stray = buf[pos : n if vt == -1 else vt].strip(_BLANK)
                        if stray:
                            pos = n if vt == -1 else vt
                            self._stray(len(stray))
                    if vt == -1:
                        pos = n
                        break
                    self._in_frame = True
                    self._start = self._base + vt
                    pos = vt + 1
                    self._scan = pos
                # inside a frame that starts at pos
                fs = buf.find(b"\x1c", self._scan)
                vt = buf.find(START, self._scan, n if fs == -1 else fs)
                if vt != -1:  # a new frame began before this one ended
                    self.broken += 1
                    cut = self._start
                    self._start = self._base + vt
                    pos = vt + 1
                    self._scan = pos
                    if self.strict:
                        raise MLLPError(f"frame at byte {cut} cut short by a new VT")
                    continue
                if fs == -1:
                    self._scan = n
                    if n - pos > self.max_size:
                        size, pos = n - pos, n
                        self._oversize(size, skip=True)
                    break
                if fs - pos > self.max_size:
                    size = fs - pos
                    pos = fs + 1
                    self._oversize(size, skip=False)
                if fs + 1 >= n:  # FS is the last byte: wait for the CR
                    self._scan = fs
                    break
                out.append((self._start, bytes(buf[pos:fs])))
                self._in_frame = False
                pos = fs + 2 if buf[fs + 1] == _CR else fs + 1
        except MLLPError as exc:
            exc.frames = [p for _, p in out]
            self._compact(pos)
            raise
        self._compact(pos)
        return out

    def _compact(self, pos: int) -> None:
        if pos:
            del self._buf[:pos]
            self._base += pos
            self._scan = max(0, self._scan - pos)

    def _stray(self, count: int) -> None:
        self.discarded += count
        if self.strict:
            raise MLLPError(f"{count} bytes outside an MLLP frame before byte {self._base}")

    def _oversize(self, size: int, skip: bool) -> None:
        self.broken += 1
        self._in_frame = False
        self._skipping = skip
        raise MLLPError(
            f"frame at byte {self._start} exceeds max_size {self.max_size} ({size} bytes so far)"
        )

    def close(self) -> None:
        """End of stream: raise if a frame is still open (its bytes are lost)."""
        if self._in_frame and self._buf:
            size = len(self._buf)
            self._buf.clear()
            self._in_frame = False
            self.broken += 1
            raise MLLPError(f"stream ended inside a frame at byte {self._start} ({size} bytes)")

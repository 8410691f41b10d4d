"""A simulated trust's MLLP sender: its live stream, at a rate, with heartbeats.

Behaves like a trust's outbound interface engine: one message in flight, wait for
its ACK with a timeout, and on a timeout or a dropped connection reconnect with
back-off and resend the message that was not acknowledged (the engine's
de-duplication absorbs the resend). AR/CR ("rejected, try later") is retried with
back-off; AE/CE (content error) is not -- resending the same bytes cannot help.

Heartbeats are ``NMD^N02`` application-management messages (see README
"Heartbeats") sent on the same connection every ``heartbeat_interval`` seconds,
so a heartbeat proves the very link the feed uses is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..hl7.message import HL7Error, parse
from ..hl7.mllp import frame

END = b"\x1c\x0d"
START = b"\x0b"
ACCEPTED = frozenset({"AA", "CA"})
CONTENT_ERROR = frozenset({"AE", "CE"})


@dataclass(slots=True)
class SenderConfig:
    host: str = "127.0.0.1"
    port: int = 2575
    rate: float = 20.0  # messages per second; 0 = as fast as the ACKs come back
    pattern: Literal["steady", "bursty"] = "steady"
    burst: int = 20  # messages sent back to back per burst when bursty
    ack_timeout: float = 5.0
    connect_timeout: float = 5.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    max_attempts: int = 0  # per message; 0 = keep trying until stopped
    heartbeat_interval: float = 0.0  # seconds; 0 = no heartbeats
    application: str = "PAS"  # MSH-3 of heartbeats
    facility: str = "RXX"  # MSH-4 of heartbeats (the trust's ODS code)


@dataclass(slots=True)
class FeedControl:
    """Switches a running feed from outside (fault scenarios, the dashboard demo)."""

    silent: bool = False  # no messages and no heartbeats while set
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class SendReport:
    feed: str = ""
    delivered: int = 0  # messages answered AA/CA
    errors: int = 0  # AE/CE: the engine dead-lettered them
    rejected: int = 0  # AR/CR until max_attempts ran out
    attempts: int = 0
    resends: int = 0
    reconnects: int = 0
    timeouts: int = 0
    heartbeats: int = 0
    heartbeat_acks: int = 0
    codes: dict[str, str] = field(default_factory=dict)  # control id -> final ACK code
    rtt: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    @property
    def finished(self) -> int:
        return self.delivered + self.errors + self.rejected


class _Gone(Exception):
    """The connection dropped or the ACK did not come in time."""


def _strip(chunk: bytes) -> bytes:
    start = chunk.rfind(START)
    return (chunk[start + 1 :] if start != -1 else chunk)[: -len(END)]


def heartbeat_message(
    application: str, facility: str, seq: int, report: SendReport | None = None,
    receiving: tuple[str, str] = ("SHCR-CIE", "SHCR"),
) -> str:
    """An ``NMD^N02`` with an NST segment carrying this link's statistics.

    NST-8/-9 messages received/sent, NST-13 connect timeouts, NST-14 receive (ACK)
    timeouts, so the engine sees the sender's own view of the link.
    """
    now = datetime.now(UTC)
    ts = now.strftime("%Y%m%d%H%M%S.") + f"{now.microsecond // 1000:03d}+0000"
    r = report or SendReport()
    control = f"HB{facility}{seq:08d}"
    return (
        f"MSH|^~\\&|{application}|{facility}|{receiving[0]}|{receiving[1]}|{ts}||"
        f"NMD^N02^NMD_N02|{control}|P|2.4\r"
        f"NST|Y|{application}|I|||||{r.heartbeat_acks + r.delivered + r.errors}|"
        f"{r.attempts + r.heartbeats}||||{r.reconnects}|{r.timeouts}|{r.errors}\r"
    )


class MLLPSender:
    """One trust's connection to the engine, with resend-until-acknowledged."""

    def __init__(self, config: SenderConfig, report: SendReport | None = None) -> None:
        self.config = config
        self.report = report or SendReport(feed=config.facility)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._hb_seq = itertools.count(1)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _connect(self) -> None:
        cfg = self.config
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port), cfg.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise _Gone(f"connect failed: {exc}") from exc

    async def _exchange(self, payload: bytes, control_id: str) -> tuple[str, str]:
        """Send one frame, return (MSA-1, MSA-3) of the ACK whose MSA-2 matches."""
        if self._reader is not None and self._reader.at_eof():
            await self.close()  # the engine closed the link after its last ACK: reopen
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        deadline = time.monotonic() + self.config.ack_timeout
        try:
            self._writer.write(payload)
            await self._writer.drain()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(self._reader.readuntil(END), left)
                try:
                    ack = parse(_strip(chunk))
                except HL7Error:
                    continue
                if ack.get("MSA-2") == control_id:  # skip a late ACK of an earlier attempt
                    return ack.get("MSA-1"), ack.get_text("MSA-3")
        except TimeoutError as exc:
            self.report.timeouts += 1
            raise _Gone("no ACK in time") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise _Gone(f"connection lost: {exc}") from exc

    async def deliver(self, text: str, control_id: str | None = None) -> str:
        """Send until the engine answers for good; return the final ACK code.

        Returns "" if ``max_attempts`` ran out without any answer.
        """
        cfg = self.config
        if control_id is None:
            try:
                control_id = parse(text).control_id
            except HL7Error:
                control_id = ""
        payload = frame(text.encode("utf-8"))
        backoff = cfg.backoff_initial
        code = ""
        for attempt in itertools.count(1):
            self.report.attempts += 1
            if attempt > 1:
                self.report.resends += 1
            started = time.monotonic()
            try:
                code, _ = await self._exchange(payload, control_id)
            except _Gone:
                await self.close()
                self.report.reconnects += 1
                code = ""
            else:
                self.report.rtt.append(time.monotonic() - started)
                if code in ACCEPTED or code in CONTENT_ERROR:
                    return code
            if cfg.max_attempts and attempt >= cfg.max_attempts:
                return code
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, cfg.backoff_max)
        return code  # pragma: no cover - the loop only ends by returning

    async def heartbeat(self) -> bool:
        """One heartbeat; True when the engine acknowledged it. Never retried."""
        cfg = self.config
        seq = next(self._hb_seq)
        text = heartbeat_message(cfg.application, cfg.facility, seq, self.report)
        self.report.heartbeats += 1
        try:
            code, _ = await self._exchange(frame(text.encode()), f"HB{cfg.facility}{seq:08d}")
        except _Gone:
            await self.close()
            return False
        ok = code in ACCEPTED
        self.report.heartbeat_acks += ok
        return ok


async def _paced(
    messages: Iterable[str], cfg: SenderConfig
) -> AsyncIterator[tuple[float, str]]:
    """Yield (due time, message) at the configured rate, steady or in bursts."""
    if cfg.rate <= 0:
        for text in messages:
            yield 0.0, text
        return
    start = time.monotonic()
    for i, text in enumerate(messages):
        if cfg.pattern == "bursty":
            due = start + (i // cfg.burst) * cfg.burst / cfg.rate
        else:
            due = start + i / cfg.rate
        yield due, text


async def run_feed(
    messages: Iterable[str],
    config: SenderConfig,
    control: FeedControl | None = None,
    *,
    linger: bool = False,
    on_result: Callable[[str, str, float], None] | None = None,
) -> SendReport:
    """Send a trust's live stream; heartbeat while waiting; return what happened.

    With ``linger`` the feed keeps heart-beating after its stream ends, until
    ``control.stopped`` is set (``shcr-sim run``/``serve`` demos).
    ``on_result(control_id, code, seconds)`` is called once per message.
    """
    control = control or FeedControl()
    sender = MLLPSender(config)
    report = sender.report
    interval = config.heartbeat_interval
    next_hb = time.monotonic() if interval > 0 else float("inf")

    async def wait_until(due: float) -> None:
        nonlocal next_hb
        while not control.stopped.is_set():
            now = time.monotonic()
            if control.silent:  # a heartbeat goes out as soon as the feed returns
                await _sleep_or_stop(control, 0.05)
                continue
            if now >= next_hb:
                await sender.heartbeat()
                next_hb = time.monotonic() + interval
                continue
            if now >= due:
                return
            await _sleep_or_stop(control, min(due, next_hb) - now)

    try:
        async for due, text in _paced(messages, config):
            await wait_until(due)
            if control.stopped.is_set():
                break
            started = time.monotonic()
            try:
                control_id = parse(text).control_id
            except HL7Error:
                control_id = ""
            code = await sender.deliver(text, control_id)
            report.codes[control_id] = code
            if code in ACCEPTED:
                report.delivered += 1
            elif code in CONTENT_ERROR:
                report.errors += 1
            else:
                report.rejected += 1
            if on_result is not None:
                on_result(control_id, code, time.monotonic() - started)
        if linger:
            await wait_until(float("inf"))
    finally:
        await sender.close()
    return report


async def _sleep_or_stop(control: FeedControl, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(control.stopped.wait(), max(seconds, 0.0))


def read_stream(path: str | Path) -> Iterator[str]:
    """A live stream file (``DIR/live/<ods>.hl7``), one message at a time."""
    from ..hl7.files import iter_messages

    for raw in iter_messages(path):
        yield raw.text

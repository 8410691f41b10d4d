"""The engine's MLLP listener: asyncio TCP, group commit, ACK only once durable.

Each connection reads frames as they arrive (split across reads or several per
read), checks the sender against the configured trusts, and hands the frame to a
shared group committer. The committer gives everything pending -- from every
connection -- to the sink in one call (``DurableQueue.accept``), so a burst costs
one disk commit, not one per message. ACKs go back on each connection in the
order its frames arrived, and AA (or CA) only after the sink has returned.

Heartbeats (``NMD^N02``, see README "Heartbeats") are answered at once and
reported to the monitor; they never enter the record's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..hl7.ack import ack_mode, build_ack, wants_ack
from ..hl7.message import HL7Error, Message, parse
from ..hl7.mllp import START, MLLPDecoder, MLLPError, frame
from .queue import Accepted, Inbound

Sink = Callable[[list[Inbound]], Awaitable[list[Accepted]]]
AckMode = Literal["auto", "original", "enhanced"]

HEARTBEAT_TYPE = "NMD^N02"


class TrustLike(Protocol):
    ods: str
    sending_application: str


@dataclass(frozen=True, slots=True)
class SenderPolicy:
    """Who may send: (MSH-3.1 sending application, MSH-4.1 sending facility) pairs.

    ``allowed=None`` accepts anyone (a listener for a user's own feeds).
    """

    allowed: frozenset[tuple[str, str]] | None = None

    def permits(self, application: str, facility: str) -> bool:
        return self.allowed is None or (application, facility) in self.allowed

    @classmethod
    def from_trusts(cls, trusts: Iterable[TrustLike]) -> SenderPolicy:
        """Every sending application of each trust: its PAS and, when the trust names
        them (``sending_applications``: data type → MSH-3), its LIMS, RIS …"""
        pairs = set()
        for t in trusts:
            pairs.add((t.sending_application, t.ods))
            for app in (getattr(t, "sending_applications", None) or {}).values():
                pairs.add((app, t.ods))
        return cls(frozenset(pairs))


@dataclass(slots=True)
class FeedCounters:
    """Per-feed counters the monitor samples (plain ints: no cost on the hot path)."""

    received: int = 0
    queued: int = 0
    duplicate: int = 0
    dead_lettered: int = 0
    refused: int = 0
    unavailable: int = 0
    oversize: int = 0
    heartbeats: int = 0
    bytes: int = 0
    last_message_at: float = 0.0


@dataclass(slots=True)
class ListenerStats:
    feeds: dict[str, FeedCounters] = field(default_factory=dict)
    connections_open: int = 0
    connections_total: int = 0
    idle_closed: int = 0
    reset_mid_frame: int = 0
    faults_injected: int = 0
    batches: int = 0
    batched_messages: int = 0
    # seconds from a frame's arrival to its ACK being written (recent window)
    ack_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=4096))

    def feed(self, name: str) -> FeedCounters:
        counters = self.feeds.get(name)
        if counters is None:
            counters = self.feeds[name] = FeedCounters()
        return counters


HeartbeatHook = Callable[[str, Message, float], None]
# (queue seq, feed, status, wall-clock arrival) once the queue has answered
AcceptedHook = Callable[[int, str, str, float], None]


@dataclass(slots=True)
class ListenerFaults:
    """Injected faults on the engine side of the link (``shcr-sim run`` fault options, tests).

    Applied to messages (never heartbeats) *after* the queue has answered, so each
    one forces the sender to resend something the engine already holds:
    ``ack_delay`` holds ACKs back (a ``slow_ack_rate`` share of them);
    ``drop_ack_rate`` never sends some ACKs; ``reset_rate`` resets the connection
    instead of acknowledging. ``mid_frame_reset_rate`` resets the connection while a
    frame is half read (rolled per read that ends inside a frame; the listener then
    reads in 64-byte chunks so frames do span reads).
    """

    ack_delay: float = 0.0
    slow_ack_rate: float = 1.0  # share of ACKs held back by ack_delay
    drop_ack_rate: float = 0.0
    reset_rate: float = 0.0
    mid_frame_reset_rate: float = 0.0
    seed: int = 1
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.ack_delay or self.drop_ack_rate or self.reset_rate
                    or self.mid_frame_reset_rate)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


@dataclass(slots=True)
class ListenerConfig:
    host: str = "127.0.0.1"
    port: int = 2575
    lane: Literal["backload", "live"] = "live"
    policy: SenderPolicy = field(default_factory=SenderPolicy)
    ack_mode: AckMode = "auto"
    max_message_bytes: int = 1 << 20
    idle_timeout: float = 600.0
    batch_max: int = 1000
    # frames read ahead of their ACK on one connection (back-pressure)
    max_in_flight: int = 1000
    faults: ListenerFaults = field(default_factory=ListenerFaults)


class _Committer:
    """Group commit: everything submitted since the last sink call goes in the next one."""

    def __init__(self, sink: Sink, batch_max: int, stats: ListenerStats) -> None:
        self._sink = sink
        self._batch_max = batch_max
        self._stats = stats
        self._pending: list[tuple[Inbound, asyncio.Future[Accepted]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mllp-group-commit")

    def submit(self, item: Inbound) -> asyncio.Future[Accepted]:
        fut: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        self._wake.set()
        return fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                try:
                    results = await self._sink([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError("sink returned a different number of results")
                except asyncio.CancelledError:
                    for _, fut in batch:
                        fut.cancel()
                    raise
                except Exception as exc:  # the queue is down: every sender gets AR/CR
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self._stats.batches += 1
                self._stats.batched_messages += len(batch)
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._pending:
            fut.cancel()
        self._pending.clear()


def _decode(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")


_WHERE = re.compile(r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:-(?P<field>\d+))?(?:/MSH-\d+)?: (?P<why>.*)$",
                    re.S)


def reason_error(reason: str) -> HL7Error:
    """An HL7Error for an ERR segment from a queue reason such as ``PID-3: no ...``."""
    m = _WHERE.match(reason)
    seg, fld, why = (m["seg"], int(m["field"] or 0), m["why"]) if m else ("", 0, reason)
    lowered = why.lower()
    if "unknown sender" in lowered:
        code = "204"
    elif "empty" in lowered or "missing" in lowered or lowered.startswith("no "):
        code = "101"
    elif "time" in lowered or "date" in lowered:
        code = "102"
    else:
        code = "207"
    return HL7Error(why, seg, fld, code=code)


def _ack(
    msg: Message | str,
    code: str,
    text: str,
    cfg: ListenerConfig,
    error: HL7Error | None = None,
) -> str | None:
    """The ACK text to send, or None when the sender asked for none (MSH-15 NE/ER/SU)."""
    mode = ack_mode(msg) if cfg.ack_mode == "auto" else cfg.ack_mode
    if mode == "enhanced" and not wants_ack(msg, code == "AA"):
        return None
    return build_ack(msg, code=code, text=text, error=error, mode=mode)


@dataclass(slots=True)
class _Pending:
    """One frame waiting for its ACK on a connection."""

    arrived: float
    msg: Message | str  # the raw text when it could not be parsed
    feed: str
    ack: str | None = None  # already decided (refused, oversize, heartbeat, unparsable)
    fut: asyncio.Future[Accepted] | None = None
    error: HL7Error | None = None


class MLLPListener:
    """Listen for MLLP connections; hand frames to ``sink``; ACK once durable."""

    def __init__(
        self,
        sink: Sink,
        config: ListenerConfig | None = None,
        *,
        on_heartbeat: HeartbeatHook | None = None,
        on_accepted: AcceptedHook | None = None,
        stats: ListenerStats | None = None,
    ) -> None:
        self.config = config or ListenerConfig()
        self.stats = stats or ListenerStats()
        self.on_heartbeat = on_heartbeat
        self.on_accepted = on_accepted
        self._committer = _Committer(sink, self.config.batch_max, self.stats)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "listener not started"
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> MLLPListener:
        self._committer.start()
        self._server = await asyncio.start_server(
            self._handle,
            self.config.host,
            self.config.port,
            limit=self.config.max_message_bytes + 64,
        )
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        await self._committer.close()

    async def __aenter__(self) -> MLLPListener:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection ---------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        acks: asyncio.Queue[_Pending | None] = asyncio.Queue(self.config.max_in_flight)
        ack_task = asyncio.create_task(self._write_acks(acks, writer))
        try:
            await self._read_frames(reader, writer, acks)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.stats.connections_open -= 1
            self._connections.discard(task)
            with contextlib.suppress(asyncio.QueueFull):
                acks.put_nowait(None)
            if ack_task.done() or acks.full():
                ack_task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(ack_task, timeout=5.0)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read_frames(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        acks: asyncio.Queue[_Pending | None],
    ) -> None:
        cfg = self.config
        faults = cfg.faults
        read_size = 64 if faults.mid_frame_reset_rate else 1 << 16
        decoder = MLLPDecoder(max_size=cfg.max_message_bytes)
        head = b""  # the start of the newest frame, to answer an oversize one by MSH-10
        while True:
            try:
                data = await asyncio.wait_for(reader.read(read_size), cfg.idle_timeout)
            except TimeoutError:
                self.stats.idle_closed += 1
                return
            except ConnectionError:
                data = b""
            if not data:
                if decoder.pending:
                    self.stats.reset_mid_frame += 1  # nothing ACKed: the sender resends
                return
            vt = data.rfind(START)
            if vt != -1:
                head = data[vt + 1 : vt + 4097]
            now = time.monotonic()
            while True:
                try:
                    payloads = decoder.feed(data)
                except MLLPError as exc:
                    payloads = exc.frames
                    oversize = "max_size" in str(exc)
                else:
                    oversize = False
                for payload in payloads:
                    await acks.put(self._admit(payload, now))
                if not oversize:
                    break
                await acks.put(self._oversize(head, now))
                data = b""  # go on with whatever followed the oversize frame
            if decoder.pending and faults.roll(faults.mid_frame_reset_rate):
                self.stats.faults_injected += 1
                self.stats.reset_mid_frame += 1
                writer.transport.abort()
                return

    def _oversize(self, head: bytes, now: float) -> _Pending:
        text = _decode(head).split("\r", 1)[0]
        msg: Message | str
        try:
            msg = parse(text)
            feed = msg.sender[1] or "unknown"
        except HL7Error:
            msg, feed = text, "unknown"
        self.stats.feed(feed).oversize += 1
        reason = f"message exceeds the maximum size of {self.config.max_message_bytes} bytes"
        return _Pending(now, msg, feed, ack=_ack(msg, "AR", reason, self.config))

    def _admit(self, payload: bytes, now: float) -> _Pending:
        cfg = self.config
        text = _decode(payload)
        try:
            msg = parse(text)
            application, facility = msg.sender
            msg_type = msg.message_type
        except HL7Error as exc:
            # still queued, so the dead letter names what was wrong; the ACK is AE
            counters = self.stats.feed("unknown")
            counters.received += 1
            item = Inbound(raw=text, lane=cfg.lane, source="mllp:unknown")
            return _Pending(now, text, "unknown", fut=self._committer.submit(item), error=exc)
        feed = facility or "unknown"
        counters = self.stats.feed(feed)
        counters.bytes += len(payload)
        counters.last_message_at = time.time()
        if not cfg.policy.permits(application, facility):
            counters.refused += 1
            reason = f"sender {application}/{facility} is not a configured trust"
            return _Pending(now, msg, feed, ack=_ack(msg, "AR", reason, cfg))
        if msg_type == HEARTBEAT_TYPE:
            counters.heartbeats += 1
            if self.on_heartbeat is not None:
                self.on_heartbeat(feed, msg, time.time())
            return _Pending(now, msg, feed, ack=_ack(msg, "AA", "", cfg))
        counters.received += 1
        item = Inbound(raw=text, lane=cfg.lane, source=f"mllp:{feed}")
        return _Pending(now, msg, feed, fut=self._committer.submit(item))

    async def _write_acks(
        self, acks: asyncio.Queue[_Pending | None], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            pending = await acks.get()
            if pending is None:
                return
            text = pending.ack if pending.fut is None else await self._settle(pending)
            faults = self.config.faults
            if pending.fut is not None and faults.active and text is not None:
                if faults.ack_delay and faults.roll(faults.slow_ack_rate):
                    await asyncio.sleep(faults.ack_delay)
                if faults.roll(faults.reset_rate):
                    self.stats.faults_injected += 1
                    writer.transport.abort()
                    return
                if faults.roll(faults.drop_ack_rate):
                    self.stats.faults_injected += 1
                    text = None
            if text is not None:
                writer.write(frame(text.encode("utf-8")))
                await writer.drain()
            self.stats.ack_seconds.append(time.monotonic() - pending.arrived)

    async def _settle(self, pending: _Pending) -> str | None:
        """Wait for the durable queue's answer for one frame and turn it into an ACK."""
        assert pending.fut is not None
        counters = self.stats.feed(pending.feed)
        try:
            result = await pending.fut
        except Exception as exc:
            counters.unavailable += 1
            return _ack(pending.msg, "AR", f"engine queue unavailable, resend later: {exc}",
                        self.config)
        if result.status == "dead-lettered" or pending.error is not None:
            counters.dead_lettered += result.status == "dead-lettered"
            reason = result.reason or (str(pending.error) if pending.error else "dead-lettered")
            error = pending.error or reason_error(reason)
            return _ack(pending.msg, "AE", reason, self.config, error=error)
        if result.status == "duplicate":
            counters.duplicate += 1
        else:
            counters.queued += 1
        if self.on_accepted is not None:
            wall = time.time() - (time.monotonic() - pending.arrived)
            self.on_accepted(result.seq, pending.feed, result.status, wall)
        return _ack(pending.msg, "AA", "", self.config)

"""A tiny asyncio HTTP/1.1 server for ``/``, ``/status``, ``/metrics`` and actions.

A few routes do not justify a web framework: this keeps the engine's
dependencies to prometheus-client. One request per connection.

``POST /action/<name>?key=value`` runs one of the actions the process registered
(``shcr-sim run``: silence or resume a feed, take the store down for N seconds),
so the dashboard can demonstrate the alerts. Nothing else changes state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

import orjson

from .metrics import Monitor
from .prom import CONTENT_TYPE, exposition, registry_for


def dashboard_html() -> bytes:
    return resources.files(__package__).joinpath("dashboard.html").read_bytes()


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


Action = Callable[[dict[str, str]], str | Awaitable[str]]  # may be a coroutine


class MonitorHTTP:
    """Serves the monitor; start with ``await MonitorHTTP(monitor).start(host, port)``."""

    def __init__(self, monitor: Monitor, actions: dict[str, Action] | None = None) -> None:
        self.monitor = monitor
        self.actions = dict(actions or {})
        monitor.actions = sorted(self.actions)
        self.registry = registry_for(monitor)
        self._server: asyncio.Server | None = None
        self._page = dashboard_html()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> MonitorHTTP:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def route(self, method: str, target: str) -> bytes:
        url = urlsplit(target)
        path = url.path
        if method == "POST" and path.startswith("/action/"):
            action = self.actions.get(path[len("/action/"):])
            if action is None:
                return _response("404 Not Found", b"no such action\n", "text/plain")
            try:
                result = action(dict(parse_qsl(url.query)))
                if inspect.isawaitable(result):
                    result = await result
            except (KeyError, ValueError) as exc:
                return _response("400 Bad Request", f"{exc}\n".encode(), "text/plain")
            return _response("200 OK", f"{result}\n".encode(), "text/plain")
        if method not in ("GET", "HEAD"):
            return _response("405 Method Not Allowed", b"GET only\n", "text/plain")
        if path in ("/", "/dashboard"):
            return _response("200 OK", self._page, "text/html; charset=utf-8")
        if path == "/status":
            body = orjson.dumps(self.monitor.status(), option=orjson.OPT_NON_STR_KEYS)
            return _response("200 OK", body, "application/json")
        if path == "/metrics":
            return _response("200 OK", exposition(self.registry), CONTENT_TYPE)
        if path == "/healthz":
            return _response("200 OK", b"ok\n", "text/plain")
        return _response("404 Not Found", b"not found\n", "text/plain")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) < 2:
                writer.write(_response("400 Bad Request", b"bad request\n", "text/plain"))
            else:
                response = await self.route(parts[0], parts[1])
                if parts[0] == "HEAD":
                    response = response.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
                writer.write(response)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

"""A tap between any Socket.IO client and server that records the wire.

:class:`WireTap` is a small reverse proxy (an aiohttp app on the running
loop, on its own port). A client is pointed at ``tap.url`` instead of the
server's; every HTTP request and response, and every websocket frame, is
forwarded unchanged and, for Engine.IO traffic (a request with ``EIO`` in
its query), recorded with its time, direction, transport and Engine.IO
connection id. Other requests (the chat page, its scripts) pass through
without being recorded.

Headers pass as they came, ``Host`` and ``Origin`` included: a page loaded
from the tap connects to the tap, so its origin is the tap's and the server
sees the host the page asked for, just as it would without the tap.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from ..waiting import Changes
from .decode import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Decoded, decode_packet, decode_payload

__all__ = ["CLIENT_TO_SERVER", "SERVER_TO_CLIENT", "Record", "WireTap", "running_taps",
           "stop_all_taps", "tap"]

logger = logging.getLogger("chatlab")

# Headers about one hop of HTTP, not about the request (RFC 9110, 7.6.1):
# each side of the tap has its own.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length",
})
# The websocket handshake's own headers: aiohttp makes them for its side.
WEBSOCKET_HANDSHAKE = frozenset({
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-accept", "sec-websocket-protocol",
})

_taps: dict[str, "WireTap"] = {}
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Record:
    """One thing the tap saw.

    :param number: counts every record of the process, from 1.
    :param time: when it passed (``time.time()``).
    :param direction: ``"client→server"`` or ``"server→client"``.
    :param transport: ``"polling"`` or ``"websocket"``.
    :param kind: ``"request"`` or ``"response"`` (long polling);
        ``"open"``, ``"frame"`` or ``"close"`` (websocket).
    :param connection: the Engine.IO connection id (``sid``), once known.
    :param data: the body or frame: text, or bytes for a binary frame.
    :param http: ``"GET /socket.io/?…"`` for a request, ``"200 OK"`` for a
        response, the close code for a websocket close.
    :param method: the HTTP method of the request (of a response: of the
        request it answers).
    """

    number: int
    time: float
    direction: str
    transport: str
    kind: str
    connection: str | None
    data: str | bytes
    http: str = ""
    method: str = ""

    def packets(self) -> list[Decoded]:
        """The Engine.IO packets this record carries (none for a long-poll
        GET request, a POST's ``ok`` or an error response)."""
        if self.kind == "frame":
            return [decode_packet(self.data, self.direction)]
        if self.transport == "polling" and self.data and (
                (self.kind == "request" and self.method == "POST")
                or (self.kind == "response" and self.method == "GET"
                    and self.http.startswith("200"))):
            return decode_payload(self.data, self.direction)
        return []


class WireTap:
    """A recording reverse proxy in front of a Socket.IO server.

    :param target: the server's URL, e.g. ``server.url``.
    :param name: a tap started again under the same name replaces the old one.
    :param host: the address the tap listens on.
    :param port: 0 (the default) picks a free port.
    :param limit: how many records to keep (the oldest go first).

    Start it with ``await tap.start()`` (or ``await chatlab.wire.tap(url)``)
    and stop it with ``await tap.stop()``; ``chatlab.shutdown()`` stops
    every tap.
    """

    def __init__(self, target: str, *, name: str = "default", host: str = "127.0.0.1",
                 port: int = 0, limit: int = 10_000) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the tap needs the server's http:// URL, not {target!r}")
        self.target = target.rstrip("/")
        self.name = name
        self.host = host
        self.port = port
        self.url = ""
        self._records: collections.deque[Record] = collections.deque(maxlen=limit)
        self._subscribers: list[Callable[[Record], Any]] = []
        self._changes = Changes()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sockets: set[Any] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._stop_lock = asyncio.Lock()

    # -- records ----------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """Every record kept, oldest first."""
        return list(self._records)

    def packets(self) -> list[tuple[Record, Decoded]]:
        """Every Engine.IO packet recorded, with the record it came in."""
        return [(record, packet) for record in self._records for packet in record.packets()]

    def clear(self) -> None:
        """Forget the records kept so far."""
        self._records.clear()

    def subscribe(self, callback: Callable[[Record], Any]) -> None:
        """Call ``callback(record)`` for every new record."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[Record], Any]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    async def wait_until(self, predicate: Callable[[], Any], *, timeout: float = 5.0,
                         what: str = "the tap recorded it") -> Any:
        """Wait until ``predicate()`` is true, checked after each record."""
        return await self._changes.wait_until(predicate, timeout=timeout, what=what)

    def _record(self, direction: str, transport: str, kind: str, connection: str | None,
                data: str | bytes, http: str = "", method: str = "") -> Record:
        record = Record(next(_numbers), time.time(), direction, transport, kind,
                        connection, data, http, method)
        self._records.append(record)
        for callback in list(self._subscribers):
            try:
                callback(record)
            except Exception:  # a broken view must not stop the traffic
                logger.exception("a wire tap subscriber failed")
        self._changes.notify()
        return record

    # -- lifecycle --------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._stopped

    async def start(self) -> "WireTap":
        """Listen, and return the tap itself."""
        if self._runner is not None:
            raise RuntimeError("this tap has been started already; start a new WireTap")
        old = _taps.pop(self.name, None)
        if old is not None and old is not self:
            await old.stop()
        self._loop = asyncio.get_running_loop()
        # No cookie jar: each client's cookies travel in its own headers.
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=0)  # the server sets the limits
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            await self._session.close()
            raise
        self.port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}"
        _taps[self.name] = self
        return self

    async def stop(self) -> None:
        """Close every connection through the tap and stop listening. Safe to
        call again."""
        async with self._stop_lock:
            if self._stopped or self._runner is None:
                return
            self._stopped = True
            await self._stop()

    async def _stop(self) -> None:
        assert self._runner is not None
        if _taps.get(self.name) is self:
            del _taps[self.name]
        for ws in list(self._sockets):
            await ws.close()
        current = asyncio.current_task()
        pending = {task for task in self._tasks if task is not current and not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
        await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> "WireTap":
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<WireTap {self.name!r} {state}, {len(self._records)} records>"

    # -- forwarding -------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._stopped:
            return web.Response(status=503, text="the wire tap is stopping")
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._relay_websocket(request)
            return await self._forward_http(request)
        finally:
            self._tasks.discard(task)

    @staticmethod
    def _headers(request: web.Request, drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
        return CIMultiDict((key, value) for key, value in request.headers.items()
                           if key.lower() not in HOP_BY_HOP and key.lower() not in drop)

    async def _forward_http(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        query = parse_qs(request.query_string)
        recorded = "EIO" in query
        sid = query.get("sid", [None])[0]
        body = await request.read()
        line = f"{request.method} {request.raw_path}"
        if recorded:
            self._record(CLIENT_TO_SERVER, "polling", "request", sid, _text(body), line,
                         request.method)
        try:
            async with self._session.request(
                    request.method, self.target + request.raw_path,
                    headers=self._headers(request), data=body if body else None,
                    allow_redirects=False, skip_auto_headers=_AUTO_HEADERS) as upstream:
                raw = await upstream.read()
                headers = CIMultiDict((key, value) for key, value in upstream.headers.items()
                                      if key.lower() not in HOP_BY_HOP)
                status = f"{upstream.status} {upstream.reason or ''}".strip()
        except aiohttp.ClientError as exc:
            return self._unreachable(exc, sid if recorded else None, "polling", request.method)
        if recorded:
            text = _text(_decompressed(raw, upstream.headers.get("Content-Encoding", "")))
            if sid is None and text.startswith("0{"):
                opened = decode_packet(text.split("\x1e")[0])
                sid = opened.eio_data.get("sid") if isinstance(opened.eio_data, dict) else None
            self._record(SERVER_TO_CLIENT, "polling", "response", sid, text, status,
                         request.method)
        return web.Response(body=raw, status=upstream.status, reason=upstream.reason,
                            headers=headers)

    def _unreachable(self, exc: Exception, sid: str | None, transport: str,
                     method: str) -> web.Response:
        # As a reverse proxy says it: 502, with the reason.
        text = f"the wire tap could not reach the server at {self.target}: {exc}"
        self._record(SERVER_TO_CLIENT, transport, "response", sid, text, "502 Bad Gateway",
                     method)
        return web.Response(status=502, text=text)

    async def _relay_websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        query = parse_qs(request.query_string)
        sid = query.get("sid", [None])[0]
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                     if p.strip()]
        try:
            upstream = await self._session.ws_connect(
                self.target + request.raw_path, headers=self._headers(request, WEBSOCKET_HANDSHAKE),
                protocols=protocols, max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            # The server said no (a bad sid, an origin it refuses): say the same.
            return web.Response(status=exc.status, text=exc.message or "")
        except aiohttp.ClientError as exc:
            return self._unreachable(exc, sid, "websocket", "GET")
        self._sockets.add(upstream)
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (), max_msg_size=0)
        await client.prepare(request)
        self._sockets.add(client)
        state = {"sid": sid}
        self._record(CLIENT_TO_SERVER, "websocket", "open", sid, "", f"GET {request.raw_path}",
                     "GET")
        to_server = asyncio.ensure_future(self._pump(client, upstream, CLIENT_TO_SERVER, state))
        to_client = asyncio.ensure_future(self._pump(upstream, client, SERVER_TO_CLIENT, state))
        try:
            await asyncio.wait({to_server, to_client}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in (to_server, to_client):
                pump.cancel()
            await asyncio.gather(to_server, to_client, return_exceptions=True)
            await upstream.close()
            await client.close()
            self._sockets.discard(upstream)
            self._sockets.discard(client)
        return client

    async def _pump(self, source: Any, sink: Any, direction: str, state: dict[str, Any]) -> None:
        async for message in source:
            if message.type == aiohttp.WSMsgType.TEXT:
                if state["sid"] is None and message.data.startswith("0{"):
                    opened = decode_packet(message.data)
                    if isinstance(opened.eio_data, dict):
                        state["sid"] = opened.eio_data.get("sid")
                self._record(direction, "websocket", "frame", state["sid"], message.data)
                await sink.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                self._record(direction, "websocket", "frame", state["sid"], message.data)
                await sink.send_bytes(message.data)
            else:
                break
        code = source.close_code
        if not state.get("closed"):  # the side that closed first, not the echo
            state["closed"] = True
            self._record(direction, "websocket", "close", state["sid"], "",
                         f"close {code}" if code is not None else "closed")
        await sink.close(code=code or aiohttp.WSCloseCode.OK)


# aiohttp's client adds these when a request has none: the tap adds nothing.
_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def _decompressed(body: bytes, encoding: str) -> bytes:
    # engineio compresses long-poll responses above a size: record them
    # readable, while the client gets the bytes as they came.
    encoding = encoding.lower().strip()
    try:
        if encoding == "gzip":
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return zlib.decompress(body)
    except zlib.error:
        pass
    return body


def tap(target: str, **options: Any) -> "_Starting":
    """Start a :class:`WireTap` in front of ``target`` (a server's URL):
    ``tap = await chatlab.wire.tap(server.url)``. The options are
    :class:`WireTap`'s."""
    return _Starting(WireTap(target, **options))


class _Starting:
    def __init__(self, wire_tap: WireTap) -> None:
        self._tap = wire_tap

    def __await__(self) -> Any:
        return self._tap.start().__await__()

    async def __aenter__(self) -> WireTap:
        return await self._tap.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._tap.stop()


def running_taps() -> dict[str, WireTap]:
    """The taps started and not yet stopped, by name."""
    return dict(_taps)


async def stop_all_taps() -> None:
    """Stop every tap started on this event loop."""
    loop = asyncio.get_running_loop()
    for wire_tap in list(_taps.values()):
        if wire_tap._loop is loop:
            await wire_tap.stop()

"""How many connections the chat server holds, and how long one may sit idle.

Every connection costs the server a file descriptor from the moment it is
accepted, whether or not a request ever comes on it. Left alone, aiohttp
keeps a connection that sends nothing, or half a request head, for an hour,
and a process out of descriptors can take no one new. So the chat server
(not a learner's server from :func:`chatlab.serve`):

- closes a connection that has not sent a whole request head within
  ``head_timeout`` seconds (10) of opening: a silent TCP connection, or a
  head that trickles in;
- closes a keep-alive connection left idle that long after its last
  response (aiohttp's ``keepalive_timeout``), or with only part of its
  next request head sent;
- gives a request body ``body_timeout`` seconds (10) to arrive whole
  (:func:`chatlab.hardening.check_request_bodies` reads it);
- holds at most ``max_connections`` at once: by default the process's
  open-file limit less 192 descriptors kept back (the 128 connections the
  listening socket may queue, and 64 for the message store, logs, the
  event loop and the rest). A connection over it is answered 503 with a
  sentence and closed at once, and the refusals are logged at most once a
  minute, so those already in stay served.

A request under way is not idle: a long poll waiting for data (about 25
s) and an open websocket have sent their whole request, and none of this
touches them.

``chatlab serve`` first raises its soft open-file limit to the hard one
(:func:`raise_open_file_limit`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, cast

from aiohttp import web

try:
    import resource
except ImportError:  # Windows: no open-file limit to read or raise
    resource = None  # type: ignore[assignment]

__all__ = [
    "BACKLOG",
    "ConnectionGuard",
    "FULL_RESPONSE",
    "ConnectionLimits",
    "RESERVED_FILES",
    "default_max_connections",
    "open_file_limit",
    "raise_open_file_limit",
]

logger = logging.getLogger("chatlab")

# Connections the listening socket may queue: accepted in one go, each holds
# a descriptor until it is refused, so the cap leaves room for them.
BACKLOG = 128
# Descriptors kept for everything but connections: the listening socket,
# the event loop's own, stdio, the message store's files, logs.
RESERVED_FILES = 64
# The fewest connections a cap allows, however low the open-file limit.
FEWEST_CONNECTIONS = 16
# Seconds between two log lines about refused connections.
REPORT_EVERY = 60.0

_FULL_TEXT = b"the chat server has as many connections as it can take; try again in a moment\n"
FULL_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_FULL_TEXT)).encode() + b"\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n\r\n" + _FULL_TEXT
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a connection may wait before its request, and how many the
    server holds.

    ``head_timeout`` is how many seconds a connection has, from opening or
    from its previous response, to send a whole request head;
    ``body_timeout`` how many a request body has to arrive whole after its
    head. ``max_connections`` is the most connections held at once;
    ``None`` (the default) works it out from the open-file limit when the
    server starts (see :func:`default_max_connections`).
    """

    head_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int | None = None

    def __post_init__(self) -> None:
        for name in ("head_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
        count = self.max_connections
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 1):
            raise ValueError(
                f"max_connections must be a whole number of at least 1 (or None for one "
                f"that fits the open-file limit), not {count!r}")


def open_file_limit() -> int | None:
    """The process's soft limit on open files; ``None`` when there is none
    (or, on Windows, no way to read it)."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> int | None:
    """Raise the soft open-file limit to the hard one, as far as the system
    lets it, and return the soft limit now in force (``None``: no limit)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit
            logger.info("chatlab: the open-file limit stays at %d (%s)", soft, exc)
    return open_file_limit()


def default_max_connections(open_files: int | None = None) -> int | None:
    """The most connections to hold with ``open_files`` descriptors (by
    default the soft open-file limit now): that limit less ``BACKLOG`` and
    ``RESERVED_FILES``, and never under ``FEWEST_CONNECTIONS``. ``None``
    when there is no limit."""
    if open_files is None:
        open_files = open_file_limit()
        if open_files is None:
            return None
    return max(FEWEST_CONNECTIONS, open_files - BACKLOG - RESERVED_FILES)


class ConnectionGuard:
    """Times and counts the connections of one server.

    Passed to :func:`chatlab.host.serve` as its ``listener``: its
    ``runner_options`` set aiohttp's keep-alive timeout, its ``site`` opens
    the listening socket with each connection passed through the guard,
    and its ``middleware`` (to put first on the app) tells the guard when a
    connection's first request head has arrived.

    ``open`` is how many connections it holds now, ``refused`` how many it
    has refused for being full (each server counts its own).
    """

    def __init__(self, limits: ConnectionLimits = ConnectionLimits()) -> None:
        self.limits = limits
        self.max_connections: int | None = limits.max_connections
        self.refused = 0
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self._last_report: float | None = None
        self._unreported = 0

    @property
    def open(self) -> int:
        return len(self._connections)

    @property
    def runner_options(self) -> Mapping[str, Any]:
        return {"keepalive_timeout": self.limits.head_timeout}

    def site(self, runner: web.AppRunner, host: str, port: int) -> web.BaseSite:
        """The aiohttp site listening on ``host`` and ``port`` through this
        guard (the cap, when not given, is worked out now)."""
        if self.limits.max_connections is None:
            self.max_connections = default_max_connections()
        return GuardedSite(runner, host, port, guard=self)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A request has come: its connection's first head is whole."""
        connection = self._connections.get(request.transport)  # type: ignore[arg-type]
        if connection is not None:
            connection.head_arrived()
        return await handler(request)

    def _take(self, connection: "_Connection", transport: asyncio.Transport) -> bool:
        if self.max_connections is not None and len(self._connections) >= self.max_connections:
            self._refuse(transport)
            return False
        self._connections[transport] = connection
        return True

    def _let_go(self, transport: asyncio.BaseTransport) -> None:
        self._connections.pop(transport, None)

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused += 1
        transport.write(FULL_RESPONSE)
        transport.close()
        now = asyncio.get_running_loop().time()
        if self._last_report is not None and now - self._last_report < REPORT_EVERY:
            self._unreported += 1
            return
        since = f" ({self._unreported} more refused since the last report)" \
            if self._unreported else ""
        logger.warning(
            "chatlab: the chat server holds %d connections, the most it takes: refusing "
            "new ones until some close%s (the most follows the open-file limit, ulimit -n, "
            "unless max_connections sets it)", len(self._connections), since)
        self._last_report = now
        self._unreported = 0


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's own protocol inside, and the
    deadline for its first request head. A connection over the cap never
    reaches aiohttp."""

    def __init__(self, guard: ConnectionGuard, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_handler = make_handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self._guard._take(self, transport):
            return
        self._transport = transport
        self._deadline = asyncio.get_running_loop().call_later(
            self._guard.limits.head_timeout, self._no_request)
        self._handler = self._make_handler()
        self._handler.connection_made(transport)

    def head_arrived(self) -> None:
        # From now on aiohttp's keep-alive timeout watches the idle times.
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _no_request(self) -> None:
        self._deadline = None
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handler is None:
            return  # refused: never counted
        self.head_arrived()
        self._guard._let_go(self._transport)  # type: ignore[arg-type]
        self._transport = None
        self._handler.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with every accepted connection passed through
    a :class:`ConnectionGuard`.

    A site of aiohttp's keeps its listening server in ``_server``, which
    ``BaseSite.stop()`` closes and ``AppRunner.addresses`` reads; this one
    does the same.
    """

    def __init__(self, runner: web.AppRunner, host: str, port: int, *,
                 guard: ConnectionGuard, backlog: int = BACKLOG) -> None:
        super().__init__(runner)
        self._guard = guard
        self._queue = backlog
        self._host = host
        self._port = port
        self._make_handler = runner.server

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        make_handler = self._make_handler
        assert make_handler is not None
        guard = self._guard
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(guard, make_handler), self._host, self._port,
            backlog=self._queue)
        sockets = self._server.sockets
        if sockets:
            self._port = sockets[0].getsockname()[1]

"""The chat server's defences below the level of events.

:mod:`chatlab.guards` checks the events a client sends; this module deals
with what a broken or hostile client sends that is not an event at all:

- a packet the server cannot read (bad JSON, nesting too deep for the
  decoder, an event that is not a list, a stray attachment) closes that
  one connection, after an ``error`` saying why, as Node's server closes
  it (python-socketio would log it and carry on);
- events over a connection's rate limit are refused before they are
  decoded, once per wait, and a connection that keeps flooding is closed;
  a connect refused for its token closes its transport too
  (:func:`gate_events`);
- a request body is read before engineio sees it, within a deadline and
  up to ``max_http_buffer_size``, and refused with a status and a
  sentence when it is too big (413: engineio would close the session and
  leave the request waiting the whole ping timeout), too slow (408), or
  a long-polling body engineio cannot decode (400: engineio would log a
  traceback, answer 200 and lose the packets). A chunked body, which
  engineio reads as empty, is read whole and handed on; a body of more
  than the 16 packets engineio decodes at once (up to 64) is handed on
  16 at a time.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, Awaitable, Callable

import socketio
from aiohttp import hdrs, web

from . import _compat
from .guards import GuardedNamespace
from .hosts import client_address
from .ratelimit import Verdict

__all__ = [
    "BODY_TIMEOUT", "EventGate", "GOODBYE", "check_request_bodies", "close_connection",
    "close_on_unreadable_packets", "gate_events",
]

logger = logging.getLogger("chatlab")

Dispatch = Callable[[str, Any], Awaitable[None]]

#: Seconds a connection being closed has to take what was queued for it,
#: its goodbye included, before its websocket's TCP connection is cut.
GOODBYE = 2.0
# The first character of the Socket.IO packets the gate looks at.
CONNECT, EVENT, BINARY_EVENT = (
    str(kind) for kind in (socketio.packet.CONNECT, socketio.packet.EVENT,
                           socketio.packet.BINARY_EVENT))

# Seconds a request body has to arrive whole, from the end of its head.
BODY_TIMEOUT = 10.0
# Engine.IO's separator of the packets in one long-polling body.
RECORD_SEPARATOR = "\x1e"
# The most packets one long-polling POST may carry. engineio decodes at
# most 16 from one body (a limit for the whole process, which chatlab
# leaves alone); a bigger batch, such as a Python client's burst of quick
# emits (a burst of the rate limit is 40 events), is handed to engineio 16
# at a time. More than this many is work no client needs: refused.
MOST_POLLING_PACKETS = 64
# The first character of each packet engineio takes from a client: close,
# pong, message, upgrade, or a binary message in base64. Another (a ping, a
# noop) makes it close the session and hold the request until a poll reads
# the goodbye, which may be never.
CLIENT_PACKET_TYPES = frozenset("1345b")

# Where a body read by check_request_bodies waits for engineio.
_BODY: Any = web.RequestKey("chatlab.body", bytes) if hasattr(web, "RequestKey") \
    else "chatlab.body"  # aiohttp before 3.12 has only string keys


def close_on_unreadable_packets(sio: socketio.AsyncServer) -> None:
    """Close a connection that sends ``sio`` a packet it cannot read."""

    async def close(eio_sid: str, exc: BaseException) -> None:
        kind = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        reason = f"the server could not read a packet ({kind}); closing this connection"
        sio.logger.warning("closing %s: unreadable packet: %r", eio_sid, exc)
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            await sio.emit("error", {"event": None, "reason": reason}, to=sid, ignore_queue=True)
        else:
            # Not connected yet: it was the connect packet itself (an
            # offset too big for the JSON reader, say), and a client that
            # is refused its connect gets the reason as a connect error.
            detail = str(exc)[:100]
            refusal = f"the server could not read the connect packet ({kind}: {detail})"
            await sio.eio.send(eio_sid, sio.packet_class(
                socketio.packet.CONNECT_ERROR, data={"message": refusal},
                namespace="/").encode())
        await close_connection(sio, eio_sid, sio.get_environ(sid) if sid is not None else None)

    _compat.handle_unreadable_packets(sio, close)


async def close_connection(sio: socketio.AsyncServer, eio_sid: str,
                           environ: dict[str, Any] | None = None) -> None:
    """Close one connection: its disconnect handlers run, and it is sent
    engineio's goodbye after whatever was already queued for it (an
    ``error`` saying why, say). Then, for a connection that opened as a
    websocket (``environ`` is its request's), its TCP connection is cut:
    closed once the goodbye is written, or aborted when the client has not
    taken it within :data:`GOODBYE` seconds. (A connection that upgraded
    from long-polling is left for its client to close, which a Socket.IO
    client does on the goodbye, or for engineio's ping timeout.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GOODBYE
    queue = _compat.socket_queue(sio.eio, eio_sid)
    if queue is not None:
        # A long-polling client takes what is queued only with its next GET,
        # and engineio answers no GET once the session is closed: let it
        # take the reason first.
        try:
            await asyncio.wait_for(queue.join(), GOODBYE)
        except asyncio.TimeoutError:
            pass
    try:
        # engineio's disconnect() waits until the client has taken every
        # packet, which one that does not read never does.
        await asyncio.wait_for(sio.eio.disconnect(eio_sid), max(0.1, deadline - loop.time()))
        written = True
    except asyncio.TimeoutError:
        written = False
    request = environ.get("aiohttp.request") if environ is not None else None
    if isinstance(request, web.BaseRequest) and request.transport is not None \
            and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        if written:
            request.transport.close()  # after what it has buffered
        else:
            request.transport.abort()


def gate_events(sio: socketio.AsyncServer, namespace: GuardedNamespace) -> bool:
    """Judge the events each client of ``namespace`` sends against its
    rate limit before python-socketio decodes them or starts a task for
    them, and close the transport of a connect refused for its token.

    See :class:`EventGate`. Returns False where engineio offers no way to
    see messages first (:func:`chatlab._compat.gate_messages`): the
    namespace then judges the rate itself, the same way, after decoding.
    """
    gate = EventGate(sio, namespace)
    if not _compat.gate_messages(sio, gate.message):
        return False
    namespace.gate = gate
    return True


class EventGate:
    """What a client's messages pass before python-socketio reads them.

    python-socketio decodes every packet and starts a task for every event
    before any handler could refuse it: a client flooding events as fast
    as TCP allows cost the server more than a core, and everyone else's
    round trips went from a millisecond to most of a second. The gate looks
    only at a packet's first character (a Socket.IO EVENT starts with "2",
    a BINARY_EVENT with "5") and asks the connection's
    :class:`~chatlab.ratelimit.Allowance`:

    - within the limit, the event goes on to python-socketio and the
      namespace, which checks it as before;
    - the first event over it is decoded only to learn its name and
      acknowledgement id: the sender gets ``error`` ``{event, reason,
      retryAfter}``, also as the acknowledgement when it asked for one;
    - events sent before that ``retryAfter`` has passed are dropped
      undecoded: no ``error``, no acknowledgement (a client waiting for
      one times out), and a binary event's attachments with it;
    - a connection that goes on sending after being told, beyond as many
      refused events as its limit lets through (by default 40 at once, 20
      a second), is sent ``error`` ``{event: None, reason}`` and closed,
      and a warning in the ``chatlab`` log names it and its address.

    CONNECT, DISCONNECT and ACK packets pass, but:

    - a connect refused for its token (missing, wrong, or locked out) is
      the last on its transport: a token guesser could otherwise retry
      thousands of times a second on one websocket. Its further CONNECTs
      are dropped, and the connection is closed after :data:`GOODBYE`
      seconds unless its client has closed it first (Socket.IO clients do,
      at once; python-engineio's client leaves tasks running when the
      server closes first, in the middle of its own closing);
    - a connection engineio has closed cannot connect on it again;
    - a CONNECT from a connection already in the chat, which
      python-socketio refuses with an answer each time, is counted as an
      event and dropped, so that a flood of them closes it too.

    An event from a connection not (or no longer) in the chat is dropped,
    as python-socketio would ignore it after decoding it.
    """

    def __init__(self, sio: socketio.AsyncServer, namespace: GuardedNamespace) -> None:
        self.sio = sio
        self.namespace = namespace
        # Connects refused for their token, from the refusal until their
        # CONNECT packet has been handled: eio_sid -> environ.
        self._token_refused: dict[str, dict[str, Any]] = {}
        # Their connections, until they are closed.
        self._refused: set[str] = set()
        # Attachments still to come of binary events dropped: sid -> count.
        self._attachments: dict[str, int] = {}
        self._closing: set[str] = set()

    async def message(self, eio_sid: str, data: Any, handle: Dispatch) -> None:
        """Pass ``data`` from ``eio_sid`` on to ``handle``, or not."""
        if isinstance(data, str):
            kind = data[:1]
            if kind in (EVENT, BINARY_EVENT):
                await self._event(eio_sid, data, handle)
                return
            if kind == CONNECT:
                await self._connect(eio_sid, data, handle)
                return
        elif self._attachment_dropped(eio_sid):
            return
        await handle(eio_sid, data)

    def token_refused(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """A connect was refused for its token: close its transport once the
        refusal is on its way (from :class:`~chatlab.guards.GuardedNamespace`)."""
        self._token_refused[eio_sid] = environ

    def forget(self, sid: str) -> None:
        """The connection ``sid`` has left the chat."""
        self._attachments.pop(sid, None)

    def _sid(self, eio_sid: str) -> str | None:
        return self.sio.manager.sid_from_eio_sid(eio_sid, self.namespace.namespace)

    async def _event(self, eio_sid: str, data: str, handle: Dispatch) -> None:
        sid = self._sid(eio_sid)
        allowance = self.namespace.allowance(sid) if sid is not None else None
        if allowance is None:
            if data[0] == BINARY_EVENT:
                await handle(eio_sid, data)  # python-socketio closes it as unreadable
            return
        verdict = allowance.judge()
        if verdict is Verdict.PASS:
            await handle(eio_sid, data)
            return
        assert sid is not None
        if data[0] == BINARY_EVENT:
            self._attachments[sid] = self._attachments.get(sid, 0) + _attachment_count(data)
        if verdict is Verdict.REFUSE:
            await self._refuse(eio_sid, sid, data, allowance)
        elif verdict is Verdict.CLOSE:
            await self._close_flooding(eio_sid, sid)

    def _attachment_dropped(self, eio_sid: str) -> bool:
        sid = self._sid(eio_sid)
        left = self._attachments.get(sid, 0) if sid is not None else 0
        if not left:
            return False
        if left == 1:
            del self._attachments[sid]  # type: ignore[arg-type]
        else:
            self._attachments[sid] = left - 1  # type: ignore[index]
        return True

    async def _refuse(self, eio_sid: str, sid: str, data: str, allowance: Any) -> None:
        # Decoded only here, once per wait, for its name and acknowledgement id.
        try:
            packet = self.sio.packet_class(encoded_packet=data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError):
            packet = None
        args = getattr(packet, "data", None)
        event = args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None
        payload = await self.namespace.refuse(sid, event, self.namespace.too_fast(allowance))
        if packet is not None and packet.id is not None:
            ack = self.sio.packet_class(
                socketio.packet.ACK, namespace=packet.namespace, data=[payload], id=packet.id)
            await self.sio.eio.send(eio_sid, ack.encode())

    async def _close_flooding(self, eio_sid: str, sid: str) -> None:
        if sid in self._closing:
            return  # another request of the same long-polling client is closing it
        self._closing.add(sid)
        try:
            environ = self.sio.get_environ(sid, self.namespace.namespace)
            self.namespace.closed_for_flooding(sid, client_address(environ) if environ else None)
            await self.namespace.emit(
                "error", {"event": None, "reason": self.namespace.flood_reason()}, to=sid,
                ignore_queue=True)
            await close_connection(self.sio, eio_sid, environ)
        finally:
            self._closing.discard(sid)

    async def _connect(self, eio_sid: str, data: str, handle: Dispatch) -> None:
        if eio_sid in self._refused:
            return  # refused for its token: one try per connection
        try:
            await self.sio.eio.get_session(eio_sid)
        except KeyError:
            return  # engineio has closed this connection: nothing more gets in on it
        if _namespace_of(data) == self.namespace.namespace:
            sid = self._sid(eio_sid)
            allowance = self.namespace.allowance(sid) if sid is not None else None
            if allowance is not None:
                # Already in: counted as an event, and never a second connection.
                if allowance.judge() is Verdict.CLOSE:
                    await self._close_flooding(eio_sid, sid)  # type: ignore[arg-type]
                return
        try:
            await handle(eio_sid, data)
        finally:
            environ = self._token_refused.pop(eio_sid, None)
        if environ is not None:
            self._refused.add(eio_sid)
            self.sio.start_background_task(self._close_refused, eio_sid, environ)

    async def _close_refused(self, eio_sid: str, environ: dict[str, Any]) -> None:
        try:
            await asyncio.sleep(GOODBYE)  # for its client to close it first
            await close_connection(self.sio, eio_sid, environ)
        finally:
            self._refused.discard(eio_sid)


def _namespace_of(data: str) -> str:
    """The namespace a Socket.IO packet (without its binary count) is for."""
    if data[1:2] != "/":
        return "/"
    end = data.find(",", 1)
    return data[1:] if end < 0 else data[1:end]


def _attachment_count(data: str) -> int:
    """How many attachments follow a BINARY_EVENT packet ("51-[...]"); 0
    when its header does not say (python-socketio then cannot read them)."""
    end = 1
    while end < min(len(data), 8) and data[end].isdigit():  # six digits at most
        end += 1
    return int(data[1:end]) if 1 < end < 8 and data[end:end + 1] == "-" else 0


def check_request_bodies(sio: socketio.AsyncServer, *, timeout: float = BODY_TIMEOUT) -> Any:
    """An aiohttp middleware that reads each request body before ``sio``
    does, and answers, with a sentence saying why:

    - 413 to a body over ``sio``'s ``max_http_buffer_size``: at once when
      its Content-Length says so, else (chunked) as soon as it has passed
      the limit;
    - 408 to a body not whole within ``timeout`` seconds of its head;
    - 400 to a long-polling body that is not UTF-8 text, or that carries
      more than :data:`MOST_POLLING_PACKETS` packets (send them in several
      requests), or a packet of a type a client does not send.

    A long-polling body of more packets than engineio decodes from one
    body (16 by default) is handed to it in parts of that many.

    A body under the limit, chunked or not, is handed to engineio as read.
    Where engineio cannot be handed a body (see
    :func:`chatlab._compat.read_bodies_from`), only the Content-Length is
    checked, and a chunked body is answered 411.
    """
    takes_bodies = _compat.read_bodies_from(sio.eio, lambda request: request.get(_BODY))

    @web.middleware
    async def check_body(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        limit = sio.eio.max_http_buffer_size
        length = request.content_length
        if length is not None and length > limit:
            return _refusal(413, f"the request body is over the limit of {limit} bytes")
        if not takes_bodies:
            if length is None:
                return _refusal(411, "send the request body with a Content-Length "
                                     "(this server does not take chunked bodies)")
            return await handler(request)
        try:
            body = await asyncio.wait_for(_read_up_to(request.content, limit), timeout)
        except asyncio.TimeoutError:
            return await _refused_and_closed(
                request, 408, f"the request body did not arrive whole within {timeout:g} s")
        except (ConnectionError, web.RequestPayloadError):
            return _refusal(400, "the request body could not be read")  # its sender is gone
        if body is None:
            return _refusal(413, f"the request body is over the limit of {limit} bytes")
        if request.method == "POST" and request.match_info.handler == sio.eio.handle_request:
            problem = _polling_body_problem(body)
            if problem is not None:
                return _refusal(400, problem, close=False)
            return await _hand_on_in_parts(request, handler, body)
        request[_BODY] = body
        return await handler(request)

    return check_body


async def _hand_on_in_parts(request: web.Request, handler: Any,
                            body: bytes) -> web.StreamResponse:
    """Hand a long-polling body to engineio, as several bodies of no more
    packets than it decodes at once when it carries more (it is answered
    as one, by the last part's answer, or the first that was not 200)."""
    most = _compat.polling_packet_limit()
    packets = body.split(RECORD_SEPARATOR.encode())
    if most is None or len(packets) <= most or body.startswith(b"d="):
        request[_BODY] = body
        return await handler(request)
    response: web.StreamResponse | None = None
    for start in range(0, len(packets), most):
        request[_BODY] = RECORD_SEPARATOR.encode().join(packets[start:start + most])
        response = await handler(request)
        if response.status != 200:
            break
    assert response is not None
    return response


async def _read_up_to(stream: Any, limit: int) -> bytes | None:
    """The whole body from ``stream``, or None once it is over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _polling_body_problem(body: bytes) -> str | None:
    """Why engineio could not decode this long-polling body, or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the request body is not UTF-8 text"
    if text.startswith("d="):  # the JSONP form, which engineio also takes
        values = urllib.parse.parse_qs(text).get("d")
        if not values:
            return "the request body is a JSONP form without its d= field"
        text = values[0]
    if not text:
        return None
    packets = text.split(RECORD_SEPARATOR)
    if len(packets) > MOST_POLLING_PACKETS:
        return (f"this request carries {len(packets)} packets, and the server takes at "
                f"most {MOST_POLLING_PACKETS} in one long-polling request: send them in "
                f"several requests")
    for number, packet in enumerate(packets, 1):
        if packet[:1] not in CLIENT_PACKET_TYPES:
            return (f"packet {number} of this request is not an Engine.IO packet a client "
                    f"sends (each starts with its type: 1 close, 3 pong, 4 message, 5 upgrade)")
    return None


async def _refused_and_closed(request: web.Request, status: int, text: str) -> web.Response:
    """A refusal sent now, and the connection closed behind it: aiohttp
    would otherwise linger up to 10 s more reading the rest of a body that
    was already too slow."""
    refusal = _refusal(status, text)
    await refusal.prepare(request)
    await refusal.write_eof()
    if request.transport is not None:
        request.transport.close()
    return refusal


def _refusal(status: int, text: str, *, close: bool = True) -> web.Response:
    refusal = web.Response(status=status, text=text)
    if close:
        refusal.force_close()  # the unread rest of the body would follow on this connection
    return refusal

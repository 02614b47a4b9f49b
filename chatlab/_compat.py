"""Every place chatlab touches python-socketio's or python-engineio's internals.

Nothing else in chatlab reaches past the libraries' public API; this module
holds what they offer no public way to do, one function per need. Each
says why it exists and what happens when the internal it uses is missing
(a release that renamed it): the kit keeps working without that one
feature, and says so once in the ``chatlab`` logger. None of this touches a
learner's server beyond what :func:`chatlab.serve` documents.

Checked against the lowest versions ``pyproject.toml`` allows and the
newest (``requirements/lowest.txt``; CI runs the core tests at both):
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import engineio
import socketio

__all__ = [
    "CHECKED",
    "abort_connections",
    "drop_connection",
    "gate_messages",
    "handle_unreadable_packets",
    "on_connection_closed",
    "on_final_disconnect",
    "polling_packet_limit",
    "read_bodies_from",
    "restart_service_task",
    "set_websocket_class",
    "sid_of_queue",
    "stop_pubsub_manager",
    "websocket_class_telling",
    "socket_is_open_websocket",
    "socket_queue",
    "watch_client_events",
    "watch_server_events",
]

CHECKED = "python-socketio 5.17.0 to 5.18.1, python-engineio 4.13.2 to 4.15.1"

logger = logging.getLogger("chatlab")

Dispatch = Callable[..., Awaitable[Any]]

_said: set[str] = set()


def _missing(feature: str, consequence: str) -> None:
    """Say once per process that an internal is gone, and what it costs."""
    if feature not in _said:
        _said.add(feature)
        logger.warning("chatlab: %s is not in this python-socketio/engineio (checked: %s); %s",
                       feature, CHECKED, consequence)


# -- the handler-error seam (chatlab.host) ----------------------------------

def watch_server_events(sio: socketio.AsyncServer,
                        wrap: Callable[[Dispatch], Dispatch]) -> Callable[[], None] | None:
    """Route every handler call of this one server through ``wrap``.

    python-socketio runs each handler in a task of its own and calls it
    from ``AsyncServer._trigger_event``, the one place that sees every
    handler (connect, events, disconnect, namespaces) with its event name.
    Without this, an exception in a learner's handler shows only as "Task
    exception was never retrieved" on stderr, in no cell. Only the instance
    is changed; the returned function undoes it. Missing: handler errors
    print as python-socketio prints them, and are not in ``server.errors``.
    """
    if not callable(getattr(type(sio), "_trigger_event", None)):
        _missing("AsyncServer._trigger_event",
                 "handler errors are not recorded in server.errors")
        return None
    sio._trigger_event = wrap(sio._trigger_event)  # type: ignore[method-assign]
    return lambda: sio.__dict__.pop("_trigger_event", None)


def watch_client_events(client: socketio.AsyncClient) -> None:
    """Call ``client.event_received(event, args, namespace)`` for every
    event the client gets, whether or not it has a handler for it
    (``connect_error`` and ``disconnect`` included);
    :class:`chatlab.RecordingClient` logs them.

    ``AsyncClient._trigger_event`` is the one place every incoming event
    passes. Missing: the log shows only what the client sent.
    """
    original = getattr(client, "_trigger_event", None)
    if original is None:
        _missing("AsyncClient._trigger_event", "event logs show only the events sent")
        return

    async def trigger_event(event: str, namespace: str, *args: Any) -> Any:
        client.event_received(event, args, namespace)  # type: ignore[attr-defined]
        return await original(event, namespace, *args)

    client._trigger_event = trigger_event  # type: ignore[method-assign]


def on_final_disconnect(client: socketio.AsyncClient, handler: Callable[[], Any]) -> None:
    """Call ``handler()`` when no reconnection follows a disconnect: the
    client or the server ended the connection, or python-socketio gave up
    trying. python-socketio has no public event for it; it triggers its own
    ``__disconnect_final`` then, through the client's handlers. Missing: a
    :class:`~chatlab.ChatClient` reads as reconnecting until it connects again
    or is shut down.
    """
    if not hasattr(client, "_handle_reconnect"):  # the releases that send it
        _missing("AsyncClient's __disconnect_final event",
                 "a chat window may say reconnecting after its chat has ended")
        return
    client.on("__disconnect_final", handler=handler)


# -- stopping a server (chatlab.host) -----------------------------------------

async def abort_connections(eio: engineio.AsyncServer) -> None:
    """Drop every connection without a goodbye packet, as a Node.js server
    does when it stops: disconnect handlers run (reason "server
    disconnect"), and clients see a lost connection and reconnect, rather
    than being sent away for good. engineio's public ``disconnect()``
    always says goodbye; its socket objects can abort. Missing: the
    goodbye is sent, and clients do not reconnect by themselves.
    """
    sockets = getattr(eio, "sockets", None)
    reason = getattr(getattr(eio, "reason", None), "SERVER_DISCONNECT", None)
    if not isinstance(sockets, dict) or reason is None:
        _missing("AsyncServer.sockets", "stopping a server sends its clients away for good")
        await eio.disconnect()
        return
    for socket in list(sockets.values()):
        await socket.close(wait=False, abort=True, reason=reason)
    sockets.clear()


def restart_service_task(eio: engineio.AsyncServer) -> None:
    """Let an engineio server that was shut down start its service task
    (pings and timeouts) again when it is served again, as a re-run
    notebook cell does: ``shutdown()`` stops the task for good and leaves
    the attributes that say it already ran. Missing: a server served a
    second time no longer drops clients that went silent.
    """
    if not hasattr(eio, "service_task_handle"):
        _missing("AsyncServer.service_task_handle",
                 "a server served again does not drop silent clients")
        return
    eio.service_task_event = None
    eio.service_task_handle = None


# -- the chat server (chatlab.chat_server) ------------------------------------

def handle_unreadable_packets(sio: socketio.AsyncServer,
                              refuse: Callable[[str, BaseException], Awaitable[None]]) -> None:
    """Call ``refuse(eio_sid, exc)`` when a client sends a packet the server
    cannot decode (bad JSON, nesting too deep, a stray attachment), instead
    of python-socketio's log line and an open connection: only a broken or
    hostile client sends one, and Node's server closes the connection too.

    Every Socket.IO packet is decoded in ``AsyncServer._handle_eio_message``,
    which engineio calls for each message. Missing: such packets are
    dropped and logged, and the connection stays open.
    """
    original = getattr(sio, "_handle_eio_message", None)
    if original is None or sio.eio.handlers.get("message") != original:
        _missing("AsyncServer._handle_eio_message",
                 "unreadable packets are dropped without closing their connection")
        return

    async def handle_eio_message(eio_sid: str, data: Any) -> None:
        try:
            await original(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            await refuse(eio_sid, exc)

    sio.eio.on("message", handle_eio_message)  # engineio's public way to set it


def gate_messages(sio: socketio.AsyncServer,
                  gate: Callable[[str, Any, Dispatch], Awaitable[None]]) -> bool:
    """Hand every message a client sends ``sio`` to ``gate(eio_sid, data,
    handle)`` first, before anything decodes it: ``handle(eio_sid, data)``
    is the server's own handling (python-socketio's, with what chatlab
    wrapped around it), which the gate awaits, or not, to drop the message.

    engineio calls its one "message" handler for each message, inline
    (python-socketio turns engineio's tasks off), and keeps it in
    ``handlers``, which has no public getter. Missing: returns False, and
    nothing is gated (:mod:`chatlab.guards` then judges the rate limit
    after decoding).
    """
    handlers = getattr(sio.eio, "handlers", None)
    original = handlers.get("message") if isinstance(handlers, dict) else None
    if original is None:
        _missing("AsyncServer.handlers",
                 "events over the rate limit are refused after decoding, not before")
        return False

    async def gated_message(eio_sid: str, data: Any) -> None:
        await gate(eio_sid, data, original)

    sio.eio.on("message", gated_message)
    return True


# -- fast paths (chatlab.fast) ------------------------------------------------

def set_websocket_class(eio: engineio.AsyncServer, websocket: type | None) -> type | None:
    """Make the connections ``eio`` accepts from now on use ``websocket``
    (a subclass of engineio's aiohttp ``WebSocket``) and return the class
    it used before; ``None`` leaves it as it is. engineio picks it from its
    table of transport classes, ``AsyncServer._async``. Missing: the
    direct writes of :mod:`chatlab.fast.direct_writes` stay off.
    """
    table = getattr(eio, "_async", None)
    if not isinstance(table, dict) or "websocket" not in table:
        _missing("AsyncServer._async", "direct writes are off")
        return None
    before = table["websocket"]
    if websocket is not None:
        eio._async = {**table, "websocket": websocket}
    return before


def websocket_class_telling(
        on_open: Callable[[Any, Any, asyncio.Transport], None], *,
        inline_messages: bool = False) -> type:
    """A websocket class for :func:`set_websocket_class`: engineio's aiohttp
    ``WebSocket``, which also calls ``on_open(connection, ws, transport)``
    once the websocket is open, with the engineio connection it serves, the
    aiohttp ``WebSocketResponse`` and its transport. Its ``__call__`` is
    engineio's own, with that one call added (engineio keeps the response
    in ``_sock`` and the connection as its handler's ``__self__``).

    ``inline_messages``: its ``wait()`` also hands each message packet of
    an upgraded connection to the connection's ``receive()`` itself, as
    engineio's reading loop would, and returns only the other packets
    (pongs, close, upgrade) to that loop. The loop starts a task and a
    ``wait_for`` timer for each packet it waits for: three turns of the
    event loop per message, where this takes one. Its timer still runs:
    a client answers a ping every ``ping_interval``, well inside the
    ``ping_interval + ping_timeout`` it allows.
    """
    from aiohttp import web
    from engineio import exceptions as eio_exceptions
    from engineio import packet as eio_packet
    from engineio.async_drivers.aiohttp import WebSocket

    class TellingWebSocket(WebSocket):  # type: ignore[misc]
        async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
            request: web.Request = environ["aiohttp.request"]
            self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size)
            await self._sock.prepare(request)
            self.environ = environ
            if request.transport is not None:
                on_open(getattr(self.handler, "__self__", None), self._sock, request.transport)
            await self.handler(self)
            return self._sock

    class InlineWebSocket(TellingWebSocket):
        async def wait(self) -> Any:
            connection = getattr(self.handler, "__self__", None)
            receive = getattr(connection, "receive", None)
            limit = self.server.max_http_buffer_size
            while True:
                data = await super().wait()
                if not (receive is not None and isinstance(data, str) and data[:1] == "4"
                        and len(data) <= limit and socket_is_open_websocket(connection)):
                    return data  # engineio's loop takes it (and refuses one too large)
                try:
                    await receive(eio_packet.Packet(encoded_packet=data))
                except eio_exceptions.SocketIsClosedError:
                    return None  # closed: engineio's loop ends the connection
                except Exception:  # noqa: BLE001 - as engineio's loop: logged, and on
                    self.server.logger.exception("Unknown receive error")

    return InlineWebSocket if inline_messages else TellingWebSocket


def socket_queue(eio: engineio.AsyncServer, eio_sid: str) -> Any:
    """The outgoing queue of one engineio connection (None when it is gone):
    engineio keeps its connections in ``AsyncServer.sockets``, each with
    the queue its writer reads. Missing: broadcasts take engineio's
    ``send_packet`` for every recipient."""
    return getattr(getattr(eio, "sockets", {}).get(eio_sid), "queue", None)


def socket_is_open_websocket(socket: Any) -> bool:
    """Whether an engineio connection is on its websocket for good: upgraded,
    not in the middle of upgrading, not closing (set first, and for good,
    when it closes). Unknown attributes read as "no", so a direct write
    never happens where it cannot be sure."""
    return (getattr(socket, "upgraded", False) is True
            and getattr(socket, "upgrading", True) is False
            and getattr(socket, "closing", True) is False)


# -- bounded outgoing queues (chatlab.outbox) ---------------------------------

def sid_of_queue(eio: engineio.AsyncServer, queue: Any) -> str | None:
    """The engineio id of the connection whose outgoing queue is ``queue``
    (None when there is none): engineio makes the queue before the
    connection has an id, and keeps its connections in
    ``AsyncServer.sockets``. Missing: a long-polling connection whose
    queue is over its bound is not found, and is not sent away."""
    sockets = getattr(eio, "sockets", None)
    if not isinstance(sockets, dict):
        _missing("AsyncServer.sockets", "a polling client that does not read is not sent away")
        return None
    for eio_sid, socket in list(sockets.items()):
        if getattr(socket, "queue", None) is queue:
            return eio_sid
    return None


async def drop_connection(eio: engineio.AsyncServer, eio_sid: str) -> None:
    """Close one connection without a goodbye packet, as a lost connection
    ends (see :func:`abort_connections`): its disconnect handlers run now,
    with the reason "server disconnect", and its client reconnects by
    itself. engineio's public ``disconnect()`` sends a goodbye and waits for
    the connection's queue to be written, which never happens for a client
    that does not read. Missing: the connection is left to its websocket
    closing or its ping timeout."""
    socket = getattr(eio, "sockets", {}).get(eio_sid)
    reason = getattr(getattr(eio, "reason", None), "SERVER_DISCONNECT", None)
    if not callable(getattr(socket, "close", None)) or reason is None:
        _missing("AsyncSocket.close",
                 "a client that does not read is disconnected only when its socket closes")
        return
    await socket.close(wait=False, abort=True, reason=reason)


def on_connection_closed(eio: engineio.AsyncServer, closed: Callable[[str], None]) -> None:
    """Call ``closed(eio_sid)`` as soon as engineio starts closing a
    connection, whichever side or timeout closes it, before its disconnect
    handler runs. engineio keeps one handler per event in ``handlers``
    (python-socketio's is the ``disconnect`` one); this wraps it, as
    :func:`handle_unreadable_packets` wraps ``message``. Missing: a
    :func:`chatlab.outbox.room_to_send` waiting on a polling connection
    that its client closed wakes up when the client's next poll fails."""
    handlers = getattr(eio, "handlers", None)
    original = handlers.get("disconnect") if isinstance(handlers, dict) else None
    if original is None:
        _missing("AsyncServer.handlers", "waits for room on a closed polling connection end late")
        return
    if asyncio.iscoroutinefunction(original):
        async def disconnect(eio_sid: str, *args: Any) -> Any:
            closed(eio_sid)
            return await original(eio_sid, *args)
    else:
        def disconnect(eio_sid: str, *args: Any) -> Any:  # type: ignore[misc]
            closed(eio_sid)
            return original(eio_sid, *args)
    eio.on("disconnect", disconnect)


# -- request bodies (chatlab.hardening) ---------------------------------------

def read_bodies_from(eio: engineio.AsyncServer,
                     body_of: Callable[[Any], bytes | None]) -> bool:
    """Make ``eio`` take an aiohttp request's body from ``body_of(request)``
    when that returns bytes (the body chatlab has already read, to check
    its size, its packets and how long it took), instead of reading it
    again from the request's stream, where it no longer is.

    engineio's aiohttp driver turns a request into a WSGI environ with
    ``AsyncServer._async['translate_request']`` and then reads
    ``CONTENT_LENGTH`` bytes of its ``wsgi.input``: a chunked body, which
    has no length, it reads as empty and answers 200. The table is the
    driver's, shared by every server, so only this one server gets a copy
    with the new function. Returns whether it could. Missing: bodies cannot
    be read before engineio, so a body's size is known only from its
    Content-Length, its packets are not counted, a slow one has no deadline
    but aiohttp's, and a chunked one is refused (411) rather than lost.
    """
    import inspect

    table = getattr(eio, "_async", None)
    translate = table.get("translate_request") if isinstance(table, dict) else None
    if translate is None or inspect.iscoroutinefunction(translate):
        _missing("AsyncServer._async['translate_request']",
                 "request bodies are checked by their Content-Length only")
        return False
    translate = getattr(translate, "__wrapped__", translate)  # set again: replaced, not nested

    def translate_request(request: Any) -> dict[str, Any]:
        environ = translate(request)
        body = body_of(request)
        if body is not None:
            environ["wsgi.input"] = _ReadBody(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    translate_request.__wrapped__ = translate  # type: ignore[attr-defined]
    eio._async = {**table, "translate_request": translate_request}
    return True


class _ReadBody:
    """A body already read, as the stream engineio reads it from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, size: int = -1) -> bytes:
        taken = self._body if size < 0 else self._body[:size]
        self._body = self._body[len(taken):]
        return taken


def polling_packet_limit() -> int | None:
    """The most packets engineio decodes from one long-polling body
    (``engineio.payload.Payload.max_decode_packets``, 16 by default, for
    the whole process); ``None`` when it has no such limit. It refuses a
    body with more by raising ValueError, which its request handler logs
    with a traceback and answers 200, so the packets are lost without a
    word to the client. Missing: chatlab does not count packets, and
    engineio has no limit to refuse them with.
    """
    import engineio.payload

    limit = getattr(engineio.payload.Payload, "max_decode_packets", None)
    return limit if isinstance(limit, int) else None


# -- a node of a cluster (chatlab.cluster) ------------------------------------

async def stop_pubsub_manager(manager: socketio.AsyncManager) -> None:
    """End a pub/sub client manager (``AsyncRedisManager``) of a server that
    stops (any other manager is left alone): python-socketio gives it no
    ``stop()``, and its listening task
    (``thread``) and Redis client (``redis``) would outlive the server,
    still subscribed, and warn of unclosed connections when the event loop
    closes. The task is cancelled (again, should a Redis read swallow the
    cancellation) and awaited, and the client closed. Missing: the task
    and client are left to end with the event loop.
    """
    from socketio.async_pubsub_manager import AsyncPubSubManager

    if not isinstance(manager, AsyncPubSubManager):
        return  # AsyncManager: nothing runs beside the server
    server = getattr(manager, "server", None)
    if getattr(server, "manager_initialized", True) is False:
        return  # started by the first connection, and none came: nothing runs
    task = getattr(manager, "thread", None)
    client = getattr(manager, "redis", None)
    if task is None and client is None and not hasattr(manager, "thread"):
        _missing("AsyncPubSubManager.thread",
                 "a cluster node that stops leaves its pub/sub listener to the event loop")
        return
    while isinstance(task, asyncio.Task) and not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=0.5)
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()

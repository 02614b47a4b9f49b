"""The chat server: the model tutorial's protocol, with its bugs fixed.

The protocol, which the tutorial's own browser page speaks unchanged:

========  ===============  =============================================
event     direction        payload
========  ===============  =============================================
adduser   client → server  the user name (string)
message   client → server  the message text (string)
users     server → all     the names of the users now connected (list)
private   server → new one ``{id, name, msg}``: its id, its name, a note
message   server → all     ``{message, user, id}``: text, sender, sender id
========  ===============  =============================================

Every join and leave sends ``users`` to everyone. In a chat of 100 users or
more, a burst of changes within ``users_interval`` (50 ms) goes to the
others as one list, the newest, at its end; the user who joined or left
gets its list at once (see :mod:`chatlab.users_list`).

Nothing is lost on the way (what the official Socket.IO tutorial calls
server and client delivery). Every public message is stored (see
:mod:`chatlab.store`) before it is sent, and its ``message`` payload
carries its ``offset`` as well. On every connection the server first sends
``history`` ``{chat, after, last}``, then the stored messages with offsets
after ``after`` up to ``last`` as ``message`` events, then live ones: a
client that connects with ``auth={"chat": ..., "serverOffset": N}`` (the
last offset it saw) gets every message it missed, in order, exactly once;
any other client gets the ``history`` most recent ones. ``message`` may
carry a second argument, the sender's own message id: a message sent again
with the same id (a retry after a lost acknowledgement) is acknowledged with
its first offset and not stored or sent again.

and, for the rooms lesson, ``join`` / ``leave`` (a room name, acknowledged
with the rooms the connection is now in), ``roommessage`` (``{room,
message}``, delivered to the room as ``message`` with a ``room`` key) and
``direct`` (``{to, message}``, delivered to that user and the sender as
``message`` with a ``to`` key).

Every input is checked (see :mod:`chatlab.validation`), and each connection
may send only so many events a second (see :mod:`chatlab.ratelimit`). A
refused event sends its sender alone ``error`` ``{event, reason}``, returns
the same payload as the acknowledgement when one was asked for, and changes
nothing. With a ``token``, only clients that connect with ``auth={"token":
...}`` get in.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import socketio
from aiohttp import web

from .fanout import FanoutManager
from .host import RunningServer, serve as serve_sio
from .origins import origin_policy
from .ratelimit import TokenBucket, Unlimited, bucket_for
from .store import MessageStore
from .users_list import UsersAnnouncer
from .validation import (
    Limits,
    Refused,
    check_message,
    check_message_id,
    check_name,
    check_resume,
    check_room,
    describe,
)

__all__ = ["ChatServer", "TOKEN_NEEDED", "TOKEN_WRONG", "WEB_DIR"]

WEB_DIR = Path(__file__).parent / "web"

EVENTS = ("adduser", "message", "join", "leave", "roommessage", "direct")

# Chat rooms live under this prefix inside python-socketio, whose rooms also
# include one per connection named by its id: without it, joining a "room"
# called by someone's id would let you read their private messages.
ROOM_PREFIX = "room:"

# The connections that have had their history and now get public messages as
# they are sent. Not a chat room (no prefix), so no client can join it.
LIVE_ROOM = "chatlab:live"

# An internal event the server triggers on itself once a connection is fully
# made (python-socketio's connect handler runs before the client counts as
# connected, so anything sent from there would arrive before the connection).
CONNECTED = "chatlab:connected"

# Names python-socketio keeps for the connection itself. It would still
# hand a client's event called so to the server's own handler: a client
# sending "disconnect" would vanish from the users list while connected,
# and one sending "connect" would reset its rate limit.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", CONNECTED})

Handler = Callable[..., Awaitable[Any]]

# The messages of a connection refused for its token; the page tells them
# apart by the ``data`` sent with them ({"token": "missing" | "wrong"}).
TOKEN_NEEDED = "this chat needs a token"
TOKEN_WRONG = "wrong token"


def _one_argument(event: str, args: tuple[Any, ...], what: str) -> Any:
    if not args:
        raise Refused(f"{event} needs {what}")
    if len(args) > 1:
        raise Refused(f"{event} takes one argument ({what}), not {len(args)}")
    return args[0]


def _fields(event: str, data: Any, names: tuple[str, ...]) -> list[Any]:
    expected = "{" + ", ".join(names) + "}"
    if not isinstance(data, dict):
        raise Refused(f"{event} needs an object {expected}, not {describe(data)}")
    if set(data) != set(names):
        raise Refused(f"{event} needs an object with exactly the keys {expected}")
    return [data[name] for name in names]


def _bad_event_name(data: Any) -> str | None:
    """Why an event packet's name cannot go to a handler, or None if it can.
    (A packet whose data is not a non-empty list is left to the decoder
    check in ``_handle_eio_message``.)"""
    if not isinstance(data, list) or not data:
        return None
    name = data[0]
    if not isinstance(name, str):
        return f"an event name must be a string, not {describe(name)}"
    if name in RESERVED_EVENTS:
        return f"{name!r} is reserved for the connection itself; a client may not send it"
    return None


class _ChatSocketServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` that closes a connection sending a packet it
    cannot read (bad JSON, nesting too deep for the decoder, an event that is
    not a list, a stray attachment) instead of dropping it without a word:
    only a broken or hostile client sends one, and the Node.js server closes
    the connection too. The sender gets ``error`` first, saying why."""

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        reason = _bad_event_name(data)
        if reason is None:
            await super()._handle_event(eio_sid, namespace, id, data)
            return
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return  # as python-socketio does for a namespace not connected
        event = data[0] if isinstance(data[0], str) else None
        payload = {"event": event, "reason": reason}
        await self.emit("error", payload, to=sid, namespace=namespace)
        if id is not None:
            await self._send_packet(eio_sid, self.packet_class(
                socketio.packet.ACK, namespace=namespace, id=id, data=[payload]))

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            kind = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
            reason = f"the server could not read a packet ({kind}); closing this connection"
            self.logger.warning("closing %s: unreadable packet: %r", eio_sid, exc)
            sid = self.manager.sid_from_eio_sid(eio_sid, "/")
            if sid is not None:
                await self.emit("error", {"event": None, "reason": reason}, to=sid)
            await self.eio.disconnect(eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None and self.manager.is_connected(sid, namespace):
            await self._trigger_event(CONNECTED, namespace, sid)


class ChatServer:
    """The chat, as one object that runs in a kernel or standalone.

    :param cors_origins: origins allowed besides the page this server serves
        and pages on localhost / 127.0.0.1 (``"*"`` allows all).
    :param limits: the longest name, message and room name accepted, how
        fast each connection may send events, and the largest packet.
    :param token: when given, a client must connect with ``auth={"token":
        token}``; others are refused with a ``ConnectionRefusedError``.
    :param db: where messages are stored: a SQLite file path, or
        ``":memory:"`` (the default) for a history that ends with the server.
    :param history: how many recent messages a new client is sent.
    :param users_interval: in a chat of 100 users or more, the shortest time
        between two ``users`` lists to everyone: the user who joined or left
        gets the new list at once, and so does everyone when nothing changed
        for that long; changes within it go to the others in one list at its
        end. 0 sends every change to everyone at once.
    :param server_options: passed on to ``socketio.AsyncServer`` (a
        ``max_http_buffer_size`` here overrides ``limits.http_buffer_size``).

    ``users`` maps each joined connection's id to its name, in join order.
    Names are unique (ignoring case) among connected users, so a name always
    means one person; a second user asking for a taken name is refused.
    """

    def __init__(
        self,
        *,
        cors_origins: Iterable[str] = (),
        limits: Limits = Limits(),
        token: str | None = None,
        db: str | Path = ":memory:",
        history: int = 50,
        users_interval: float = 0.05,
        **server_options: Any,
    ) -> None:
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("the token must be a non-empty string (or None for no token)")
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError("history must be a whole number of messages, 0 or more")
        if isinstance(users_interval, bool) or not isinstance(users_interval, (int, float)) \
                or not 0 <= users_interval <= 10:
            raise ValueError("users_interval must be a number of seconds from 0 to 10")
        bucket_for(limits.events_per_second, limits.burst)  # a bad limit fails here, not on connect
        self.limits = limits
        self.token = token
        self.history = history
        self.store = MessageStore(db)
        self.users: dict[str, str] = {}
        # Held while a message is stored and sent, and while a connection is
        # sent its history, so every client sees the messages in offset order,
        # each once, with no gap between its history and the live ones.
        self._order = asyncio.Lock()
        # What each connecting client said it has seen, until it has had
        # its history.
        self._resume: dict[str, tuple[str | None, int | None]] = {}
        # The store's id and newest offset, kept here (only this server
        # writes to it) so a new connection's `history` goes out at once,
        # before any other event can reach it.
        self._chat_id: str | None = None
        self._last = 0
        # One bucket per connected client, made on connect, dropped on
        # disconnect, so the dict never outgrows the connections.
        self._buckets: dict[str, TokenBucket | Unlimited] = {}
        server_options.setdefault("max_http_buffer_size", limits.http_buffer_size)
        server_options.setdefault("client_manager", FanoutManager())
        self.sio = _ChatSocketServer(
            async_mode="aiohttp",
            cors_allowed_origins=origin_policy(cors_origins),
            **server_options,
        )
        self._users_list = UsersAnnouncer(self.sio, self.names, users_interval)
        self.sio.on("connect", handler=self._on_connect)
        self.sio.on(CONNECTED, handler=self._send_history)
        self.sio.on("disconnect", handler=self._on_disconnect)
        self.sio.on("*", handler=self._on_unknown)
        for event, handler in (
            ("adduser", self._on_adduser),
            ("message", self._on_message),
            ("join", self._on_join),
            ("leave", self._on_leave),
            ("roommessage", self._on_room_message),
            ("direct", self._on_direct),
        ):
            self.sio.on(event, handler=self._refusing(event, handler))

    # -- running ---------------------------------------------------------

    def make_app(self) -> web.Application:
        """An aiohttp app that serves the chat page at ``/`` (Socket.IO is
        attached to it by :func:`chatlab.host.serve`)."""
        app = web.Application()

        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(WEB_DIR / "index.html")

        async def close_store(app: web.Application) -> None:
            await self.store.close()

        app.router.add_get("/", index)
        app.router.add_static("/static/", WEB_DIR)
        app.on_cleanup.append(close_store)  # lets go of a database file on stop()
        return app

    async def serve(
        self,
        *,
        name: str = "chat",
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
        websocket_compression: bool = False,
        direct_writes: bool = True,
    ) -> RunningServer:
        """Start the chat and its page on the running loop (see
        :func:`chatlab.host.serve`); the page is at the returned ``url``."""
        await self._open_store()
        return await serve_sio(
            self.sio, name=name, host=host, port=port, app=self.make_app(), quiet=quiet,
            websocket_compression=websocket_compression, direct_writes=direct_writes)

    # -- state -------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of the users now connected, in the order they joined."""
        return list(self.users.values())

    def rooms_of(self, sid: str) -> list[str]:
        """The chat rooms a connection is in, sorted."""
        return sorted(
            room[len(ROOM_PREFIX):]
            for room in self.sio.rooms(sid)
            if room.startswith(ROOM_PREFIX)
        )

    def _sid_of(self, name: str) -> str | None:
        wanted = name.casefold()
        for sid, user in self.users.items():
            if user.casefold() == wanted:
                return sid
        return None

    def _joined(self, sid: str, event: str) -> str:
        name = self.users.get(sid)
        if name is None:
            raise Refused(f"send adduser with your name before {event}")
        return name

    # -- handlers ----------------------------------------------------------

    def _refusing(self, event: str, handler: Handler) -> Handler:
        async def dispatch(sid: str, *args: Any) -> Any:
            return await self._dispatch(event, handler, sid, *args)

        return dispatch

    async def _dispatch(self, event: str, handler: Handler, sid: str, *args: Any) -> Any:
        """Run ``handler`` within the rate limit, turning a refusal into the
        ``error`` event and the acknowledgement."""
        try:
            self._check_rate(sid)
            return await handler(sid, *args)
        except Refused as refusal:
            return await self._refuse(sid, event, refusal.reason, refusal.retry_after)

    def _check_rate(self, sid: str) -> None:
        bucket = self._buckets.get(sid)
        if bucket is None:
            # Only after disconnect (handlers run in tasks of their own):
            # the connection is gone, so there is nobody left to act for.
            raise Refused("this connection has closed")
        if not bucket.take():
            wait = round(max(bucket.retry_after(), 0.01), 2)
            raise Refused(
                f"too fast: at most {self.limits.events_per_second:g} events a second "
                f"(bursts of {self.limits.burst}); try again in {wait:.2f} s",
                retry_after=wait)

    async def _refuse(
        self, sid: str, event: str, reason: str, retry_after: float | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"event": event, "reason": reason}
        if retry_after is not None:
            payload["retryAfter"] = retry_after  # seconds: a client may send it again then
        await self.sio.emit("error", payload, to=sid)
        return payload

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, str]:
        async def unknown(sid: str, *args: Any) -> None:
            known = ", ".join(EVENTS)
            raise Refused(f"unknown event {event!r}; the chat understands {known}")

        return await self._dispatch(event, unknown, sid)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if self.token is not None:
            given = auth.get("token") if isinstance(auth, dict) else None
            if not isinstance(given, str) or not given:
                raise socketio.exceptions.ConnectionRefusedError(
                    TOKEN_NEEDED, {"token": "missing"})
            # Compared in constant time, so the answer's timing gives away
            # nothing about how much of a guess was right.
            # "surrogatepass": a lone surrogate is a wrong token, not a crash.
            if not hmac.compare_digest(
                    given.encode("utf-8", "surrogatepass"), self.token.encode("utf-8")):
                raise socketio.exceptions.ConnectionRefusedError(
                    TOKEN_WRONG, {"token": "wrong"})
        try:
            self._resume[sid] = check_resume(auth)
        except Refused as refusal:
            raise socketio.exceptions.ConnectionRefusedError(refusal.reason) from None
        self._buckets[sid] = bucket_for(self.limits.events_per_second, self.limits.burst)

    async def _open_store(self) -> None:
        if self._chat_id is None:
            self._chat_id = await self.store.chat_id()
            self._last = await self.store.last_offset()

    async def _send_history(self, sid: str) -> None:
        # Runs as soon as python-socketio has sent the connection its
        # CONNECT, and sends `history` before awaiting anything else, so
        # `history` is the first event the client gets.
        chat, seen = self._resume.pop(sid, (None, None))
        await self._open_store()  # open already, unless served without ChatServer.serve()
        if chat != self._chat_id or seen is None or seen > self._last:
            # A new client, or offsets from another history (a server
            # restarted without a database file): the recent messages.
            seen = max(0, self._last - self.history)
        await self.sio.emit(
            "history", {"chat": self._chat_id, "after": seen, "last": self._last}, to=sid)
        async with self._order:
            # Everything stored since, including what was sent to the others
            # while this connection waited for the lock (none: no trip to
            # the store's thread, which a connection would otherwise pay).
            missed = await self.store.after(seen) if seen < self._last else []
            for message in missed:
                await self.sio.emit("message", message.payload(), to=sid)
            if self.sio.manager.is_connected(sid, "/"):
                await self.sio.enter_room(sid, LIVE_ROOM)

    async def _on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self._buckets.pop(sid, None)
        self._resume.pop(sid, None)
        # Removed by connection id, never by looking the name up: the
        # tutorial's indexOf() removed the wrong user (or, finding nothing,
        # the last one), and it announced the change as "user", not "users".
        # The connection leaving gets the list too (python-socketio still
        # counts it; Node's server does not): a python-engineio polling
        # client's disconnect waits for its open long-poll, which this ends
        # at once instead of at the next ping, 25 s later.
        if self.users.pop(sid, None) is not None:
            await self._users_list.changed(sid)

    async def _on_adduser(self, sid: str, *args: Any) -> dict[str, Any]:
        if sid in self.users:
            raise Refused(f"this connection has already joined as {self.users[sid]!r}")
        name = check_name(_one_argument("adduser", args, "your user name"), self.limits)
        if self._sid_of(name) is not None:
            raise Refused(f"the name {name!r} is taken; choose another")
        self.users[sid] = name
        await self.sio.save_session(sid, {"name": name})
        await self._users_list.changed(sid)
        note = f"Welcome, {name}! You are connected as {sid}."
        await self.sio.emit("private", {"id": sid, "name": name, "msg": note}, to=sid)
        return {"ok": True, "id": sid, "name": name}

    async def _on_message(self, sid: str, *args: Any) -> dict[str, Any]:
        user = self._joined(sid, "sending a message")
        if not args:
            raise Refused("message needs the message text")
        if len(args) > 2:
            raise Refused(f"message takes the message text and, optionally, a message id; "
                          f"not {len(args)} arguments")
        text = check_message(args[0], self.limits)
        message_id = check_message_id(args[1] if len(args) == 2 else None)
        async with self._order:
            message, new = await self.store.add(user, sid, text, message_id)
            if new:
                self._last = message.offset
                await self.sio.emit("message", message.payload(), room=LIVE_ROOM)
        if not new and (message.user, message.text) != (user, text):
            raise Refused(f"the message id {message_id!r} is another message's; "
                          f"send this one with an id of its own")
        if not new:
            return {"ok": True, "offset": message.offset, "duplicate": True}
        return {"ok": True, "offset": message.offset}

    async def _on_join(self, sid: str, *args: Any) -> dict[str, Any]:
        self._joined(sid, "joining a room")
        room = check_room(_one_argument("join", args, "the room name"), self.limits)
        await self.sio.enter_room(sid, ROOM_PREFIX + room)
        return {"ok": True, "rooms": self.rooms_of(sid)}

    async def _on_leave(self, sid: str, *args: Any) -> dict[str, Any]:
        self._joined(sid, "leaving a room")
        room = check_room(_one_argument("leave", args, "the room name"), self.limits)
        if room not in self.rooms_of(sid):
            raise Refused(f"you are not in the room {room!r}")
        await self.sio.leave_room(sid, ROOM_PREFIX + room)
        return {"ok": True, "rooms": self.rooms_of(sid)}

    async def _on_room_message(self, sid: str, *args: Any) -> dict[str, Any]:
        user = self._joined(sid, "sending to a room")
        data = _one_argument("roommessage", args, "{room, message}")
        room, text = _fields("roommessage", data, ("room", "message"))
        room = check_room(room, self.limits)
        text = check_message(text, self.limits)
        if room not in self.rooms_of(sid):
            raise Refused(f"join the room {room!r} before sending to it")
        payload = {"message": text, "user": user, "id": sid, "room": room}
        await self.sio.emit("message", payload, room=ROOM_PREFIX + room)
        return {"ok": True}

    async def _on_direct(self, sid: str, *args: Any) -> dict[str, Any]:
        user = self._joined(sid, "sending a direct message")
        data = _one_argument("direct", args, "{to, message}")
        to, text = _fields("direct", data, ("to", "message"))
        to = check_name(to, self.limits)
        text = check_message(text, self.limits)
        target = self._sid_of(to)
        if target is None:
            raise Refused(f"there is no user called {to!r}")
        payload = {"message": text, "user": user, "id": sid, "to": self.users[target]}
        for recipient in dict.fromkeys((target, sid)):
            await self.sio.emit("message", payload, to=recipient)
        return {"ok": True}

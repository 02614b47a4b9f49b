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

and, for the rooms lesson, ``join`` / ``leave`` (a room name, acknowledged
with the rooms the connection is now in), ``roommessage`` (``{room,
message}``, delivered to the room as ``message`` with a ``room`` key) and
``direct`` (``{to, message}``, delivered to that user and the sender as
``message`` with a ``to`` key).

Every input is checked (see :mod:`chatlab.validation`). A refused event sends
its sender alone ``error`` ``{event, reason}``, returns the same payload as
the acknowledgement when one was asked for, and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import socketio
from aiohttp import web

from .host import RunningServer, serve as serve_sio
from .origins import origin_policy
from .validation import Limits, Refused, check_message, check_name, check_room, describe

__all__ = ["ChatServer", "WEB_DIR"]

WEB_DIR = Path(__file__).parent / "web"

EVENTS = ("adduser", "message", "join", "leave", "roommessage", "direct")

# Chat rooms live under this prefix inside python-socketio, whose rooms also
# include one per connection named by its id: without it, joining a "room"
# called by someone's id would let you read their private messages.
ROOM_PREFIX = "room:"

Handler = Callable[..., Awaitable[Any]]


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


class ChatServer:
    """The chat, as one object that runs in a kernel or standalone.

    :param cors_origins: origins allowed besides the page this server serves
        and pages on localhost / 127.0.0.1 (``"*"`` allows all).
    :param limits: the longest name, message and room name accepted.
    :param server_options: passed on to ``socketio.AsyncServer``.

    ``users`` maps each joined connection's id to its name, in join order.
    Names are unique (ignoring case) among connected users, so a name always
    means one person; a second user asking for a taken name is refused.
    """

    def __init__(
        self,
        *,
        cors_origins: Iterable[str] = (),
        limits: Limits = Limits(),
        **server_options: Any,
    ) -> None:
        self.limits = limits
        self.users: dict[str, str] = {}
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=origin_policy(cors_origins),
            **server_options,
        )
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

        app.router.add_get("/", index)
        app.router.add_static("/static/", WEB_DIR)
        return app

    async def serve(
        self, *, name: str = "chat", host: str = "127.0.0.1", port: int = 0, quiet: bool = True
    ) -> RunningServer:
        """Start the chat and its page on the running loop (see
        :func:`chatlab.host.serve`); the page is at the returned ``url``."""
        return await serve_sio(
            self.sio, name=name, host=host, port=port, app=self.make_app(), quiet=quiet)

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
            try:
                return await handler(sid, *args)
            except Refused as refusal:
                return await self._refuse(sid, event, refusal.reason)

        return dispatch

    async def _refuse(self, sid: str, event: str, reason: str) -> dict[str, str]:
        payload = {"event": event, "reason": reason}
        await self.sio.emit("error", payload, to=sid)
        return payload

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, str]:
        known = ", ".join(EVENTS)
        return await self._refuse(
            sid, event, f"unknown event {event!r}; the chat understands {known}")

    async def _on_disconnect(self, sid: str, reason: str | None = None) -> None:
        # Removed by connection id, never by looking the name up: the
        # tutorial's indexOf() removed the wrong user (or, finding nothing,
        # the last one), and it announced the change as "user", not "users".
        if self.users.pop(sid, None) is not None:
            await self.sio.emit("users", self.names())

    async def _on_adduser(self, sid: str, *args: Any) -> dict[str, Any]:
        if sid in self.users:
            raise Refused(f"this connection has already joined as {self.users[sid]!r}")
        name = check_name(_one_argument("adduser", args, "your user name"), self.limits)
        if self._sid_of(name) is not None:
            raise Refused(f"the name {name!r} is taken; choose another")
        self.users[sid] = name
        await self.sio.save_session(sid, {"name": name})
        await self.sio.emit("users", self.names())
        note = f"Welcome, {name}! You are connected as {sid}."
        await self.sio.emit("private", {"id": sid, "name": name, "msg": note}, to=sid)
        return {"ok": True, "id": sid, "name": name}

    async def _on_message(self, sid: str, *args: Any) -> dict[str, Any]:
        user = self._joined(sid, "sending a message")
        text = check_message(_one_argument("message", args, "the message text"), self.limits)
        await self.sio.emit("message", {"message": text, "user": user, "id": sid})
        return {"ok": True}

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

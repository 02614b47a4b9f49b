"""The chat's handlers: the model tutorial's protocol, with its bugs fixed.

One handler per event of :mod:`chatlab.protocol`, written as the lessons
write them, as a python-socketio class-based namespace: ``on_adduser`` is
the class form of ``@sio.event async def adduser(sid, name)``. A handler
that raises ``Refused`` sends its sender ``error`` with the reason, and
changes nothing. The machinery they call lives in modules of its own:

- :mod:`chatlab.guards`: the token, the rate limit, and the events and
  arguments the protocol allows, checked before a handler runs;
- :mod:`chatlab.validation`: the rules for names, messages and room names;
- :mod:`chatlab.delivery`: public messages stored with offsets, history
  and replay, so that nothing is lost or sent twice;
- :mod:`chatlab.chat_server`: :class:`~chatlab.ChatServer`, which puts it
  all together, with the page and the wire-level defences.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from .delivery import Delivery
from .guards import GuardedNamespace
from .validation import (
    Limits, Refused, check_message, check_message_id, check_name, check_room, name_key)

__all__ = ["ChatNamespace", "ROOM_PREFIX", "Users"]

# Chat rooms live under this prefix inside python-socketio, whose rooms also
# include one per connection named by its id: without it, joining a "room"
# called by someone's id would let you read their private messages.
ROOM_PREFIX = "room:"


class ChatNamespace(GuardedNamespace):
    """The chat's event handlers; ``users`` maps each joined connection's
    id to its name, in join order.

    :param delivery: stores and sends the public messages.
    :param announce_users: sends the users list after a join or leave
        (everyone gets every change unless given, as in the tutorial).
    """

    def __init__(self, delivery: Delivery, *, limits: Limits = Limits(),
                 token: str | None = None,
                 announce_users: Callable[[str], Awaitable[None]] | None = None) -> None:
        super().__init__("/", limits=limits, token=token)
        self.delivery = delivery
        self.users = Users()
        # Each connection's chat rooms, kept here so that a join, a leave or
        # a room message costs what one connection's rooms cost: asking
        # python-socketio (rooms()) walks every room of the server.
        self._rooms: dict[str, set[str]] = {}
        self.announce_users = announce_users or self.send_users_to_everyone

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_token(auth)
        self.delivery.connecting(sid, auth)  # where its history starts
        self.admit(sid)
        # History goes out from a task: python-socketio counts the client as
        # connected only once this handler has returned.
        self.server.start_background_task(self.delivery.catch_up, sid)

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self.release(sid)
        self._rooms.pop(sid, None)  # our note of its rooms; python-socketio empties its own
        self.delivery.forget(sid)
        # Removed by connection id, never by looking the name up: the
        # tutorial's indexOf() removed the wrong user (or, finding nothing,
        # the last one), and it announced the change as "user", not "users".
        if self.users.pop(sid, None) is not None:
            await self.announce_users(sid)

    async def on_adduser(self, sid: str, name: Any) -> dict[str, Any]:
        if sid in self.users:
            raise Refused(f"this connection has already joined as {self.users[sid]!r}")
        name = check_name(name, self.limits)
        if self.sid_of(name) is not None or not await self.claim_name(sid, name):
            raise Refused(f"the name {name!r} is taken; choose another")
        self.users[sid] = name
        await self.save_session(sid, {"name": name})
        await self.announce_users(sid)
        note = f"Welcome, {name}! You are connected as {sid}."
        await self.emit("private", {"id": sid, "name": name, "msg": note}, to=sid)
        return {"ok": True, "id": sid, "name": name}

    async def on_message(self, sid: str, text: Any, message_id: Any = None) -> dict[str, Any]:
        user = self.joined(sid, "sending a message")
        text = check_message(text, self.limits)
        message_id = check_message_id(message_id)
        return await self.delivery.publish(user, sid, text, message_id)

    async def on_join(self, sid: str, room: Any) -> dict[str, Any]:
        self.joined(sid, "joining a room")
        room = check_room(room, self.limits)
        rooms = self._rooms.setdefault(sid, set())
        if room not in rooms and len(rooms) >= self.limits.rooms:
            raise Refused(f"you are in {len(rooms)} rooms, the most one connection may "
                          f"be in; leave one before joining {room!r}")
        rooms.add(room)
        await self.enter_room(sid, ROOM_PREFIX + room)
        return {"ok": True, "rooms": self.rooms_of(sid)}

    async def on_leave(self, sid: str, room: Any) -> dict[str, Any]:
        self.joined(sid, "leaving a room")
        room = check_room(room, self.limits)
        if room not in self._rooms.get(sid, ()):
            raise Refused(f"you are not in the room {room!r}")
        self._rooms[sid].discard(room)
        await self.leave_room(sid, ROOM_PREFIX + room)
        return {"ok": True, "rooms": self.rooms_of(sid)}

    async def on_roommessage(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        user = self.joined(sid, "sending to a room")
        room = check_room(data["room"], self.limits)
        text = check_message(data["message"], self.limits)
        if room not in self._rooms.get(sid, ()):
            raise Refused(f"join the room {room!r} before sending to it")
        payload = {"message": text, "user": user, "id": sid, "room": room}
        await self.emit("message", payload, room=ROOM_PREFIX + room)
        return {"ok": True}

    async def on_direct(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        user = self.joined(sid, "sending a direct message")
        to = check_name(data["to"], self.limits)
        text = check_message(data["message"], self.limits)
        found = await self.find_user(to)
        if found is None:
            raise Refused(f"there is no user called {to!r}")
        target, name = found
        payload = {"message": text, "user": user, "id": sid, "to": name}
        for recipient in dict.fromkeys((target, sid)):  # once, when sent to oneself
            await self.emit("message", payload, to=recipient)
        return {"ok": True}

    # -- what the handlers share ----------------------------------------------

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        # A connection's own events wait until it has had what it missed, so
        # that what they cause (a users list, its messages) comes after that.
        if event not in ("connect", "disconnect") and args:
            await self.delivery.caught_up(args[0])
        return await super().trigger_event(event, *args)

    async def send_users_to_everyone(self, sid: str) -> None:
        # The connection leaving gets the list too (python-socketio still
        # counts it; Node's server does not): a python-engineio polling
        # client's disconnect waits for its open long-poll, which this ends
        # at once instead of at the next ping, 25 s later.
        await self.emit("users", self.names())

    def names(self) -> list[str]:
        """The names of the users now connected, in the order they joined."""
        return list(self.users.values())

    def joined(self, sid: str, doing: str) -> str:
        """The sender's name; refused if it has not sent ``adduser``."""
        name = self.users.get(sid)
        if name is None:
            raise Refused(f"send adduser with your name before {doing}")
        return name

    def sid_of(self, name: str) -> str | None:
        """The connection of the user called ``name``, or of the one whose
        name looks the same: ignoring case, width and invisible characters
        (see :func:`~chatlab.validation.name_key`)."""
        return self.users.sid_of(name)

    def rooms_of(self, sid: str) -> list[str]:
        """The chat rooms a connection is in, sorted."""
        return sorted(self._rooms.get(sid, ()))

    # -- where a cluster's nodes differ (chatlab.cluster.users) ---------------

    async def claim_name(self, sid: str, name: str) -> bool:
        """Whether ``sid`` may have ``name``, which no user here has: on one
        server, always (the check before it is the whole truth)."""
        return True

    async def find_user(self, name: str) -> tuple[str, str] | None:
        """The connection of the user called ``name`` (see :meth:`sid_of`)
        and that user's name as typed, or None."""
        sid = self.sid_of(name)
        return None if sid is None else (sid, self.users[sid])


class Users(dict[str, str]):
    """Each joined connection's id and its user name as typed, in join
    order: a dict that also finds a connection by its user's
    :func:`~chatlab.validation.name_key`, in one look-up. Two connections
    never have names with the same key: setting one raises ``ValueError``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sids: dict[str, str] = {}  # name_key(name) -> sid

    def sid_of(self, name: str) -> str | None:
        """The connection whose name has the key of ``name``, or None."""
        return self._sids.get(name_key(name))

    def __setitem__(self, sid: str, name: str) -> None:
        key = name_key(name)
        if self._sids.get(key, sid) != sid:
            raise ValueError(f"the name {name!r} is taken by another connection")
        if sid in self:
            del self._sids[name_key(self[sid])]
        super().__setitem__(sid, name)
        self._sids[key] = sid

    def __delitem__(self, sid: str) -> None:
        del self._sids[name_key(self[sid])]
        super().__delitem__(sid)

    # dict's own versions of these skip __setitem__ and __delitem__.

    def pop(self, sid: str, *default: Any) -> Any:  # type: ignore[override]
        if sid not in self:
            return super().pop(sid, *default)  # the default, or KeyError
        name = self[sid]
        del self[sid]
        return name

    def popitem(self) -> tuple[str, str]:
        if not self:
            raise KeyError("popitem(): no users")
        sid = next(reversed(self))
        return sid, self.pop(sid)

    def clear(self) -> None:
        super().clear()
        self._sids.clear()

    def update(self, *others: Any, **names: str) -> None:  # type: ignore[override]
        for sid, name in dict(*others, **names).items():
            self[sid] = name

    def setdefault(self, sid: str, name: str) -> str:  # type: ignore[override]
        if sid not in self:
            self[sid] = name
        return self[sid]

    def __ior__(self, other: Any) -> "Users":  # type: ignore[override]
        self.update(other)
        return self

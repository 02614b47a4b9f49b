"""A Python chat client: a ``socketio.AsyncClient`` plus what a user sees.

The client keeps its own id and name, the users list, the messages and the
rooms it is in, and a log of every event in and out. Every change notifies
subscribers (the widgets) and wakes the awaitable waits that notebooks and
tests use instead of sleeping.

Nothing the client sends or is sent gets lost when its connection drops
(see :mod:`chatlab.chat` for the protocol): it reconnects telling the
server the last offset it saw, and keeps each message it sent, under an id
of its own, until the server acknowledges it, sending it again after a
reconnection. The server stores an id once, so a retry never doubles a
message, and the client shows each offset once.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import socketio

from . import _compat
from .events import EventLog
from .waiting import Changes, WaitTimeout

__all__ = ["ChatClient", "ChatRefused", "Message", "disconnect_all"]

# The reasons for a disconnect after which python-socketio does not reconnect.
_FINAL_REASONS = ("client disconnect", "server disconnect")

# How long a rejoin after a reconnection keeps asking for its name while the
# server says it is taken: by this client's old connection until the server
# notices it is gone, or by a node of a cluster that died, until its
# heartbeat runs out (docs/scaling.md: at most ttl + beat, 8 s by default).
REJOIN_PATIENCE = 30.0

# Every client created on each loop, so a notebook can close them all at once.
_clients: "weakref.WeakSet[ChatClient]" = weakref.WeakSet()


class ChatRefused(Exception):
    """The server refused an event; ``reason`` says why."""

    def __init__(self, event: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"the server refused {event!r}: {reason}")
        self.event = event
        self.reason = reason
        self.retry_after = retry_after  # seconds, when the server said to try again


@dataclass(frozen=True)
class Message:
    """A chat message as a client received it.

    ``room`` is set for a room message, ``to`` for a direct message,
    ``mine`` when this client sent it, and ``offset`` for a public message
    the server stored (its place in the chat's history).
    """

    text: str
    user: str
    id: str
    room: str | None = None
    to: str | None = None
    mine: bool = False
    offset: int | None = None


@dataclass
class _Outgoing:
    """A message sent but not yet acknowledged by the server."""

    id: str
    text: str
    done: "asyncio.Future[int]"


class ChatClient:
    """A chat user connected to a chat server at ``url``.

    :param url: the server's base URL, e.g. ``server.url``; or a list of
        them, the nodes of one chat (:mod:`chatlab.cluster`): the client
        connects to the first that answers and, when its connection drops,
        each attempt to reconnect goes to the next one in turn, as a load
        balancer would send it to a node that is still up. ``urls`` is
        that list, ``url`` the one in use.
    :param transports: ``["websocket"]`` (the default) or ``["polling"]``;
        None lets python-socketio start with polling and upgrade.
    :param ack_timeout: seconds to wait for the server to acknowledge a
        message before sending it again.
    :param client_options: passed on to ``socketio.AsyncClient``.

    After a reconnection the client sends ``adduser`` again with its name,
    then every message still waiting for its acknowledgement.
    ``last_offset`` is the offset of the newest public message it has,
    ``chat`` the id of the history that offset belongs to.

    ``state`` is ``connecting``, ``connected`` or ``disconnected``; while
    disconnected, ``reconnecting`` says python-socketio is trying to get the
    connection back, and ``offline`` that :meth:`go_offline` dropped it.
    A client that is not connected has no ``users``.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        transports: Sequence[str] | None = ("websocket",),
        ack_timeout: float = 5.0,
        **client_options: Any,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else [str(u) for u in url]
        if not self.urls:
            raise ValueError("ChatClient needs the URL of a chat server")
        self.url = self.urls[0]  # the server it is connected to, or tries next
        self._moving = False  # the connection dropped: each attempt tries the next URL
        self.transports = list(transports) if transports is not None else None
        self.ack_timeout = ack_timeout
        client_options.setdefault("handle_sigint", False)  # leave Ctrl-C to the kernel
        self.sio = socketio.AsyncClient(**client_options)
        self.id: str | None = None
        self.name: str | None = None
        self.state = "disconnected"
        self.reconnecting = False  # python-socketio is trying to get the connection back
        self.offline = False  # between go_offline() and go_online()
        self.users: list[str] = []
        self.messages: list[Message] = []
        self.rooms: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.chat: str | None = None
        self.last_offset: int | None = None
        self.history_until: int | None = None  # the newest offset when it connected
        self.log = EventLog()
        self._auth: Any = None
        self._my_ids: set[str] = set()  # this client's connection ids, old and new
        self._outbox: dict[str, _Outgoing] = {}
        self._flushing: asyncio.Lock | None = None
        self._changes = Changes()
        self._wanted_name: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._connections = 0  # connections made so far (a rejoin belongs to one)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refusal: str | None = None  # why the server last refused to connect
        for event, handler in (
            ("connect", self._on_connect),
            ("connect_error", self._on_connect_error),
            ("disconnect", self._on_disconnect),
            ("users", self._on_users),
            ("private", self._on_private),
            ("history", self._on_history),
            ("message", self._on_message),
            ("error", self._on_error),
        ):
            self.sio.on(event, handler=handler)
        _compat.on_final_disconnect(self.sio, self._on_disconnect_final)
        _clients.add(self)

    # -- observing -----------------------------------------------------------

    def subscribe(self, callback: Callable[["ChatClient", str], Any]) -> None:
        """Call ``callback(client, what)`` after each change, where ``what``
        is one of ``state`` (also for ``reconnecting`` and ``offline``),
        ``me``, ``users``, ``messages``, ``rooms``, ``errors``, ``pending``."""
        self._changes.subscribe(callback)

    def unsubscribe(self, callback: Callable[["ChatClient", str], Any]) -> None:
        self._changes.unsubscribe(callback)

    def _changed(self, what: str) -> None:
        self._changes.notify(self, what)

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the client connected on (None before connecting);
        work for the client must run there."""
        return self._loop

    @property
    def pending(self) -> list[str]:
        """The messages sent and not yet acknowledged, oldest first."""
        return [outgoing.text for outgoing in self._outbox.values()]

    @property
    def caught_up(self) -> bool:
        """Whether the history the server sent on connecting has arrived."""
        return (self.connected and self.history_until is not None
                and (self.last_offset or 0) >= self.history_until)

    @property
    def wanted_name(self) -> str | None:
        """The name asked for with add_user(), kept across reconnections."""
        return self._wanted_name

    # -- handlers (run by python-socketio, in order of arrival) ---------------

    def _on_connect(self) -> None:
        self.log.record("in", "connect")
        self.state = "connected"
        self.reconnecting = False
        self._moving = False
        self._connections += 1
        self._changed("state")
        if self._wanted_name is not None and self.name is None:
            # A reconnection: the server sees a new connection, so join again.
            self._start(self._rejoin(self._wanted_name, self._connections))

    def _on_connect_error(self, data: Any = None) -> None:
        # The server's own words (e.g. "wrong token"), which python-socketio's
        # ConnectionError leaves out.
        self.log.record("in", "connect_error", data)
        message = data.get("message") if isinstance(data, dict) else data
        self._refusal = str(message) if message else None

    def _on_disconnect(self, reason: str | None = None) -> None:
        self.log.record("in", "disconnect", reason)
        self.state = "disconnected"
        # A dropped connection comes back by itself (python-socketio tries
        # again) unless this client or the server ended it; python-socketio
        # says so at once (see _compat.on_final_disconnect), and again when
        # it gives up.
        self.reconnecting = bool(self.sio.reconnection) and reason not in _FINAL_REASONS
        self._moving = self.reconnecting and len(self.urls) > 1
        self.id = None
        self.name = None
        self.users = []
        self.rooms = []
        self.history_until = None
        self._changed("state")

    def _on_disconnect_final(self) -> None:
        # No reconnection follows: this client or the server ended the
        # connection, or python-socketio has given up trying.
        if self.reconnecting:
            self.reconnecting = False
            self._changed("state")

    def _on_users(self, names: Any = None) -> None:
        self.log.record("in", "users", names)
        # The server also sends the list to a connection that is leaving
        # (it goes to everyone), and python-socketio may hand it over after
        # the disconnect: a client that is not connected has no active users.
        if isinstance(names, list) and self.connected:
            self.users = [str(name) for name in names]
            self._changed("users")

    def _on_private(self, data: Any = None) -> None:
        self.log.record("in", "private", data)
        if isinstance(data, dict):
            self.id = data.get("id")
            self.name = data.get("name")
            if self.id is not None:
                self._my_ids.add(str(self.id))
            if data.get("msg"):
                self.notes.append(str(data["msg"]))
            self._changed("me")

    def _on_history(self, data: Any = None) -> None:
        self.log.record("in", "history", data)
        if not isinstance(data, dict):
            return
        after, last = data.get("after"), data.get("last")
        if not (isinstance(after, int) and isinstance(last, int)):
            return
        # Another history (a new server) has offsets of its own; and what
        # follows starts after `after`: normally the offset this client sent,
        # lower if the server's history is shorter (a restored file).
        self.chat = data.get("chat")
        self.last_offset = after
        self.history_until = last
        self._changed("messages")

    def _on_message(self, data: Any = None) -> None:
        self.log.record("in", "message", data)
        if not isinstance(data, dict):
            return
        offset = data.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool):
            offset = None
        elif self.last_offset is not None and offset <= self.last_offset:
            return  # already here: shown once, whatever the server resends
        sender = str(data.get("id", ""))
        self.messages.append(Message(
            text=str(data.get("message", "")),
            user=str(data.get("user", "")),
            id=sender,
            room=data.get("room"),
            to=data.get("to"),
            mine=sender == self.id or sender in self._my_ids,
            offset=offset,
        ))
        if offset is not None:
            self.last_offset = offset
        self._changed("messages")

    def _on_error(self, data: Any = None) -> None:
        self.log.record("in", "error", data)
        self.errors.append(data if isinstance(data, dict) else {"reason": str(data)})
        self._changed("errors")

    # -- acting ---------------------------------------------------------------

    async def connect(self, *, timeout: float = 5.0, auth: Any = None) -> None:
        """Connect to the server (raises ``ConnectionError`` if it cannot).
        ``auth`` (e.g. ``{"token": ...}``) is sent with every connection,
        with where this client's history ends added to it."""
        self._loop = asyncio.get_running_loop()
        self._auth = auth
        self.state = "connecting"
        self._changed("state")
        failures = []
        for url in self.urls:
            self.url = url
            self._refusal = None
            try:
                await self.sio.connect(
                    self._connection_url, transports=self.transports,
                    auth=self._connect_auth, wait_timeout=timeout)
                return
            except socketio.exceptions.ConnectionError as exc:
                why = f"the server refused: {self._refusal}" if self._refusal else exc
                failures.append((url, why, exc))
        self.state = "disconnected"
        self._changed("state")
        url, why, exc = failures[-1]
        if len(failures) > 1:
            url = ", ".join(u for u, _, _ in failures)
            why = "; ".join(str(w) for _, w, _ in failures)
        raise ConnectionError(f"could not connect to {url}: {why}") from exc

    def _connection_url(self) -> str:
        # Called by python-socketio on every (re)connection attempt.
        if self._moving:
            at = self.urls.index(self.url) if self.url in self.urls else -1
            self.url = self.urls[(at + 1) % len(self.urls)]
        return self.url

    def _connect_auth(self) -> Any:
        # Called by python-socketio on every (re)connection, so the server
        # always hears the newest offset.
        if self.chat is None or not (self._auth is None or isinstance(self._auth, dict)):
            return self._auth
        return {**(self._auth or {}), "chat": self.chat, "serverOffset": self.last_offset or 0}

    async def _call(self, event: str, data: Any, timeout: float) -> dict[str, Any]:
        self.log.record("out", event, data)
        try:
            reply = await self.sio.call(event, data, timeout=timeout)
        except socketio.exceptions.TimeoutError:
            raise WaitTimeout(
                f"the server did not acknowledge {event!r} within {timeout:g} s") from None
        except socketio.exceptions.BadNamespaceError:
            raise ConnectionError(
                f"cannot send {event!r}: the client is not connected; "
                f"call connect() first") from None
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            reason = reply.get("reason") if isinstance(reply, dict) else None
            retry_after = reply.get("retryAfter") if isinstance(reply, dict) else None
            if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
                retry_after = None
            raise ChatRefused(event, str(reason or f"unexpected reply {reply!r}"), retry_after)
        return reply

    async def add_user(self, name: str, *, timeout: float = 5.0) -> None:
        """Join the chat as ``name`` (``adduser``); return once the server
        has welcomed this client. Raises :class:`ChatRefused` if refused."""
        await self._call("adduser", name, timeout)
        self._wanted_name = name
        await self.wait_until(lambda: self.name is not None, timeout=timeout,
                              what="the server sent this client its name")

    async def _rejoin(self, name: str, connection: int) -> None:
        # Asks again while the name is taken (see REJOIN_PATIENCE), as long
        # as this connection lasts; the messages waiting for it stay queued.
        loop = asyncio.get_running_loop()
        give_up = loop.time() + REJOIN_PATIENCE
        wait = 0.25
        while True:
            try:
                await self._call("adduser", name, timeout=5.0)
                break
            except ChatRefused as exc:
                # Worth waiting for: a name still taken, "too fast", or a
                # cluster's Redis that cannot be reached for the moment.
                passing = (exc.retry_after is not None
                           or any(words in exc.reason for words in ("is taken", "try again")))
                if not passing or loop.time() + wait > give_up:
                    self._on_error({"event": "adduser", "reason": f"could not rejoin: {exc}"})
                    return
                await asyncio.sleep(exc.retry_after or wait)
                wait = min(2 * wait, 2.0)
            except (WaitTimeout, ConnectionError) as exc:
                self._on_error({"event": "adduser", "reason": f"could not rejoin: {exc}"})
                return
            if connection != self._connections or not self.connected or self.name is not None:
                return  # dropped meanwhile (the next connection joins by itself), or joined
        await self._flush()

    async def send(
        self, text: str, *, room: str | None = None, to: str | None = None, timeout: float = 5.0
    ) -> int | None:
        """Send a message to everyone, to a ``room`` or ``to`` one user, and
        wait for the server to accept it. A message to everyone returns its
        offset; once joined, it is kept and sent again until the server
        acknowledges it, even across reconnections."""
        if room is not None and to is not None:
            raise ValueError("give room or to, not both")
        if room is not None:
            await self._call("roommessage", {"room": room, "message": text}, timeout)
        elif to is not None:
            await self._call("direct", {"to": to, "message": text}, timeout)
        elif self._wanted_name is None:
            reply = await self._call("message", text, timeout)  # not joined: the server says why
            return reply.get("offset")
        else:
            return await self._send_reliably(text, timeout)
        return None

    async def _send_reliably(self, text: str, timeout: float) -> int:
        """Send a public message under an id of its own until the server
        acknowledges it; return its offset. On a timeout it stays queued
        (see ``pending``) and is still sent after a reconnection."""
        outgoing = _Outgoing(uuid.uuid4().hex, text, asyncio.get_running_loop().create_future())
        self._outbox[outgoing.id] = outgoing
        self._changed("pending")
        self._start(self._flush())
        # asyncio.wait leaves the message queued when it times out (and, unlike
        # wait_for on Python 3.11, never swallows a kernel interrupt).
        await asyncio.wait((outgoing.done,), timeout=timeout)
        if not outgoing.done.done():
            raise WaitTimeout(
                f"the server has not acknowledged the message within {timeout:g} s; "
                f"it stays queued and is sent again when the client reconnects")
        return outgoing.done.result()

    async def _flush(self) -> None:
        """Send the queued messages in order, each until acknowledged, while
        this client is connected and joined."""
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:
            while self._outbox and self.connected and self.name is not None:
                outgoing = next(iter(self._outbox.values()))
                try:
                    reply = await self._call(
                        "message", (outgoing.text, outgoing.id), self.ack_timeout)
                except WaitTimeout:
                    continue  # lost on the way, or the server is slow: again
                except ConnectionError:
                    return  # sent again once reconnected
                except ChatRefused as refusal:
                    if refusal.retry_after is not None:
                        # Too fast (a long queue sent after a reconnection):
                        # the server said when it will take it.
                        await asyncio.sleep(min(refusal.retry_after, self.ack_timeout))
                        continue
                    self._finish(outgoing, error=refusal)
                else:
                    self._finish(outgoing, offset=reply["offset"])

    def _finish(self, outgoing: _Outgoing, *, offset: int = 0,
                error: BaseException | None = None) -> None:
        self._outbox.pop(outgoing.id, None)
        if not outgoing.done.done():
            if error is not None:
                outgoing.done.set_exception(error)
                outgoing.done.exception()  # a sender that timed out no longer waits
            else:
                outgoing.done.set_result(offset)
        self._changed("pending")

    async def join(self, room: str, *, timeout: float = 5.0) -> list[str]:
        """Enter ``room``; return the rooms this client is now in."""
        return await self._move("join", room, timeout)

    async def leave(self, room: str, *, timeout: float = 5.0) -> list[str]:
        """Leave ``room``; return the rooms this client is now in."""
        return await self._move("leave", room, timeout)

    async def _move(self, event: str, room: str, timeout: float) -> list[str]:
        reply = await self._call(event, room, timeout)
        self.rooms = list(reply["rooms"])
        self._changed("rooms")
        return self.rooms

    async def disconnect(self) -> None:
        """Leave the chat and close the connection (safe to call again).
        Messages still waiting for an acknowledgement are given up."""
        self._wanted_name = None
        self.offline = False
        await self._hang_up()
        for outgoing in list(self._outbox.values()):
            failed = ConnectionError("the client disconnected before the server acknowledged")
            self._finish(outgoing, error=failed)

    async def go_offline(self) -> None:
        """Drop the connection as a failing network would, keeping the name,
        the history and the messages waiting to go; :meth:`go_online` comes
        back and catches up."""
        if self._wanted_name is None:
            raise ConnectionError("go_offline() is for a client that has joined with add_user()")
        self.offline = True
        await self._hang_up()
        self._changed("state")

    async def go_online(self, *, timeout: float = 5.0) -> None:
        """Reconnect after :meth:`go_offline`: join again under the same
        name, receive what was missed, send what is waiting; return once
        all that is done."""
        if self._wanted_name is None:
            raise ConnectionError("go_online() follows go_offline()")
        await self.connect(timeout=timeout, auth=self._auth)
        self.offline = False
        await self.wait_until(
            lambda: self.name is not None and self.caught_up and not self._outbox,
            timeout=timeout, what="the client rejoined, caught up and sent what was waiting")

    async def _hang_up(self) -> None:
        await self.sio.shutdown()  # also ends a reconnection in progress
        for task in list(self._tasks):
            task.cancel()
        if self.state != "disconnected":
            self._on_disconnect("client disconnect")

    def _start(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- waiting --------------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], Any], *, timeout: float = 5.0, what: str = "the condition holds"
    ) -> Any:
        """Wait until ``predicate()`` is true (checked after every change)."""
        return await self._changes.wait_until(
            predicate, timeout=timeout, what=f"{what} (client {self._label()})")

    async def wait_for_message(
        self,
        *,
        user: str | None = None,
        text: str | None = None,
        room: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
    ) -> Message:
        """Wait until ``count`` messages match (from ``user``, with ``text``,
        in ``room``); return the last of them. Messages that already arrived
        count, so there is no race with a send just before."""
        def matching() -> list[Message]:
            return [
                m for m in self.messages
                if (user is None or m.user == user)
                and (text is None or m.text == text)
                and (room is None or m.room == room)
            ]

        wanted = " ".join(filter(None, [
            f"from {user!r}" if user is not None else "",
            f"saying {text!r}" if text is not None else "",
            f"in room {room!r}" if room is not None else "",
        ]))
        def enough() -> list[Message] | None:
            found = matching()
            return found if len(found) >= count else None

        found = await self.wait_until(
            enough,
            timeout=timeout,
            what=f"{count} message(s) {wanted} arrived".replace("  ", " "),
        )
        return found[count - 1]

    async def wait_for_users(
        self, count: int | None = None, *, names: list[str] | None = None, timeout: float = 5.0
    ) -> list[str]:
        """Wait until the users list has ``count`` names, or holds exactly
        ``names`` (in any order); return it."""
        if count is None and names is None:
            raise ValueError("give count or names")

        def ready() -> bool:
            if names is not None:
                return sorted(self.users) == sorted(names)
            return len(self.users) == count

        what = f"the users list is {sorted(names)}" if names is not None \
            else f"the users list has {count} name(s)"
        await self.wait_until(ready, timeout=timeout, what=what)
        return list(self.users)

    async def wait_for_error(self, *, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """Wait until the server has sent ``count`` errors; return the last."""
        await self.wait_until(lambda: len(self.errors) >= count, timeout=timeout,
                              what=f"{count} error(s) arrived")
        return self.errors[count - 1]

    def _label(self) -> str:
        return repr(self.name or self._wanted_name or "(no name yet)")

    def __repr__(self) -> str:
        return f"<ChatClient {self._label()} {self.state}>"


async def disconnect_all() -> None:
    """Disconnect every chat client created on this event loop."""
    loop = asyncio.get_running_loop()
    for client in list(_clients):
        if client._loop is loop:
            await client.disconnect()

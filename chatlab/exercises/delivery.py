"""Checks for lesson 06 · Delivery guarantees.

The exercise: a function ``make_reliable_server()`` that returns a new
``socketio.AsyncServer`` which loses no message and doubles none:

* ``message(sid, text, message_id=None)`` stores a message once per id (a
  message without an id is always new), gives it the next offset (1, 2, 3,
  …), sends everyone ``message`` ``{"message": text, "offset": offset}`` the
  first time only, and acknowledges with ``{"ok": True, "offset": offset}``,
  a message sent again with the same id included (with its first offset);
* ``connect(sid, environ, auth)`` reads ``auth["serverOffset"]`` (0 when
  there is no auth or no offset in it) and sends that connection alone every
  stored message after that offset, in order, once the connection is made:
  from a task started with ``sio.start_background_task``, because
  python-socketio runs ``connect`` before it accepts the connection.

:func:`check_reliable_server` serves what the learner's function returns,
has Ann and Bob chat (a retry with an id already stored among the messages,
and messages without an id), lets Bob drop and come back with the last
offset he saw, then lets a newcomer without auth in, and checks what each
client received: the offsets, in order, each once, and after the connection.
"""

from __future__ import annotations

from typing import Any, Callable

import socketio

from . import ExerciseFailed, passed
from . import harness
from .harness import CheckRun, call_or_error

__all__ = ["check_reliable_server"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = ("each message is stored once per id and numbered, a retry is acknowledged with "
            "its first offset, and a returning client gets exactly what it missed, in "
            "order, once connected")

Shown = tuple[Any, Any]  # (text, offset) of one received message


def _shown(client: Any) -> list[Shown]:
    """The ``message`` events ``client`` received, as (text, offset); a
    payload that is not the object asked for is reported at once."""
    found = []
    for args in client.received("message"):
        data = args[0] if len(args) == 1 else list(args)
        if not isinstance(data, dict) or "message" not in data or "offset" not in data:
            raise ExerciseFailed(
                f"{client.name} received the 'message' event {data!r}: send one object, "
                f"`{{'message': text, 'offset': offset}}`, so that a client can keep "
                f"the offset of the last message it saw")
        found.append((data["message"], data["offset"]))
    return found


def _listed(messages: list[Shown]) -> str:
    return "[" + ", ".join(f"{offset!r}: {text!r}" for text, offset in messages) + "]"


def _arrived_before_connect(client: Any) -> bool:
    """Whether a ``message`` reached ``client`` before its ``connect``."""
    for entry in client.log.entries:
        if entry.direction == "in" and entry.event == "connect":
            return False
        if entry.direction == "in" and entry.event == "message":
            return True
    return False


class _Chat:
    """What the check expects: the messages stored so far, and what each
    client should have received."""

    def __init__(self, run: CheckRun) -> None:
        self.run = run
        self.stored: list[Shown] = []
        self.expected: dict[Any, list[Shown]] = {}  # client -> what it should have

    def join(self, client: Any, replayed: list[Shown]) -> None:
        self.expected[client] = list(replayed)

    def leave(self, client: Any) -> None:
        del self.expected[client]

    async def send(self, sender: Any, text: str, message_id: str | None,
                   *, retry_of: int | None = None) -> None:
        """``sender`` sends ``text`` (with ``message_id``); the check knows
        whether it is new (``retry_of`` is the offset it was stored under)."""
        args = (text,) if message_id is None else (text, message_id)
        shown_args = ", ".join(repr(arg) for arg in args)
        what = f"{sender.name} sent message({shown_args})"
        if retry_of is not None:
            what += " again (a retry: the acknowledgement of the first one was lost)"
        ack = await call_or_error(
            self.run, sender, "message", args,
            f"{what} and got no acknowledgement within {harness.WAIT:g} s: return "
            f"`{{'ok': True, 'offset': offset}}` from the message handler "
            f"(its return value is the acknowledgement)")
        offset = retry_of if retry_of is not None else len(self.stored) + 1
        if retry_of is None and isinstance(ack, dict) and ack.get("offset") != offset \
                and (text, ack.get("offset")) in self.stored:
            if message_id is None:
                raise ExerciseFailed(
                    f"{what} and the acknowledgement said offset {ack['offset']!r}, the "
                    f"offset of an earlier message without an id: only an id makes two "
                    f"sends one message, so a message without one (message_id is None) "
                    f"is always new: store it and send it")
            raise ExerciseFailed(
                f"{what} and the acknowledgement said offset {ack['offset']!r}, the offset "
                f"of an earlier message with the same text but another id: people say "
                f"the same thing twice; a retry is recognised by its id, not its text")
        _check_ack(what, ack, offset, retry_of is not None)
        if retry_of is None:
            self.stored.append((text, offset))
            for messages in self.expected.values():
                messages.append((text, offset))
        await self.compare(what)

    async def compare(self, after: str, *, extra_hint: str | None = None) -> None:
        """Every client has received exactly what it should have, so far
        (``extra_hint`` explains a message received beyond that)."""
        await self.run.settle(*self.expected)
        self.run.raise_handler_errors()
        for client, expected in self.expected.items():
            got = _shown(client)
            if got == expected:
                continue
            new, extra = expected[len(got):], got[len(expected):]
            if got[:len(expected)] == expected and extra:
                if extra_hint is not None:
                    raise ExerciseFailed(
                        f"{after}, {client.name} received {_listed(extra)}: {extra_hint}")
                if extra[-1] in expected:
                    raise ExerciseFailed(
                        f"{after}, and {client.name} received {_listed(extra)} once more: "
                        f"a message whose id is stored already is a retry; acknowledge it "
                        f"with its first offset, and do not store or send it again")
                raise ExerciseFailed(
                    f"{after}, and {client.name} received {_listed(extra)} as well: "
                    f"send each message once, when it is first stored")
            if got == expected[:len(got)]:
                raise ExerciseFailed(
                    f"{after}, and {client.name} did not receive {_listed(new)}: send each "
                    f"new message to everyone, the sender too: `await sio.emit('message', "
                    f"{{'message': text, 'offset': offset}})`")
            raise ExerciseFailed(
                f"{after}: {client.name} should have received {_listed(expected)}, "
                f"but received {_listed(got)}")


def _check_ack(what: str, ack: Any, offset: int, retry: bool) -> None:
    wanted = {"ok": True, "offset": offset}
    if ack is None:
        raise ExerciseFailed(
            f"{what} and the acknowledgement was None: return {wanted!r} from the "
            f"message handler (its return value is the acknowledgement)"
            + (", for a retry too" if retry else ""))
    if not isinstance(ack, dict) or ack.get("ok") is not True or "offset" not in ack:
        raise ExerciseFailed(
            f"{what} and the acknowledgement was {ack!r}, not {wanted!r}")
    if ack["offset"] != offset:
        if retry:
            raise ExerciseFailed(
                f"{what} and the acknowledgement said offset {ack['offset']!r}: a retry "
                f"is acknowledged with the offset its first copy was stored under, "
                f"{offset} (keep it in a dict, message id -> offset)")
        raise ExerciseFailed(
            f"{what} and the acknowledgement said offset {ack['offset']!r}, not {offset}: "
            f"the stored messages are numbered 1, 2, 3, … in the order the server "
            f"accepted them")


async def _come_back(run: CheckRun, chat: _Chat, name: str, auth: Any,
                     replayed: list[Shown], who: str) -> Any:
    """``name`` connects with ``auth`` and must receive ``replayed`` (what
    it missed), in order, each once, after the connection is made."""
    errors_before = len(run.server.errors) if run.server else 0
    client = await run.try_connect(name, auth)
    if not client.connected:
        new_errors = run.server.errors[errors_before:] if run.server else []
        if new_errors and auth is None and not isinstance(
                new_errors[0].exception, NotImplementedError):
            why = harness._describe(new_errors[0])
            raise ExerciseFailed(
                f"{who} connected without auth and was refused, because {why}: "
                f"without auth, the handler's auth is None; read the offset with "
                f"`(auth or {{}}).get('serverOffset', 0)`")
        run.raise_handler_errors()
        raise ExerciseFailed(f"the server refused {who}, who connected with auth={auth!r}")
    seen = auth.get("serverOffset", 0) if isinstance(auth, dict) else 0
    # The replay task connect started has finished, and what it sent is in.
    await run.settle(client)
    if len(client.received("message")) < len(replayed):
        run.raise_handler_errors()
        got = _shown(client)
        raise ExerciseFailed(
            f"{who} connected with auth={auth!r} and received "
            f"{_listed(got) if got else 'no messages'}, but missed {_listed(replayed)}: "
            f"start a task in connect that sends this connection alone (`to=sid`) "
            f"every stored message after offset {seen}")
    run.raise_handler_errors()
    got = _shown(client)
    if got != replayed:
        offsets = [offset for _text, offset in got]
        hint = ""
        if sorted(got, key=_by_offset) == replayed:
            hint = ": send them in order, oldest first"
        elif seen in offsets:
            hint = (f": offset {seen} had been seen already; send only the messages "
                    f"with a greater offset")
        elif len(got) > len(replayed) and all(shown in got for shown in replayed):
            hint = f": send only the messages after offset {seen}, each once"
        raise ExerciseFailed(
            f"{who} connected with auth={auth!r} and should have received "
            f"{_listed(replayed) if replayed else 'nothing'} (what was missed), "
            f"but received {_listed(got)}{hint}")
    if replayed and _arrived_before_connect(client):
        raise ExerciseFailed(
            f"{who} received the missed messages before the connection was accepted: "
            f"python-socketio runs connect before it accepts a connection, so what "
            f"connect emits arrives before the client counts as connected (a "
            f"python-socketio client cannot even answer it yet). Send the replay from "
            f"a task started in connect: `sio.start_background_task(replay, sid, offset)`")
    chat.join(client, replayed)
    await chat.compare(
        f"when {who} connected",
        extra_hint="the replay is for the connection that asked for it: send it `to=sid`")
    return client


def _by_offset(shown: Shown) -> Any:
    offset = shown[1]
    return offset if isinstance(offset, int) else 0


async def check_reliable_server(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 06 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``message`` stores each message once per id, sends
    it to everyone with its offset the first time and acknowledges it with
    its offset, and whose ``connect`` sends a client every stored message
    after the ``serverOffset`` in its auth, once connected.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-delivery", "the reliable chat server", expected=EXPECTED) as run:
        await run.serve(make_server)
        chat = _Chat(run)
        ann = await _come_back(run, chat, "Ann", {"serverOffset": 0}, [], "Ann")
        bob = await _come_back(run, chat, "Bob", {"serverOffset": 0}, [], "Bob")

        # Offsets and acknowledgements; a retry stored once; ids, not texts.
        await chat.send(ann, "Hello, Bob!", "ann-1")
        await chat.send(bob, "Hi Ann!", "bob-1")
        await chat.send(ann, "Hello, Bob!", "ann-1", retry_of=1)
        await chat.send(bob, "Hi Ann!", "bob-2")  # the same text, but a new message
        # A client that sends no ids (the model tutorial's page): always new.
        await chat.send(ann, "No id on this one.", None)
        await chat.send(ann, "No id on this one.", None)

        # Bob drops; Ann goes on; Bob comes back with the last offset he saw.
        last_seen = _shown(bob)[-1][1]
        chat.leave(bob)
        await bob.disconnect()
        await chat.send(ann, "Bob, are you there?", "ann-2")
        await chat.send(ann, "He will be back.", "ann-3")
        missed = chat.stored[last_seen:]
        bob = await _come_back(run, chat, "Bob (back)", {"serverOffset": last_seen},
                               missed, "Bob, coming back,")
        # His retry of a message the server had stored: acknowledged, not sent.
        await chat.send(bob, "Hi Ann!", "bob-2", retry_of=3)
        await chat.send(ann, "Welcome back, Bob!", "ann-4")

        # Someone new, without auth, has seen nothing: everything, in order.
        await _come_back(run, chat, "Cy", None, list(chat.stored), "Cy, a newcomer,")
        # Someone who has seen it all gets nothing again.
        await _come_back(run, chat, "Dee", {"serverOffset": len(chat.stored)}, [],
                         "Dee, who has seen every message,")
        run.raise_handler_errors()
        passed(EXPECTED)

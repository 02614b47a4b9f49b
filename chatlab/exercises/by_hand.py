"""Checks for lesson 09 · Under the hood.

The exercise: speak Socket.IO by hand. A coroutine function
``speak(url, name, text)`` that, with aiohttp's websocket client only,
opens an Engine.IO websocket to the chat server at ``url``, connects to
the namespace ``/``, joins the chat as ``name`` and sends ``text``.

:func:`check_by_hand` gives it the address of a wire tap in front of the
lesson's chat server, so that it can say which packet was missing or
malformed; it checks on the server side (the chat stored the message, from
``name``) and in the lesson's window (its client received it).

:func:`check_heartbeat`, the optional part: a coroutine function
``stay(url, seconds)`` that stays connected for ``seconds`` by answering
the server's pings. The check serves its own chat with a ping every second
and one second to answer, so that a connection that does not answer is
dropped within two.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..chat_server import ChatServer
from ..client import ChatClient
from ..host import RunningServer
from ..waiting import WaitTimeout
from ..wire.decode import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Decoded
from ..wire.tap import WireTap
from . import ExerciseFailed, NotAttempted, not_attempted, passed

__all__ = ["check_by_hand", "check_heartbeat"]

WHAT = "Socket.IO by hand"
EXPECTED = ("the chat stores the message from the name you joined with, and the window's "
            "client receives it")
HEARTBEAT = "answering the server's pings by hand"
HEARTBEAT_EXPECTED = ("a pong ('3') for every ping ('2'), so that the server keeps the "
                      "connection open as long as you stay")

# A right answer takes well under a second; this bounds a wrong one.
WAIT = 5.0
NAME = "Hand"
TEXT = "Typed by hand, packet by packet"

FRAMING = ("each websocket frame is one Engine.IO packet: its type, then its data. A "
           "Socket.IO event is the Engine.IO message '4' followed by the Socket.IO EVENT "
           "'2' and a JSON array: '42[\"adduser\",\"Hand\"]'")


def _failed(happened: str, hint: str, *, exercise: str = WHAT,
            expected: str = EXPECTED) -> ExerciseFailed:
    return ExerciseFailed(happened, hint=hint, exercise=exercise, expected=expected)


async def _call(function: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                exercise: str, expected: str, timeout: float) -> None:
    """Run the learner's coroutine function, each way it can go wrong said
    as one failure."""
    name = getattr(function, "__name__", "your function")
    if not callable(function):
        raise _failed(f"the check was given {function!r}, which is not a function",
                      "pass the function itself, not what it returns",
                      exercise=exercise, expected=expected)
    try:
        result = function(*args)
        if not asyncio.iscoroutine(result):
            raise _failed(f"{name}() returned {result!r}, not a coroutine",
                          f"write it as `async def {name}(...)`",
                          exercise=exercise, expected=expected)
        await asyncio.wait_for(result, timeout)
    except NotImplementedError:
        raise NotAttempted(exercise) from None
    except ExerciseFailed:
        raise
    except asyncio.TimeoutError:
        raise _failed(f"{name}() had not returned after {timeout:g} s",
                      "it waits for a frame that never comes: check what you sent, and "
                      "stop reading once you have what you need",
                      exercise=exercise, expected=expected) from None
    except Exception as exc:  # the learner's own error, said in one line
        raise _failed(f"{name}() raised {type(exc).__name__}: {exc}",
                      "read the wire log above to see how far it got",
                      exercise=exercise, expected=expected) from None


def _sent(wire: WireTap) -> list[Decoded]:
    return [packet for record, packet in wire.packets() if record.direction == CLIENT_TO_SERVER]


def _diagnose(wire: WireTap, name: str) -> ExerciseFailed:
    """Say from the wire what was missing, first thing first."""
    if not any(record.transport == "websocket" and record.kind == "open"
               for record in wire.records):
        return _failed("no websocket reached the server",
                       "connect to url with the path /socket.io/ and the query "
                       "?EIO=4&transport=websocket (ws:// instead of http://)")
    sent = _sent(wire)
    broken = [p for p in sent if p.error]
    if broken:
        return _failed(f"the server got a frame it cannot read, {broken[0].raw!r} "
                       f"({broken[0].error})", FRAMING)
    if not any(p.sio_type == "CONNECT" for p in sent):
        return _failed("no Socket.IO CONNECT was sent, so the server ignores your events",
                       "after the open packet ('0{...}'), send '40' to connect to the "
                       "namespace /, and wait for the server's '40{\"sid\":...}'")
    if not any(p.event == "adduser" for p in sent):
        return _failed("no 'adduser' event was sent: the chat refuses messages from a "
                       "connection that has not joined",
                       f"send '42[\"adduser\",\"{name}\"]' before the message")
    if not any(p.event == "message" for p in sent):
        return _failed("no 'message' event was sent",
                       "send '42[\"message\",\"your text\"]' after joining")
    refused = [p for record, p in wire.packets() if record.direction == SERVER_TO_CLIENT
               and p.event == "refused"]
    if refused:
        return _failed(f"the chat refused: {refused[0].meaning}",
                       "read what it says in the wire log above")
    return _failed("the message was sent, but the connection closed before the server "
                   "handled it", "wait for your message to come back (the server sends "
                   "it to everyone, you too) before closing the websocket")


async def check_by_hand(speak: Callable[[str, str, str], Awaitable[Any]], chat: ChatServer,
                        server: RunningServer, window: ChatClient, *, name: str = NAME,
                        text: str = TEXT) -> None:
    """Check ``speak(url, name, text)`` against the lesson's chat.

    :param speak: the learner's coroutine function.
    :param chat: the lesson's :class:`~chatlab.ChatServer`.
    :param server: where it runs (``await chat.serve(...)``).
    :param window: the client of a window that must show the message.
    """
    wire = WireTap(server.url, name="check-by-hand")
    await wire.start()
    try:
        await _call(speak, (wire.url, name, text), WHAT, EXPECTED, WAIT)
        if any(r.kind == "open" for r in wire.records):
            # Everything the learner sent has passed the tap once it saw the close.
            try:
                await wire.wait_until(lambda: any(r.kind == "close" for r in wire.records),
                                      timeout=2.0, what="the websocket closed")
            except WaitTimeout:
                pass  # still open: judged on what passed so far
        stored = [m for m in await chat.store.after(0) if m.user == name and m.text == text]
        if not stored:
            raise _diagnose(wire, name)
        try:
            await window.wait_for_message(user=name, text=text, timeout=2.0)
        except WaitTimeout:
            raise _failed(f"the chat stored the message, but {window.name!r}'s window did "
                          "not receive it", "is that window's client connected?") from None
    except NotAttempted:
        not_attempted(f"{WHAT} (speak() is still a stub)")
        return
    finally:
        await wire.stop()
    passed(f"{name!r} joined and said {text!r} by hand; the server stored it and "
           f"{window.name!r}'s window shows it")


async def check_heartbeat(stay: Callable[[str, float], Awaitable[Any]], *,
                          seconds: float = 3.5) -> None:
    """Check ``stay(url, seconds)``: connected for ``seconds`` to a chat that
    pings every second and drops a connection one second after an
    unanswered ping."""
    chat = ChatServer(ping_interval=1, ping_timeout=1)
    server = await chat.serve(name="check-heartbeat")
    wire = WireTap(server.url, name="check-heartbeat")
    await wire.start()
    try:
        await _call(stay, (wire.url, seconds), HEARTBEAT, HEARTBEAT_EXPECTED, seconds + WAIT)
        packets = wire.packets()
        pings = [p for r, p in packets if r.direction == SERVER_TO_CLIENT and p.is_ping]
        pongs = [p for r, p in packets if r.direction == CLIENT_TO_SERVER and p.is_ping]
        dropped = any(r.kind == "close" and r.direction == SERVER_TO_CLIENT
                      for r in wire.records)
        if not pings:
            raise _failed("the server sent no ping: the connection was not open long "
                          "enough", "connect (send '40') and stay for the seconds given",
                          exercise=HEARTBEAT, expected=HEARTBEAT_EXPECTED)
        if dropped or len(pongs) < len(pings) - 1:
            raise _failed(f"the server sent {len(pings)} pings and got {len(pongs)} pongs"
                          + ("; it closed the connection at the ping timeout" if dropped
                             else ""),
                          "when a frame is '2', send '3' at once",
                          exercise=HEARTBEAT, expected=HEARTBEAT_EXPECTED)
    except NotAttempted:
        not_attempted(f"{HEARTBEAT} (stay() is still a stub)")
        return
    finally:
        await wire.stop()
        await server.stop()
    passed(f"{len(pongs)} pongs for {len(pings)} pings: the server kept the connection")

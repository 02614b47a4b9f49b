"""Checks for lesson 02 · Broadcast.

The exercise: a function ``make_server()`` that returns a new
``socketio.AsyncServer`` (an "arrivals board") whose

* ``connect(sid, environ, auth)`` saves the ``name`` from ``auth`` in the
  session and sends ``arrived`` with that name to every *other* client
  (the Python form of ``socket.broadcast.emit``);
* ``shout`` handler sends ``shouted`` with ``{"user": <name>, "text": <text>}``
  to *every* client, the sender included (the Python form of ``io.emit``).

:func:`check_arrivals_board` serves what the learner's function returns on
127.0.0.1, connects three real clients one after another, has one of them
shout, and checks who received what.
"""

from __future__ import annotations

from typing import Callable

import socketio

from . import ExerciseFailed, passed
from .harness import CheckRun

__all__ = ["check_arrivals_board"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = "each newcomer is announced to everyone else, and a shout reaches everyone"

NAMES = ("Ann", "Bob", "Cy")
SHOUT = "Lunch is ready!"


async def check_arrivals_board(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 02 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``connect`` tells every other client ``arrived``
    (the newcomer's name) and whose ``shout`` sends ``shouted``
    ``{"user", "text"}`` to everyone, the shouter included.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-broadcast", "the arrivals board",
                        expected=EXPECTED) as run:
        await run.serve(make_server)

        # Ann, Bob and Cy arrive in turn: those already there hear of each one.
        # (A connect handler has finished by the time the client is in, so a
        # settle() after it is enough to know what it sent.)
        clients = []
        for newcomer in NAMES:
            client = await run.connect(newcomer, auth={"name": newcomer})
            await run.settle()
            run.raise_handler_errors()
            own = _names(client.received("arrived"))
            if newcomer in own:
                raise ExerciseFailed(
                    f"{newcomer} received 'arrived' about {newcomer} ({newcomer}'s own "
                    f"arrival): leave the newcomer out with `skip_sid=sid`")
            for name, earlier in zip(NAMES, clients):
                if newcomer not in _names(earlier.received("arrived")):
                    raise ExerciseFailed(
                        f"{newcomer} connected, but {name} (already connected) received "
                        f"no 'arrived' with {newcomer!r}: tell the others from connect "
                        f"with `await sio.emit('arrived', name, skip_sid=sid)`")
            clients.append(client)
        for index, (name, client) in enumerate(zip(NAMES, clients)):
            got = _names(client.received("arrived"))
            expected = list(NAMES[index + 1:])
            if got != expected:
                raise ExerciseFailed(
                    f"{name} should have received 'arrived' with {expected} (one for each "
                    f"client that connected after {name}, with its name), but got {got}")

        # Bob shouts: everyone hears it, Bob too.
        bob = clients[1]
        await bob.emit("shout", SHOUT)
        expected = {"user": "Bob", "text": SHOUT}
        for name, client in zip(NAMES, clients):
            hint = ("send 'shouted' to everyone, the sender included: `await "
                    "sio.emit('shouted', ...)` without `to` or `skip_sid`") if client is bob \
                else "send 'shouted' to every client with `await sio.emit('shouted', ...)`"
            await run.expect(client, "shouted", 1,
                             f"Bob sent 'shout' {SHOUT!r}, but {name} received no 'shouted': {hint}")
        await run.settle()
        for name, client in zip(NAMES, clients):
            got = client.received("shouted")
            if len(got) > 1:
                raise ExerciseFailed(
                    f"{name} received 'shouted' {len(got)} times for one shout: "
                    f"one `sio.emit` without `to` already reaches everyone")
            if got[0] != (expected,):
                shown = got[0][0] if len(got[0]) == 1 else list(got[0])
                raise ExerciseFailed(
                    f"{name} received 'shouted' with {shown!r}; it should be {expected!r} "
                    f"(the shouter's name from the session, and the text)")
        run.raise_handler_errors()
        passed(EXPECTED)


def _names(received: list[tuple[object, ...]]) -> list[object]:
    """The data of each event received, one argument as itself."""
    return [args[0] if len(args) == 1 else list(args) for args in received]

"""Checks for lesson 03 · Rooms.

The exercise: a function ``make_rooms_server()`` that returns a new
``socketio.AsyncServer`` whose

* ``join(sid, room)`` puts the connection in the chat room ``room``, kept
  inside python-socketio under a prefix (so that a room named like someone's
  connection id is not that connection's private room), and acknowledges
  with the chat rooms the connection is now in: their names without the
  prefix, sorted, without the connection's own id;
* ``say(sid, data)``, with ``data = {"room": ..., "text": ...}``, sends
  ``said`` ``{"room": ..., "text": ..., "from": sid}`` to the *others* in
  that chat room (the Python form of ``socket.to(room).emit``).

:func:`check_rooms_server` serves what the learner's function returns on
127.0.0.1, connects three real clients, and checks who received what.
"""

from __future__ import annotations

from typing import Any, Callable

import socketio

from . import ExerciseFailed, passed
from .harness import CheckRun, call_or_error

__all__ = ["check_rooms_server", "call_or_error"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = ("rooms are kept apart from connection ids, and a room message reaches the others "
            "in the room only")

SECRET = "the server's note for Bob alone"


async def _join(run: CheckRun, client: Any, room: str, expected: list[str]) -> None:
    rooms = await call_or_error(
        run, client, "join", room,
        f"{client.name} sent 'join' {room!r} and got no acknowledgement: `return` the "
        f"list of chat rooms from the handler (its return value is the acknowledgement)")
    run.raise_handler_errors()
    if rooms == expected:
        return
    sid = client.get_sid()
    hint = ""
    if isinstance(rooms, list):
        if sid in rooms:
            hint = (" (it holds the connection's own id: sio.rooms(sid) always includes "
                    "it; leave it out)")
        elif any(isinstance(r, str) and r.endswith(room) and r != room for r in rooms):
            hint = " (strip the prefix from each name before returning it)"
        elif sorted(map(str, rooms)) == expected:
            hint = " (sort the list)"
    raise ExerciseFailed(
        f"{client.name} joined {room!r}; the acknowledgement should be {expected!r}, "
        f"not {rooms!r}{hint}")


async def check_rooms_server(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 03 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``join`` enters a prefixed chat room and
    acknowledges with the chat rooms (sorted, unprefixed, without the own id),
    and whose ``say`` sends ``said`` ``{room, text, from}`` to the others in
    the room.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-rooms", "the rooms server", expected=EXPECTED) as run:
        server = await run.serve(make_server)
        ann, bob, cy = [await run.connect(name) for name in ("Ann", "Bob", "Cy")]

        # Ann and Bob go to "python", Cy to "js".
        await _join(run, ann, "python", ["python"])
        await _join(run, bob, "python", ["python"])
        await _join(run, cy, "js", ["js"])

        # Ann says something in "python": Bob hears it, Ann and Cy do not.
        text = "anyone up for a code review?"
        await call_or_error(run, ann, "say", {"room": "python", "text": text},
                   "Ann sent 'say' and the server never finished handling it")
        await run.settle()
        run.raise_handler_errors()
        expected = {"room": "python", "text": text, "from": ann.get_sid()}
        heard = {c.name: [args for args in c.received("said")] for c in (ann, bob, cy)}
        if heard["Ann"]:
            raise ExerciseFailed(
                "Ann said something in 'python' and received her own 'said': leave the "
                "sender out with `skip_sid=sid` (Node's socket.to(room).emit)")
        if heard["Cy"]:
            raise ExerciseFailed(
                "Ann said something in 'python' and Cy, who is only in 'js', received it: "
                "send to that room alone with `room=` (or `to=`)")
        if not heard["Bob"]:
            raise ExerciseFailed(
                "Ann said something in 'python' but Bob, who joined 'python', received no "
                "'said': send to the same (prefixed) room name that join entered")
        if len(heard["Bob"]) > 1:
            raise ExerciseFailed(
                f"Bob received 'said' {len(heard['Bob'])} times for one message: one "
                f"`sio.emit(..., room=...)` reaches everyone in the room")
        if heard["Bob"][0] != (expected,):
            got = heard["Bob"][0][0] if len(heard["Bob"][0]) == 1 else list(heard["Bob"][0])
            raise ExerciseFailed(
                f"Bob received 'said' with {got!r}; it should be "
                f"{{'room': 'python', 'text': {text!r}, 'from': <Ann's id>}}")

        # Cy joins a "room" named like Bob's id: it must stay a chat room of
        # its own, not Bob's private room.
        bob_id = bob.get_sid()
        try:
            await _join(run, cy, bob_id, sorted(["js", bob_id]))
        except ExerciseFailed:
            if any(isinstance(e.exception, ValueError) and "sid room" in str(e.exception)
                   for e in server.errors):
                raise ExerciseFailed(
                    "Cy asked to join a room named like Bob's connection id, and "
                    "python-socketio's enter_room refused it (ValueError: cannot enter a "
                    "sid room), so the join handler crashed: keep chat rooms under a "
                    "prefix, e.g. `await sio.enter_room(sid, 'room:' + room)`, and any "
                    "room name works") from None
            raise
        await server.sio.emit("secret", SECRET, to=bob_id)
        await run.settle()
        if cy.received("secret"):
            raise ExerciseFailed(
                "Cy joined a room named like Bob's connection id and received what the "
                "server sent to Bob alone (`to=bob_id`): keep chat rooms under a prefix, "
                "e.g. `await sio.enter_room(sid, 'room:' + room)`")
        if bob.received("secret") != [(SECRET,)]:
            raise ExerciseFailed("Bob did not receive what the server sent to his id")
        run.raise_handler_errors()
        passed(EXPECTED)

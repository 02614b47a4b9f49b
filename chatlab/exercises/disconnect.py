"""Checks for lesson 04 · Disconnect.

The exercise: a function ``make_users_server()`` that returns a new
``socketio.AsyncServer`` keeping a users list, as the chat does. Its
``adduser(sid, name)`` (given in the lesson) stores ``users[sid] = name`` and
sends ``users`` (the list of names) to everyone; the learner writes its
``disconnect(sid, reason)``: remove the connection that left, and only it,
then send ``users`` with the new list to everyone.

:func:`check_users_server` serves what the learner's function returns, has
Ann, two users both called Sam and a client that never sent ``adduser``
connect, lets them leave one by one and checks the list Ann is sent each
time.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import socketio

from . import ExerciseFailed, passed
from . import harness
from .harness import CheckRun

__all__ = ["check_users_server"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = ("the users list loses exactly the connection that left, and everyone is sent the "
            "new list as 'users'")


def _lists(client: Any) -> list[Any]:
    return [args[0] if len(args) == 1 else list(args) for args in client.received("users")]


async def _gone(run: CheckRun, client: Any, sid: str) -> None:
    """Disconnect ``client`` and return once the server has finished with it
    (its disconnect handler has run and the connection is forgotten)."""
    assert run.server is not None
    await client.disconnect()
    manager = run.server.sio.manager
    loop = asyncio.get_running_loop()
    deadline = loop.time() + harness.WAIT
    # python-socketio forgets a connection right after its disconnect
    # handler returns; there is no event to wait for on the client side.
    while sid in manager.rooms.get("/", {}).get(None, {}):
        if loop.time() > deadline:
            run.raise_handler_errors()
            raise ExerciseFailed(
                f"the server was still handling {client.name}'s disconnect after "
                f"{harness.WAIT:g} s: does your disconnect handler wait for something?")
        await asyncio.sleep(0.01)


async def _leave(run: CheckRun, leaver: Any, ann: Any, what: str) -> list[Any]:
    """``leaver`` disconnects; return the ``users`` lists Ann was sent for it."""
    before = len(_lists(ann))
    wrong_before = len(ann.received("user"))
    await _gone(run, leaver, leaver.get_sid())
    await run.settle(ann)
    errors = list(run.server.errors) if run.server else []
    if errors:
        error = errors[0]
        if isinstance(error.exception, NotImplementedError):
            run.raise_handler_errors()
        raise ExerciseFailed(
            f"when {what} left, {harness._describe(error)}"
            + (" — someone may leave without ever sending adduser: look the id up "
               "with a default, e.g. `users.pop(sid, None)`"
               if isinstance(error.exception, (KeyError, ValueError)) else ""))
    if len(ann.received("user")) > wrong_before:
        raise ExerciseFailed(
            f"when {what} left, Ann was sent 'user': the event the pages listen for "
            f"is 'users' (the model tutorial's typo)")
    return _lists(ann)[before:]


async def check_users_server(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 04 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``disconnect`` removes the connection that left,
    and only it, from the users list and sends ``users`` to everyone.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-disconnect", "the users list on disconnect",
                        expected=EXPECTED) as run:
        await run.serve(make_server)
        ann = await run.connect("Ann")
        sam1 = await run.connect("Sam (the first)")
        sam2 = await run.connect("Sam (the second)")
        lurker = await run.connect("a client that never sent adduser")
        for client, name in ((ann, "Ann"), (sam1, "Sam"), (sam2, "Sam")):
            await client.emit("adduser", name)
            await run.settle()
            run.raise_handler_errors()
        full = ["Ann", "Sam", "Sam"]
        if not _lists(ann) or _lists(ann)[-1] != full:
            raise ExerciseFailed(
                f"after Ann, Sam and Sam sent adduser, Ann's last 'users' should be {full}, "
                f"not {(_lists(ann) or [None])[-1]!r}: keep the given adduser handler "
                f"as it is")

        # Someone who never joined leaves: the list must not change.
        sent = await _leave(run, lurker, ann, "a client that never sent adduser")
        if any(names != full for names in sent):
            raise ExerciseFailed(
                f"a client that never sent adduser left, and Ann was sent the users "
                f"{sent[-1]!r}: nobody on the list left, so it should stay {full} "
                f"(the model tutorial's indexOf gave -1 here, and splice(-1, 1) "
                f"removed the last user)")

        # The second Sam leaves: one Sam stays.
        sent = await _leave(run, sam2, ann, "the second Sam")
        if not sent:
            raise ExerciseFailed(
                "the second Sam left, and Ann was sent no 'users': send the new list to "
                "everyone with `await sio.emit('users', list(users.values()))`")
        if sent[-1] == ["Ann"]:
            raise ExerciseFailed(
                "the second Sam left, and both Sams left the list: remove the entry of "
                "the connection that left (by its id, `sid`), not every entry with "
                "that name")
        if sent[-1] != ["Ann", "Sam"]:
            raise ExerciseFailed(
                f"the second Sam left, and Ann was sent the users {sent[-1]!r} instead "
                f"of ['Ann', 'Sam']")

        # The first Sam leaves too: the list the server keeps must still be
        # right, which it is not if the wrong Sam was removed before.
        sent = await _leave(run, sam1, ann, "the first Sam")
        if not sent or sent[-1] != ["Ann"]:
            shown = sent[-1] if sent else None
            raise ExerciseFailed(
                f"then the first Sam left, and Ann was sent "
                f"{'no users' if shown is None else repr(shown)} instead of ['Ann']: "
                f"when the second Sam left, the first Sam's entry was removed in his "
                f"place; remove by connection id (`users.pop(sid, None)`), not by name")
        run.raise_handler_errors()
        passed(EXPECTED)

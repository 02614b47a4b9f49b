"""Checks for lesson 01 · Connect and emit.

The exercise: a function ``make_server()`` that returns a new
``socketio.AsyncServer`` (a "name badge" server) whose

* ``connect(sid, environ, auth)`` refuses a client whose ``auth`` carries no
  ``name``, saves the name in the connection's session, and sends that client
  alone the event ``welcome`` with the text ``"Welcome, <name>!"``;
* ``whoami`` handler acknowledges with the name saved for the connection.

:func:`check_name_badge` serves what the learner's function returns on
127.0.0.1, connects real clients to it and says what is right or wrong.
"""

from __future__ import annotations

from typing import Callable

import socketio

from . import ExerciseFailed, passed
from .harness import CheckRun, _describe, call_or_error

__all__ = ["check_name_badge"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = ("the server refuses clients without a name, welcomes each client alone by name, "
            "and remembers who is who")

async def check_name_badge(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 01 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``connect`` refuses clients without a name in
    ``auth``, saves the name in the session and sends ``welcome`` to that
    client alone, and whose ``whoami`` acknowledges with the saved name.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-connect-and-emit", "the name badge server",
                        expected=EXPECTED) as run:
        server = await run.serve(make_server)
        # Ann and Bob give their names; connecting, each must be welcomed alone.
        ann = await run.connect("Ann", auth={"name": "Ann"})
        await run.expect(ann, "welcome", 1,
                         "Ann connected with auth={'name': 'Ann'} but received no 'welcome': "
                         "emit it from connect with `await sio.emit('welcome', ..., to=sid)`")
        bob = await run.connect("Bob", auth={"name": "Bob"})
        await run.expect(bob, "welcome", 1,
                         "Bob connected but received no 'welcome'")
        await run.settle(ann, bob)
        if len(ann.received("welcome")) > 1:
            raise ExerciseFailed(
                "Ann received a 'welcome' meant for Bob: send it to the new client "
                "alone with `to=sid` (without `to`, emit goes to everyone)")
        for client in (ann, bob):
            if len(client.received("welcome")) != 1:
                raise ExerciseFailed(
                    f"{client.name} received 'welcome' {len(client.received('welcome'))} "
                    f"times: send it once, from connect")
            [args] = client.received("welcome")
            expected = f"Welcome, {client.name}!"
            if args != (expected,):
                shown = args[0] if len(args) == 1 else list(args)
                raise ExerciseFailed(
                    f"{client.name}'s 'welcome' should be the text {expected!r}, not {shown!r}")

        # whoami answers from the session, per connection.
        for client, name in ((bob, "Bob"), (ann, "Ann")):
            answer = await call_or_error(
                run, client, "whoami", None,
                "'whoami' got no answer: a handler's return value is the "
                "acknowledgement, so `return` the name")
            if answer is None:
                raise ExerciseFailed(
                    f"{name} asked 'whoami' and got None: `return` the saved name from "
                    f"the handler (its return value is the acknowledgement)")
            if answer != name:
                raise ExerciseFailed(
                    f"{name} asked 'whoami' and got {answer!r} instead of {name!r}: "
                    f"save the name with `await sio.save_session(sid, ...)` in connect "
                    f"and read it back with `await sio.get_session(sid)`")
        run.raise_handler_errors()

        # A client without a name is refused, on purpose rather than by a crash.
        for auth in (None, {"token": "no name here"}):
            errors_before = len(server.errors)
            nameless = await run.try_connect("Nameless", auth=auth)
            if nameless.connected:
                raise ExerciseFailed(
                    f"a client that connected with auth={auth!r} was let in: refuse it "
                    f"in connect with `return False` or "
                    f"`raise socketio.exceptions.ConnectionRefusedError(...)`")
            crashes = [e for e in server.errors[errors_before:]
                       if not isinstance(e.exception, ConnectionRefusedError)]
            if crashes:
                raise ExerciseFailed(
                    f"a client that connected with auth={auth!r} was refused, but only "
                    f"because {_describe(crashes[0])}; check auth before using it, "
                    f"e.g. `if not auth or not auth.get('name'): return False`")
        passed(EXPECTED)

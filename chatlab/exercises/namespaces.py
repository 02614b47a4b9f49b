"""Checks for lesson 08 · Namespaces and middleware.

The exercise: a function ``make_moderated_server()`` that returns a new
``socketio.AsyncServer`` with two namespaces,

* ``/chat``, where a client connects with ``auth={"name": ...}`` (the
  lesson gives this namespace; it maps each name to its sid), and
* ``/admin``, which refuses, with a reason of its own, every client whose
  ``auth`` does not carry ``{"token": ADMIN_TOKEN}``, and whose ``kick``
  event disconnects the named user from ``/chat``: it acknowledges with
  ``True``, or with ``False`` when no such user is there.

:func:`check_admin_namespace` serves what the learner's function returns on
127.0.0.1, connects real clients to both namespaces and says what is right
or wrong.
"""

from __future__ import annotations

from typing import Any, Callable

import socketio

from ..recording import RecordingClient
from . import ExerciseFailed, harness, passed
from .harness import CheckRun, _describe, call_or_error

__all__ = ["ADMIN_TOKEN", "check_admin_namespace"]

ADMIN_TOKEN = "open-sesame"

# python-socketio's reason when a connect handler returns False.
_DEFAULT_REFUSAL = "Connection rejected by server"

EXPECTED = ("/admin lets in only the right token and says why it refuses the others, "
            "and its kick disconnects the named user from /chat alone")


async def _connect(run: CheckRun, name: str, namespace: str, auth: Any) -> RecordingClient:
    """Connect a client called ``name`` to ``namespace`` (and to ``/``, where
    the check's own pings go); it may be refused: then it is returned not
    connected."""
    assert run.server is not None
    client = RecordingClient(name, reconnection=False)
    run.clients.append(client)
    try:
        await client.connect(run.server.url, auth=auth, namespaces=["/", namespace],
                             wait_timeout=harness.WAIT)
    except socketio.exceptions.ConnectionError:
        pass
    return client


async def check_admin_namespace(make_server: Callable[[], socketio.AsyncServer],
                                token: str = ADMIN_TOKEN) -> None:
    """Check the lesson 08 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``/admin`` namespace refuses, with a reason, a
    client without ``auth={"token": token}``, and whose ``kick`` disconnects
    the named user of ``/chat`` and acknowledges with ``True`` (``False``
    for a name that is not there).

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-namespaces", "the /admin namespace", expected=EXPECTED) as run:
        server = await run.serve(make_server)
        if "/admin" not in run.server.sio.namespace_handlers and \
                "/admin" not in run.server.sio.handlers:
            raise ExerciseFailed(
                "the server has no /admin namespace",
                hint='register it: `sio.register_namespace(Admin("/admin"))`')

        # Ann and Bob chat; neither is an admin.
        users = {}
        for name in ("Ann", "Bob"):
            client = await _connect(run, name, "/chat", {"name": name})
            if "/chat" not in client.namespaces:
                run.raise_handler_errors()
                raise ExerciseFailed(
                    f"{name} could not join /chat with auth={{'name': {name!r}}}: keep the "
                    f"lesson's Chat namespace as it is, registered as `Chat(\"/chat\")`")
            users[name] = client

        # Wrong tokens, no token, a chat user's auth: all refused, with a reason.
        for auth in ({"token": "guess"}, None, {"name": "Ann"}):
            errors_before = len(server.errors)
            intruder = await _connect(run, "Intruder", "/admin", auth)
            crashes = server.errors[errors_before:]
            if any(isinstance(e.exception, NotImplementedError) for e in crashes):
                run.raise_handler_errors()  # a stub: not tried yet
            if "/admin" in intruder.namespaces:
                raise ExerciseFailed(
                    f"a client with auth={auth!r} joined /admin: refuse it in the "
                    f"namespace's on_connect unless auth carries the right token")
            if crashes:
                raise ExerciseFailed(
                    f"a client with auth={auth!r} was refused, but only because "
                    f"{_describe(crashes[0])}; read the token with "
                    f"`(auth or {{}}).get('token')`")
            refusals = intruder.received("connect_error", namespace="/admin")
            reason = refusals[-1][0] if refusals and refusals[-1] else None
            message = reason.get("message") if isinstance(reason, dict) else reason
            if not message or message == _DEFAULT_REFUSAL:
                raise ExerciseFailed(
                    f"a client with auth={auth!r} was refused without a reason (its "
                    f"connect_error said {message!r})",
                    hint='raise socketio.exceptions.ConnectionRefusedError("a reason") '
                         "instead of returning False, so that the client can tell why")

        # The right token gets in, and kicks Bob out of /chat.
        admin = await _connect(run, "Admin", "/admin", {"token": token})
        if "/admin" not in admin.namespaces:
            run.raise_handler_errors()
            refusals = admin.received("connect_error", namespace="/admin")
            raise ExerciseFailed(
                f"a client with auth={{'token': {token!r}}}, the right token, was refused"
                + (f" (it was told {refusals[-1][0]!r})" if refusals else ""))
        answer = await _kick(run, admin, "Bob")
        await run.settle()
        bob_out = users["Bob"].log.count("disconnect", namespace="/chat")
        if not bob_out:
            raise ExerciseFailed(
                "the admin kicked 'Bob', but Bob is still in /chat",
                hint="a sid belongs to one namespace: find Bob's /chat sid and "
                     "disconnect it from /chat, `await chat.disconnect(sid)` or "
                     "`await self.server.disconnect(sid, namespace=\"/chat\")`")
        if users["Ann"].log.count("disconnect", namespace="/chat"):
            raise ExerciseFailed("the admin kicked 'Bob', but Ann was disconnected from "
                                 "/chat too: disconnect Bob's sid alone")
        if answer is not True:
            raise ExerciseFailed(f"kick 'Bob' disconnected Bob but answered {answer!r}, "
                                 f"not True: `return True` once he is out")

        # A name that is not (or no longer) in /chat: no one is disconnected.
        for name in ("Bob", "Zed"):
            answer = await _kick(run, admin, name)
            if answer is not False:
                raise ExerciseFailed(
                    f"kick {name!r}, who is not in /chat, answered {answer!r}, not False")
        await run.settle()
        if users["Ann"].log.count("disconnect", namespace="/chat"):
            raise ExerciseFailed("kicking a name that is not in /chat disconnected Ann")
        run.raise_handler_errors()
        passed(EXPECTED)


async def _kick(run: CheckRun, admin: RecordingClient, name: str) -> Any:
    """Send ``kick`` with ``name`` on /admin and return the acknowledgement."""
    answer = await call_or_error(
        run, _OnAdmin(admin), "kick", name,
        "'kick' got no answer: give the Admin namespace an `on_kick(self, sid, name)` "
        "method and `return` True or False")
    return answer


class _OnAdmin:
    """A client whose ``emit`` goes to /admin, for :func:`call_or_error`
    (which emits on the default namespace); the rest is the client's."""

    def __init__(self, client: RecordingClient) -> None:
        self.client = client

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.client, attribute)

    async def emit(self, event: str, data: Any, *, callback: Any) -> None:
        await self.client.emit(event, data, namespace="/admin", callback=callback)

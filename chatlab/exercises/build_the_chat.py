"""Checks for lesson 05 · Build the chat.

The exercise: a function ``make_checked_chat()`` that returns a new
``socketio.AsyncServer`` with the chat's ``adduser`` (given in the lesson:
``users[sid] = name``, then ``users`` to everyone) and a ``message(sid,
text=None)`` handler, written by the learner, that holds every message to
the chat's rules. It refuses, by sending ``error`` ``{"event": "message",
"reason": <a sentence>}`` to the sender alone and nothing to anyone else, a
message

* from a connection that has not sent ``adduser``,
* that is not a string,
* that is empty or only white space,
* that is longer than 200 characters;

and sends any other message to everyone as ``message`` ``{"message": text,
"user": <the sender's name>, "id": sid}``, exactly as it was sent (markup
included: it is the page's job to show it as text).

:func:`check_message_rules` serves what the learner's function returns and
sends it good and bad messages from real clients.
"""

from __future__ import annotations

from typing import Any, Callable

import socketio

from . import ExerciseFailed, passed
from .harness import CheckRun, _describe, call_or_error

__all__ = ["check_message_rules", "LIMIT"]

# What a right answer does: the verdict when it passes, and what a failure
# says was expected.
EXPECTED = ("bad messages are refused to their sender alone, good ones reach everyone "
            "unchanged")

LIMIT = 200

# The rules, as a failure names them.
JOINED_FIRST = ("refuse a message from a connection that has not sent adduser (its sid "
                "is not in `users`) with 'error', before anything else")
NOT_BLANK = ("refuse a message that is empty or only white space (`not text.strip()`) "
             "with 'error'")
NOT_TOO_LONG = f"refuse a message longer than {LIMIT} characters with 'error'"
A_STRING = ("refuse a message that is not a string (a number, a list, or no data) with "
            "'error' before using it as text: check `isinstance(text, str)` first")

# (who sends it, the data, why it must be refused, the rule that refuses it);
# None sends no data at all.
BAD = [
    ("Stranger", "hello", "a message from a connection that has not sent adduser",
     JOINED_FIRST),
    ("Ann", "", "an empty message", NOT_BLANK),
    ("Ann", "   \n ", "a message of white space only", NOT_BLANK),
    ("Ann", "x" * (LIMIT + 1), f"a message of {LIMIT + 1} characters", NOT_TOO_LONG),
    ("Ann", 42, "a message that is a number, not a string", A_STRING),
    ("Ann", ["hi"], "a message that is a list, not a string", A_STRING),
    ("Ann", None, "a message event with no data", A_STRING),
]

GOOD = ["<b>hi</b> & <img src=x onerror=alert(1)>", "y" * LIMIT, "  two\nlines  "]


async def _send(run: CheckRun, client: Any, data: Any, what: str) -> None:
    """Send ``message`` and return once the handler has finished and every
    client has received what it sent."""
    await call_or_error(
        run, client, "message", data,
        f"{client.name} sent {what} and the server never finished handling it")
    await run.settle()
    run.raise_handler_errors()


def _shown(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 40 else text[:37] + "…"


async def check_message_rules(make_server: Callable[[], socketio.AsyncServer]) -> None:
    """Check the lesson 05 exercise: ``make_server()`` returns a new
    ``AsyncServer`` whose ``message`` handler refuses messages before
    ``adduser``, non-strings, blank and over-long messages with ``error``
    ``{event, reason}`` to the sender alone, and sends the others to everyone
    as ``message`` ``{message, user, id}``, unchanged.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed` saying
    what is wrong, prints ``– not tried yet: …`` while ``make_server`` (or a
    handler) still raises ``NotImplementedError``.
    """
    async with CheckRun("check-build-the-chat", "the message rules",
                        expected=EXPECTED) as run:
        await run.serve(make_server)
        ann, bob = await run.connect("Ann"), await run.connect("Bob")
        stranger = await run.connect("Stranger")
        clients = {"Ann": ann, "Bob": bob, "Stranger": stranger}
        for client in (ann, bob):
            await client.emit("adduser", client.name)
            await run.settle()
            run.raise_handler_errors()

        for sender_name, data, what, rule in BAD:
            sender = clients[sender_name]
            errors_before = {c.name: len(c.received("error")) for c in clients.values()}
            messages_before = {c.name: len(c.received("message")) for c in clients.values()}
            crashes_before = len(run.server.errors)
            try:
                await _send(run, sender, data, what)
            except ExerciseFailed:
                crashes = [e for e in run.server.errors[crashes_before:]
                           if e.event == "message"]
                if not crashes:
                    raise
                # The handler crashed on a message it should have refused:
                # name the rule it broke, not only the Python error.
                raise ExerciseFailed(
                    f"{sender_name} sent {what} ({_shown(data)}), and "
                    f"{_describe(crashes[0])}", hint=rule) from None
            for client in clients.values():
                if len(client.received("message")) > messages_before[client.name]:
                    raise ExerciseFailed(
                        f"{sender_name} sent {what} ({_shown(data)}), and {client.name} "
                        f"received it as 'message'",
                        hint=f"{rule}, and send nothing to anyone else (`return` right "
                             f"after sending the error)")
            new_errors = sender.received("error")[errors_before[sender_name]:]
            if not new_errors:
                raise ExerciseFailed(
                    f"{sender_name} sent {what} ({_shown(data)}) and received no 'error'",
                    hint="refuse it with `await sio.emit('error', {'event': 'message', "
                         "'reason': ...}, to=sid)`")
            if len(new_errors) > 1:
                raise ExerciseFailed(
                    f"{sender_name} sent {what} and received {len(new_errors)} errors for "
                    f"it", hint="send one, then `return`")
            args = new_errors[0]
            payload = args[0] if len(args) == 1 else list(args)
            if not (isinstance(payload, dict) and set(payload) == {"event", "reason"}
                    and payload["event"] == "message"
                    and isinstance(payload["reason"], str) and payload["reason"].strip()):
                raise ExerciseFailed(
                    f"{sender_name} sent {what} and received the error {payload!r}",
                    hint="send the error as {'event': 'message', 'reason': <a sentence "
                         "saying why>}")
            for client in clients.values():
                if client is not sender and \
                        len(client.received("error")) > errors_before[client.name]:
                    raise ExerciseFailed(
                        f"{sender_name} sent {what}, and {client.name} received the error "
                        f"too", hint="send it to the sender alone with `to=sid`")

        for text in GOOD:
            counts = {c.name: len(c.received("message")) for c in clients.values()}
            refusals = len(ann.received("error"))
            await _send(run, ann, text, f"the message {_shown(text)}")
            if len(ann.received("error")) > refusals:
                refused = ann.received("error")[-1]
                raise ExerciseFailed(
                    f"Ann sent the message {_shown(text)}, which is fine, and was refused "
                    f"with {refused[0] if len(refused) == 1 else list(refused)!r}",
                    hint=f"refuse only what the rules say: before adduser, not a string, "
                         f"blank, or longer than {LIMIT} characters (exactly {LIMIT} is "
                         f"fine)")
            expected = {"message": text, "user": "Ann", "id": ann.get_sid()}
            for client in clients.values():
                got = client.received("message")[counts[client.name]:]
                if not got:
                    raise ExerciseFailed(
                        f"Ann sent the message {_shown(text)}, and {client.name} did not "
                        f"receive it", hint="send good messages to everyone with "
                                            "`await sio.emit('message', ...)`")
                if len(got) > 1:
                    raise ExerciseFailed(
                        f"{client.name} received Ann's message {len(got)} times",
                        hint="one `await sio.emit('message', ...)` without `to` already "
                             "reaches everyone")
                payload = got[0][0] if len(got[0]) == 1 else list(got[0])
                if payload != expected:
                    hint = None
                    if isinstance(payload, dict) and payload.get("message") != text:
                        hint = ("keep the text exactly as sent (no escaping or trimming "
                                "on the server; a page shows it with textContent)")
                    raise ExerciseFailed(
                        f"Ann sent the message {_shown(text)}, and {client.name} received "
                        f"{_shown(payload)}; it should be {{'message': <the text>, "
                        f"'user': 'Ann', 'id': <Ann's id>}}", hint=hint)
        passed(EXPECTED)

"""The chat's protocol, defined once: every event, who sends it, what it carries.

The chat server checks what clients send against :data:`CLIENT_EVENTS`,
the README's table is :func:`markdown_table` (a test compares them), and
the tests take their expectations from here. The first five rows are the
model tutorial's protocol, which its own browser page speaks unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .validation import describe

__all__ = [
    "CLIENT_EVENTS",
    "EVENTS",
    "ClientEvent",
    "Event",
    "HISTORY_KEYS",
    "MESSAGE_KEYS",
    "PRIVATE_KEYS",
    "REFUSAL_KEYS",
    "argument_problem",
    "markdown_table",
]

# The payload keys of the events the server sends, in the order they are
# documented (clients must not rely on the order of a JSON object's keys).
MESSAGE_KEYS = ("message", "user", "id")  # plus offset (public), room or to
PRIVATE_KEYS = ("id", "name", "msg")
HISTORY_KEYS = ("chat", "after", "last")
REFUSAL_KEYS = ("event", "reason")  # plus retryAfter when it may work later


@dataclass(frozen=True)
class Event:
    """One row of the protocol table."""

    name: str
    direction: str
    payload: str


@dataclass(frozen=True)
class ClientEvent(Event):
    """An event a client may send, and the arguments it takes.

    ``arguments`` names what each required argument is, ``optional`` the
    ones that may follow; ``keys``, when given, are the exact keys of the
    first argument, which must be an object.
    """

    arguments: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()


EVENTS: tuple[Event, ...] = (
    ClientEvent("adduser", "client → server", "the user name (string)",
                arguments=("your user name",)),
    ClientEvent("message", "client → server",
                "the message text (string), and optionally a message id",
                arguments=("the message text",), optional=("a message id",)),
    Event("users", "server → all", "the names of the users now connected"),
    Event("private", "server → the new user", "`{id, name, msg}`"),
    Event("message", "server → all", "`{message, user, id, offset}`"),
    Event("history", "server → a new connection",
          "`{chat, after, last}`, then the stored messages after `after`"),
    ClientEvent("join", "client → server", "a room name, acknowledged with `{ok, rooms}`",
                arguments=("the room name",)),
    ClientEvent("leave", "client → server", "a room name, acknowledged with `{ok, rooms}`",
                arguments=("the room name",)),
    ClientEvent("roommessage", "client → server",
                "`{room, message}`, sent to the room as `message` with a `room` key",
                arguments=("{room, message}",), keys=("room", "message")),
    ClientEvent("direct", "client → server",
                "`{to, message}`, sent to that user and the sender as `message` with a `to` key",
                arguments=("{to, message}",), keys=("to", "message")),
    Event("error", "server → the sender", "`{event, reason}`: the event was refused, and why"),
)

CLIENT_EVENTS: dict[str, ClientEvent] = {
    event.name: event for event in EVENTS if isinstance(event, ClientEvent)}


def argument_problem(event: ClientEvent, args: tuple[Any, ...]) -> str | None:
    """Why ``args`` do not fit ``event``, or None when they do. (The values
    themselves are checked by :mod:`chatlab.validation`.)"""
    least, most = len(event.arguments), len(event.arguments) + len(event.optional)
    if len(args) < least:
        return f"{event.name} needs {event.arguments[len(args)]}"
    if len(args) > most:
        if event.optional:
            return (f"{event.name} takes {' and '.join(event.arguments)} and, optionally, "
                    f"{' and '.join(event.optional)}; not {len(args)} arguments")
        return f"{event.name} takes one argument ({event.arguments[0]}), not {len(args)}"
    if event.keys:
        return _keys_problem(event, args[0])
    return None


def _keys_problem(event: ClientEvent, data: Any) -> str | None:
    expected = "{" + ", ".join(event.keys) + "}"
    if not isinstance(data, dict):
        return f"{event.name} needs an object {expected}, not {describe(data)}"
    if set(data) != set(event.keys):
        return f"{event.name} needs an object with exactly the keys {expected}"
    return None


def markdown_table() -> str:
    """The protocol as the README shows it."""
    rows = ["| direction | event | payload |", "|---|---|---|"]
    rows += [f"| {e.direction} | `{e.name}` | {e.payload} |" for e in EVENTS]
    return "\n".join(rows)

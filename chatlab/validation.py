"""The rules the chat server holds every client's input to.

Each check returns the cleaned value or raises :class:`Refused` with a
sentence a learner can act on. Nothing here knows about sockets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Limits",
    "Refused",
    "check_message",
    "check_message_id",
    "check_name",
    "check_resume",
    "check_room",
    "describe",
]

# A client's own id for a message: long enough for a UUID or
# "<socket id>-<counter>", short and plain enough to store and show.
MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,64}")
MESSAGE_ID_RULE = "1 to 64 visible ASCII characters (letters, digits, punctuation; no spaces)"


@dataclass(frozen=True)
class Limits:
    """What the chat server accepts from each client.

    ``name``, ``message`` and ``room`` are lengths in characters.
    ``events_per_second`` and ``burst`` limit how fast one connection may
    send events (see :mod:`chatlab.ratelimit`); 0 events a second means no
    limit. ``http_buffer_size`` is the
    largest Engine.IO packet or polling request body accepted, in bytes:
    64 KiB is well above the biggest valid event (a 2,000-character message
    of 4-byte characters is at most 24,000 bytes of JSON, escaped as
    ``\\ud83d\\ude00``), and far below engineio's default of 1 MB.

    ``rooms`` is how many chat rooms one connection may be in at once.
    ``outgoing_buffer`` is how many bytes of packets the server holds for
    one connection that has not read them yet; a connection that stays over
    it is disconnected (it can reconnect and catch up by its offset).
    ``replay`` is the most messages one (re)connection is sent from the
    history; ``kept`` how many the in-memory store keeps (a database file
    keeps them all).
    """

    name: int = 32
    message: int = 2000
    room: int = 32
    events_per_second: float = 20
    burst: int = 40
    http_buffer_size: int = 64 * 1024
    rooms: int = 20
    outgoing_buffer: int = 1024 * 1024
    replay: int = 1000
    kept: int = 10_000


class Refused(Exception):
    """An event the server will not act on, and why."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after  # set when the same event may succeed later


def describe(value: Any) -> str:
    """Name a JSON value's type the way a JavaScript programmer would."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # binary data and the like


def _check_characters(text: str, what: str, allowed: str = "") -> None:
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise Refused(f"{what} contains an unpaired surrogate (invalid UTF-16)")
        if category == "Cc" and char not in allowed:
            raise Refused(f"{what} contains the control character U+{ord(char):04X}")


def _check_visible(text: str, what: str) -> None:
    # strip() keeps zero-width spaces, joiners, a BOM and lone combining
    # marks: a name of only those would show as nothing at all.
    if not any(unicodedata.category(char)[0] in "LNPS" for char in text):
        raise Refused(f"{what} has no visible character")


def _check_label(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise Refused(f"{what} must be a string, not {describe(value)}")
    label = value.strip()
    if not label:
        raise Refused(f"{what} must not be empty")
    if len(label) > limit:
        raise Refused(f"{what} is {len(label)} characters long; the limit is {limit}")
    _check_characters(label, what)
    _check_visible(label, what)
    return label


def check_name(value: Any, limits: Limits = Limits()) -> str:
    """A user name: a string, trimmed, not empty, at most ``limits.name``."""
    return _check_label(value, "the user name", limits.name)


def check_room(value: Any, limits: Limits = Limits()) -> str:
    """A room name: the same rules as a user name, ``limits.room`` long."""
    return _check_label(value, "the room name", limits.room)


def check_message(value: Any, limits: Limits = Limits()) -> str:
    """A message: a string of at most ``limits.message`` characters that is
    not only white space. It is kept as sent (its spacing may matter)."""
    if not isinstance(value, str):
        raise Refused(f"the message must be a string, not {describe(value)}")
    if not value.strip():
        raise Refused("the message must not be empty")
    if len(value) > limits.message:
        raise Refused(
            f"the message is {len(value)} characters long; the limit is {limits.message}")
    _check_characters(value, "the message", allowed="\n\t")
    _check_visible(value, "the message")
    return value


def check_message_id(value: Any) -> str | None:
    """A message id (see ``MESSAGE_ID``), or None when the sender gave none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(f"the message id must be a string, not {describe(value)}")
    if not MESSAGE_ID.fullmatch(value):
        raise Refused(f"the message id must be {MESSAGE_ID_RULE}")
    return value


def check_resume(auth: Any) -> tuple[str | None, int | None]:
    """Where a connecting client's history ends: the ``chat`` id and the
    ``serverOffset`` in its connect ``auth`` (each None when not given)."""
    if not isinstance(auth, dict):
        return None, None
    chat = auth.get("chat")
    if chat is not None and not (isinstance(chat, str) and MESSAGE_ID.fullmatch(chat)):
        shown = "a string of other characters" if isinstance(chat, str) else describe(chat)
        raise Refused(f"auth.chat must be a chat id as the server sent it in history, "
                      f"not {shown}")
    offset = auth.get("serverOffset")
    if isinstance(offset, float) and offset.is_integer() and offset >= 0:
        offset = int(offset)  # 3.0: JavaScript has no other way to say 3
    if offset is not None and (
            isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        number = isinstance(offset, (int, float)) and not isinstance(offset, bool)
        shown = repr(offset) if number else describe(offset)
        raise Refused(f"auth.serverOffset must be a whole number of at least 0 "
                      f"(the last offset this client saw), not {shown}")
    return chat, offset

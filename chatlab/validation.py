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
    "name_key",
]

# A client's own id for a message: long enough for a UUID or
# "<socket id>-<counter>", short and plain enough to store and show.
MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,64}")
MESSAGE_ID_RULE = "1 to 64 visible ASCII characters (letters, digits, punctuation; no spaces)"

# The largest offset a client may send: JavaScript's Number.MAX_SAFE_INTEGER.
MAX_OFFSET = 2**53 - 1


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
    one connection that has not read them yet; a connection over it for 2 s
    in a row, or over twice it at once, is disconnected (it can reconnect
    and catch up by its offset). A websocket's own buffers hold about
    320 KiB before anything waits, so a bound far below that means little.
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


# Format characters (category Cf) draw nothing, apart from these signs that
# are drawn over the digits after them.
_PREPENDED_MARKS = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2"
    "\U000110bd\U000110cd")
# Letters that draw nothing: the Hangul fillers (invisible: refused in
# names, as format characters are), and the blank Braille cell (a space).
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_BLANKS = _FILLERS | {"\u2800"}
# Ignored when names are compared (Unicode's Default_Ignorable_Code_Point,
# beyond category Cf): variation selectors, the grapheme joiner, fillers.
_IGNORED = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))
# The bidirectional embeddings and overrides (LRE, RLE, PDF, LRO, RLO): an
# override draws the text after it in the order it says, not as it was sent.
_EMBEDDINGS = frozenset("\u202a\u202b\u202c\u202d\u202e")
_ZWNJ, _ZWJ = "\u200c", "\u200d"
# What check_message() looks at one character at a time: the control
# characters (category Cc), the surrogates (Cs) and the embeddings and
# overrides. Most messages have none, and one scan for them is cheaper.
_MESSAGE_SUSPECTS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e]")
# A printable ASCII character other than the space: a letter, digit,
# punctuation or symbol, so the text has something visible.
_ASCII_VISIBLE = re.compile("[!-~]")
# The scripts whose letters look like one another's (a Latin "a", a
# Cyrillic "а", a Greek "α"): a name must not mix them in one word.
_ALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def _character(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``, as a reason names a character."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} ({name})" if name else f"U+{ord(char):04X}"


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
    if not any(unicodedata.category(char)[0] in "LNPS" and char not in _BLANKS
               for char in text):
        raise Refused(f"{what} has no visible character")


def _invisible(char: str) -> bool:
    return (unicodedata.category(char) == "Cf" and char not in _PREPENDED_MARKS
            or char in _FILLERS)


def _emoji(char: str) -> bool:
    # A pictograph, a skin tone, or the selector that asks for emoji style.
    return unicodedata.category(char) in ("So", "Sk") or char == "\ufe0f"


def _joins(char: str) -> bool:
    # A letter or mark of a script whose letters join or form conjuncts
    # (Arabic, Persian, the Indic scripts...): not ASCII, Latin, Greek, Cyrillic.
    return (unicodedata.category(char)[0] in "LM" and not char.isascii()
            and unicodedata.name(char, "").split(" ")[0] not in _ALIKE_SCRIPTS)


def _joiner_needed(text: str, index: int) -> bool:
    """Whether the ZWJ or ZWNJ at ``index`` is one that real names need:
    a ZWJ inside an emoji sequence (👩‍💻), or either between the letters
    of a script that joins (ZWNJ in Persian)."""
    if index == 0 or index == len(text) - 1:
        return False
    before, after = text[index - 1], text[index + 1]
    if text[index] == _ZWJ and _emoji(before) and _emoji(after):
        return True
    return _joins(before) and _joins(after)


def _check_invisible(label: str, what: str) -> None:
    # An invisible character lets a name pass for another ("ad\u200bmin"),
    # and a bidirectional override reverses the text drawn after it.
    for index, char in enumerate(label):
        if _invisible(char) and not (char in (_ZWJ, _ZWNJ) and _joiner_needed(label, index)):
            raise Refused(f"{what} contains the invisible character {_character(char)}")


def _check_scripts(label: str, what: str) -> None:
    # "аdmin" with a Cyrillic "а" is drawn as "admin": letters of scripts
    # that look alike may not share a word (Unicode's restriction levels
    # for identifiers forbid the same mix in a whole name).
    for word in label.split():
        letters: dict[str, list[str]] = {}
        for char in word:
            drawn = unicodedata.normalize("NFKC", char)[:1]  # "ａ" is a Latin "a"
            script = unicodedata.name(drawn, "").split(" ")[0]
            if drawn.isalpha() and script in _ALIKE_SCRIPTS:
                letters.setdefault(script, []).append(char)
        if len(letters) > 1:
            most, fewer = sorted(letters, key=lambda script: -len(letters[script]))[:2]
            odd = letters[fewer][0]
            raise Refused(
                f"{what} mixes {most.title()} and {fewer.title()} letters in one word, so "
                f"it could pass for another name: {odd!r} is {_character(odd)}")


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
    _check_invisible(label, what)
    _check_scripts(label, what)
    return label


def check_name(value: Any, limits: Limits = Limits()) -> str:
    """A user name: a string, trimmed, not empty, at most ``limits.name``,
    with no invisible character (beyond the joiners inside an emoji or
    between joining letters) and no word that mixes Latin, Cyrillic and
    Greek letters. It is kept as typed; :func:`name_key` says which names
    are the same."""
    return _check_label(value, "the user name", limits.name)


def check_room(value: Any, limits: Limits = Limits()) -> str:
    """A room name: the same rules as a user name, ``limits.room`` long."""
    return _check_label(value, "the room name", limits.room)


def name_key(name: str) -> str:
    """The form in which two names that look the same are equal: NFKC
    (full-width ``ＡＤＭＩＮ`` and mathematical ``𝐚𝐝𝐦𝐢𝐧`` are ``admin``),
    case folded, without the characters Unicode says to ignore (joiners,
    variation selectors), and with runs of white space as one space."""
    text = "".join(char for char in unicodedata.normalize("NFKC", name)
                   if unicodedata.category(char) != "Cf" and char not in _IGNORED)
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.split())


def check_message(value: Any, limits: Limits = Limits()) -> str:
    """A message: a string of at most ``limits.message`` characters that is
    not only white space. It is kept as sent (its spacing may matter), and
    so are the invisible characters that real text needs: the joiners of
    emoji sequences and Persian, the marks and isolates of right-to-left
    text. The embeddings and overrides U+202A to U+202E are refused: an
    override draws text in another order than it was sent."""
    if not isinstance(value, str):
        raise Refused(f"the message must be a string, not {describe(value)}")
    if not value.strip():
        raise Refused("the message must not be empty")
    if len(value) > limits.message:
        raise Refused(
            f"the message is {len(value)} characters long; the limit is {limits.message}")
    suspects = _MESSAGE_SUSPECTS.search(value) is not None
    if suspects:
        _check_characters(value, "the message", allowed="\n\t")
    if _ASCII_VISIBLE.search(value) is None:
        _check_visible(value, "the message")
    if not suspects:
        return value
    for char in value:
        if char in _EMBEDDINGS:
            raise Refused(
                f"the message contains the bidirectional control {_character(char)}, which "
                "can make it read differently from what was sent; for right-to-left text "
                "use the marks U+200E and U+200F, or the isolates U+2066 to U+2069")
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
    offset = sent = auth.get("serverOffset")
    if isinstance(offset, float) and offset.is_integer() and offset >= 0:
        offset = int(offset)  # 3.0: JavaScript has no other way to say 3
    if offset is not None and (
            isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        number = isinstance(offset, (int, float)) and not isinstance(offset, bool)
        shown = repr(offset) if number else describe(offset)
        raise Refused(f"auth.serverOffset must be a whole number of at least 0 "
                      f"(the last offset this client saw), not {shown}")
    if offset is not None and offset > MAX_OFFSET:
        # No chat gets there, and SQLite stops at 2**63 - 1.
        shown = "a number of more than 20 digits" if isinstance(sent, int) and sent >= 10**20 \
            else repr(sent)
        raise Refused(f"auth.serverOffset must be at most {MAX_OFFSET} (the largest "
                      f"whole number JavaScript holds exactly), not {shown}")
    return chat, offset

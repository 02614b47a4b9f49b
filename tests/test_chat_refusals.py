"""Every refused input: an ``error`` to the sender alone, the same payload as
the acknowledgement, nothing stored, and the chat still serving everyone."""

from __future__ import annotations

import pytest

from chatlab.protocol import CLIENT_EVENTS, REFUSAL_KEYS

pytestmark = pytest.mark.integration

# Each test that uses the chat runs on the plain server and the fast one.
FAST_TOO = True


LONG_NAME = "n" * 33
LONG_MESSAGE = "m" * 2001

# (event, arguments, words the reason must contain)
BEFORE_ADDUSER = [
    ("message", ("hello",), "adduser"),
    ("join", ("room",), "adduser"),
    ("leave", ("room",), "adduser"),
    ("roommessage", ({"room": "r", "message": "m"},), "adduser"),
    ("direct", ({"to": "ann", "message": "m"},), "adduser"),
]

BAD_NAMES = [
    ((), "needs your user name"),
    ((None,), "not null"),
    ((42,), "not a number"),
    ((True,), "not a boolean"),
    ((["ann"],), "not a list"),
    (({"name": "ann"},), "not an object"),
    (("",), "empty"),
    (("   ",), "empty"),
    ((LONG_NAME,), "limit is 32"),
    (("a\x00b",), "control character"),
    (("bad\ud800",), "surrogate"),
    (("ann", "extra"), "one argument"),
]

BAD_MESSAGES = [
    ((), "needs the message text"),
    ((None,), "not null"),
    ((3.5,), "not a number"),
    ((["hi"],), "not a list"),
    (({"message": "hi"},), "not an object"),
    (("",), "empty"),
    ((" \n\t ",), "empty"),
    ((LONG_MESSAGE,), "limit is 2000"),
    (("bell\x07",), "control character"),
]

BAD_ROOM_EVENTS = [
    ("join", ("",), "empty"),
    ("join", (7,), "not a number"),
    ("join", ("r" * 33,), "limit is 32"),
    ("leave", ("nowhere",), "not in the room"),
    ("roommessage", ("hi",), "needs an object"),
    ("roommessage", ({"room": "r"},), "exactly the keys"),
    ("roommessage", ({"room": "r", "message": "m", "x": 1},), "exactly the keys"),
    ("roommessage", ({"room": "elsewhere", "message": "m"},), "join the room"),
    ("roommessage", ({"room": "lobby", "message": ""},), "empty"),
    ("direct", ({"to": "nobody", "message": "m"},), "no user called"),
    ("direct", ({"to": 5, "message": "m"},), "not a number"),
    ("direct", ({"to": "bob", "message": LONG_MESSAGE},), "limit is 2000"),
    ("direct", (["bob", "m"],), "needs an object"),
    ("unknownevent", ("x",), "unknown event"),
]


def test_every_event_but_adduser_needs_adduser_first():
    assert {event for event, _, _ in BEFORE_ADDUSER} == set(CLIENT_EVENTS) - {"adduser"}


async def joined(raw, name):
    client = await raw(name)
    assert (await client.call("adduser", name, timeout=5))["ok"] is True
    return client


async def check_refused(sender, observer, chat, event, args, words):
    """Send the bad event with an acknowledgement, then a good marker, and
    check the refusal and that nothing else changed."""
    names_before = chat.names()
    stored_before = await chat.store.count()
    messages_before = len(observer.received("message"))
    # A tuple is sent as that many arguments; None as no argument at all.
    reply = await sender.call(event, tuple(args) if args else None, timeout=5)
    assert set(reply) == set(REFUSAL_KEYS), reply
    assert reply["event"] == event
    assert words in reply["reason"], reply["reason"]
    await sender.wait_for("error")
    assert sender.received("error")[-1] == (reply,)
    assert observer.received("error") == [], "refusals go to the sender alone"
    assert chat.names() == names_before
    assert await chat.store.count() == stored_before
    # The chat still serves everybody, and stored nothing from the refusal.
    await observer.call("message", "still alive", timeout=5)
    await observer.wait_for("message", count=messages_before + 1)
    assert [m[0]["message"] for m in observer.received("message")][messages_before:] == [
        "still alive"]


@pytest.mark.parametrize("event,args,words", BEFORE_ADDUSER)
async def test_events_before_adduser_are_refused(raw, chat, event, args, words):
    observer = await joined(raw, "observer")
    stranger = await raw("stranger")
    await check_refused(stranger, observer, chat, event, args, words)


@pytest.mark.parametrize("args,words", BAD_NAMES)
async def test_bad_user_names_are_refused(raw, chat, args, words):
    observer = await joined(raw, "observer")
    newcomer = await raw("newcomer")
    await check_refused(newcomer, observer, chat, "adduser", args, words)
    assert (await newcomer.call("adduser", "newcomer", timeout=5))["ok"] is True


@pytest.mark.parametrize("args,words", BAD_MESSAGES)
async def test_bad_messages_are_refused(raw, chat, args, words):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    await check_refused(ann, observer, chat, "message", args, words)


@pytest.mark.parametrize("event,args,words", BAD_ROOM_EVENTS)
async def test_bad_room_and_direct_events_are_refused(raw, chat, event, args, words):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    await joined(raw, "bob")
    await ann.call("join", "lobby", timeout=5)
    await check_refused(ann, observer, chat, event, args, words)


async def test_a_second_adduser_on_one_connection_is_refused(raw, chat):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    await check_refused(ann, observer, chat, "adduser", ("anna",), "already joined as 'ann'")


async def test_a_refusal_without_acknowledgement_still_sends_error(raw, chat):
    ann = await joined(raw, "ann")
    await ann.emit("message", "")
    await ann.wait_for("error")
    assert ann.received("error") == [({"event": "message", "reason": "the message must not be empty"},)]


async def test_messages_keep_their_spacing_and_may_be_multiline(raw):
    ann = await joined(raw, "ann")
    text = "  def f():\n\treturn 1  "
    assert await ann.call("message", text, timeout=5) == {"ok": True, "offset": 1}
    await ann.wait_for("message")
    assert ann.received("message")[0][0]["message"] == text

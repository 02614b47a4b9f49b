"""Rooms cost what one connection's rooms cost, and each connection may be
in at most ``Limits.rooms`` of them."""

from __future__ import annotations

import pytest

from chatlab import Limits

from test_chat_refusals import check_refused, joined

pytestmark = pytest.mark.integration


async def test_a_connection_may_be_in_at_most_limits_rooms_rooms(raw, chat):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    for n in range(Limits.rooms):
        reply = await ann.call("join", f"r{n}", timeout=5)
        assert reply["ok"] is True
    assert len(reply["rooms"]) == Limits.rooms
    await check_refused(ann, observer, chat, "join", ("one-too-many",),
                        f"you are in {Limits.rooms} rooms, the most one connection may be in")
    # Joining a room it is already in is not a new room; leaving makes space.
    assert (await ann.call("join", "r0", timeout=5))["ok"] is True
    assert (await ann.call("leave", "r0", timeout=5))["ok"] is True
    reply = await ann.call("join", "one-too-many", timeout=5)
    assert reply["ok"] is True and "one-too-many" in reply["rooms"]
    assert "r0" not in chat.rooms_of(ann.get_sid())


async def test_room_events_never_walk_the_servers_room_table(raw, chat):
    # python-socketio's rooms(sid) looks through every room of the server:
    # with 100 clients joining rooms at the allowed rate, a victim's round
    # trip reached seconds. The chat answers from each connection's own set.
    def walk(*args, **kwargs):
        raise AssertionError("a room event walked every room of the server")

    chat.sio.manager.get_rooms = walk
    ann = await joined(raw, "ann")
    bob = await joined(raw, "bob")
    assert (await ann.call("join", "lobby", timeout=5))["rooms"] == ["lobby"]
    assert (await bob.call("join", "lobby", timeout=5))["rooms"] == ["lobby"]
    assert (await ann.call("roommessage", {"room": "lobby", "message": "hi"}, timeout=5)) \
        == {"ok": True}
    await bob.wait_for("message")
    assert bob.received("message")[-1][0]["message"] == "hi"
    assert (await ann.call("leave", "lobby", timeout=5))["rooms"] == []
    reply = await ann.call("roommessage", {"room": "lobby", "message": "gone"}, timeout=5)
    assert "join the room" in reply["reason"]
    assert not chat.running.errors, chat.running.errors


async def test_rooms_are_forgotten_when_a_connection_leaves(raw, chat):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    await ann.call("join", "lobby", timeout=5)
    sid = ann.get_sid()
    assert chat.rooms_of(sid) == ["lobby"]
    await ann.disconnect()
    # The users list without ann goes out from the disconnect handler.
    await observer.wait_for("users", count=3)  # its join, ann's, ann's leaving
    assert observer.received("users")[-1] == (["observer"],)
    assert chat.rooms_of(sid) == []

"""The chat speaks the model tutorial's protocol exactly, with its bugs fixed.

Plain python-socketio clients (recording every event) talk to the real chat
server on 127.0.0.1, so these tests see the wire protocol, not chatlab's
client's view of it.
"""

from __future__ import annotations

import pytest

from chatlab import ChatServer
from chatlab.protocol import HISTORY_KEYS, MESSAGE_KEYS, PRIVATE_KEYS

pytestmark = pytest.mark.integration

# Each test that uses the chat runs on the plain server and the fast one.
FAST_TOO = True


def events(client, name):
    """The data of each ``name`` event the client received, in order."""
    return [data[0] if len(data) == 1 else data for data in client.received(name)]


async def joined(raw, name, **options):
    client = await raw(name, **options)
    reply = await client.call("adduser", name, timeout=5)
    assert reply["ok"] is True
    await client.wait_for("private")
    return client


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_adduser_sends_users_to_all_and_private_to_the_new_user(raw, transport):
    ann = await joined(raw, "ann", transports=[transport])
    assert events(ann, "users") == [["ann"]]
    [private] = events(ann, "private")
    assert set(private) == set(PRIVATE_KEYS)
    assert private["id"] == ann.get_sid() and private["name"] == "ann"
    assert isinstance(private["msg"], str) and private["msg"]

    bob = await joined(raw, "bob", transports=[transport])
    await ann.wait_for("users", count=2)
    assert events(ann, "users")[-1] == ["ann", "bob"]
    assert events(bob, "users") == [["ann", "bob"]]
    assert len(events(ann, "private")) == 1, "private goes to the new user only"
    # users first, then private, as the tutorial's server sends them
    order = [e.event for e in bob.log.entries if e.direction == "in"]
    assert order.index("users") < order.index("private")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_message_reaches_everyone_with_text_user_and_id(raw, transport):
    ann = await joined(raw, "ann", transports=[transport])
    bob = await joined(raw, "bob", transports=[transport])
    await bob.emit("message", "hello, ann")
    for client in (ann, bob):
        await client.wait_for("message")
        [message] = events(client, "message")
        assert set(message) == {*MESSAGE_KEYS, "offset"}
        assert message == {"message": "hello, ann", "user": "bob", "id": bob.get_sid(), "offset": 1}
        [history] = events(client, "history")
        assert set(history) == set(HISTORY_KEYS)


async def test_disconnect_sends_users_not_user(raw, chat):
    ann = await joined(raw, "ann")
    bob = await joined(raw, "bob")
    await ann.wait_for("users", count=2)
    await bob.disconnect()
    await ann.wait_for("users", count=3)
    assert events(ann, "users")[-1] == ["ann"]
    assert events(ann, "user") == []
    assert chat.names() == ["ann"]


async def test_a_leaving_user_is_removed_by_connection_not_by_name(raw, chat):
    ann = await joined(raw, "ann")
    bob = await joined(raw, "bob")
    cat = await joined(raw, "cat")
    await ann.wait_for("users", count=3)
    # The tutorial looked the name up with indexOf: a connection that never
    # chose a name found -1 and so removed the last user in the list.
    lurker = await raw("lurker")
    await lurker.disconnect()
    await bob.disconnect()
    await ann.wait_for("users", count=4)
    assert events(ann, "users")[-1] == ["ann", "cat"]
    assert len(events(ann, "users")) == 4, "a lurker leaving sends no users update"
    assert chat.names() == ["ann", "cat"]
    await cat.disconnect()
    await ann.wait_for("users", count=5)
    assert events(ann, "users")[-1] == ["ann"]


async def test_a_taken_name_is_refused_ignoring_case(raw, chat):
    await joined(raw, "Ann")
    other = await raw("other")
    reply = await other.call("adduser", " ann ", timeout=5)
    assert reply == {"event": "adduser", "reason": "the name 'ann' is taken; choose another"}
    assert chat.names() == ["Ann"]
    assert (await other.call("adduser", "ann2", timeout=5))["ok"] is True


async def test_rooms_join_leave_and_room_messages(raw, chat):
    ann = await joined(raw, "ann")
    bob = await joined(raw, "bob")
    cat = await joined(raw, "cat")
    assert await ann.call("join", "python", timeout=5) == {"ok": True, "rooms": ["python"]}
    assert await ann.call("join", "js", timeout=5) == {"ok": True, "rooms": ["js", "python"]}
    assert (await bob.call("join", "python", timeout=5))["rooms"] == ["python"]

    reply = await ann.call("roommessage", {"room": "python", "message": "hi room"}, timeout=5)
    assert reply == {"ok": True}
    expected = {"message": "hi room", "user": "ann", "id": ann.get_sid(), "room": "python"}
    for member in (ann, bob):
        await member.wait_for("message")
        assert events(member, "message") == [expected]

    assert await bob.call("leave", "python", timeout=5) == {"ok": True, "rooms": []}
    await ann.call("roommessage", {"room": "python", "message": "still here?"}, timeout=5)
    await ann.wait_for("message", count=2)
    # A marker to everyone, sent after: once it arrives, anything addressed
    # to bob or cat before it would have arrived too.
    await ann.call("message", "marker", timeout=5)
    for other in (bob, cat):
        await other.wait_for("message", count=1 if other is cat else 2)
        texts = [m["message"] for m in events(other, "message")]
        assert "still here?" not in texts and texts[-1] == "marker"


async def test_a_room_named_like_a_connection_id_is_not_that_connection(raw):
    ann = await joined(raw, "ann")
    eve = await joined(raw, "eve")
    # python-socketio keeps a room per connection id; the chat's rooms are
    # kept apart from those, so joining "ann's id" reads nothing of hers.
    await eve.call("join", ann.get_sid()[:32], timeout=5)
    await eve.call("join", ann.get_sid(), timeout=5)
    await eve.call("direct", {"to": "ann", "message": "private to ann"}, timeout=5)
    await ann.call("direct", {"to": "ann", "message": "note to self"}, timeout=5)
    await ann.call("message", "marker", timeout=5)
    await eve.wait_for("message", count=2)
    assert [m["message"] for m in events(eve, "message")] == ["private to ann", "marker"]


async def test_direct_messages_reach_the_recipient_and_the_sender_only(raw):
    ann = await joined(raw, "ann")
    bob = await joined(raw, "bob")
    cat = await joined(raw, "cat")
    assert await ann.call("direct", {"to": "BOB", "message": "psst"}, timeout=5) == {"ok": True}
    expected = {"message": "psst", "user": "ann", "id": ann.get_sid(), "to": "bob"}
    for client in (ann, bob):
        await client.wait_for("message")
        assert events(client, "message") == [expected]
    await ann.call("message", "marker", timeout=5)
    await cat.wait_for("message")
    assert [m["message"] for m in events(cat, "message")] == ["marker"]


async def test_session_holds_the_name_as_per_connection_data(raw, chat):
    ann = await joined(raw, "ann")
    assert (await chat.sio.get_session(ann.get_sid()))["name"] == "ann"


async def test_the_chat_can_be_served_twice_in_a_row(raw):
    # re-running a notebook cell: a fresh ChatServer under the same name
    first = ChatServer()
    server = await first.serve(name="again")
    second = ChatServer()
    again = await second.serve(name="again")
    assert not server.running and again.running
    await again.stop()

"""ChatClient keeps what a chat user sees and lets code wait for it."""

from __future__ import annotations

import time

import pytest

import chatlab
from chatlab import ChatClient, ChatRefused, ChatServer, Limits, WaitTimeout

pytestmark = pytest.mark.integration


async def test_state_follows_the_chat(user):
    ann = await user("ann")
    assert ann.connected and ann.name == "ann" and ann.id == ann.sio.get_sid()
    assert ann.notes and "ann" in ann.notes[0]
    bob = await user("bob")
    assert await ann.wait_for_users(names=["bob", "ann"]) == ["ann", "bob"]
    await bob.send("hi ann")
    message = await ann.wait_for_message(user="bob", text="hi ann")
    assert (message.user, message.id, message.mine) == ("bob", bob.id, False)
    mine = await bob.wait_for_message(text="hi ann")
    assert mine.mine


async def test_rooms_and_direct_messages(user):
    ann, bob, cat = await user("ann"), await user("bob"), await user("cat")
    assert await ann.join("python") == ["python"]
    assert await bob.join("python") == ["python"]
    await ann.send("room hello", room="python")
    got = await bob.wait_for_message(room="python")
    assert (got.text, got.room, got.to) == ("room hello", "python", None)
    await cat.send("just for ann", to="ann")
    direct = await ann.wait_for_message(user="cat")
    assert (direct.text, direct.to) == ("just for ann", "ann")
    assert await bob.leave("python") == [] and bob.rooms == []
    with pytest.raises(ValueError, match="room or to"):
        await ann.send("x", room="python", to="bob")


async def test_a_refusal_raises_with_the_reason_and_stores_nothing(user):
    ann = await user("ann")
    with pytest.raises(ChatRefused) as refused:
        await ann.send("")
    assert refused.value.event == "message"
    assert refused.value.reason == "the message must not be empty"
    error = await ann.wait_for_error()
    assert error == {"event": "message", "reason": "the message must not be empty"}
    assert ann.messages == []


async def test_a_taken_name_is_refused(user):
    await user("ann")
    other = await user()
    with pytest.raises(ChatRefused, match="taken"):
        await other.add_user("ANN")
    assert other.name is None
    await other.add_user("ann2")
    assert other.name == "ann2"


async def test_waits_time_out_with_a_clear_message(user):
    ann = await user("ann")
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.2 s waiting until "
                       r"1 message\(s\) from 'nobody' arrived \(client 'ann'\)"):
        await ann.wait_for_message(user="nobody", timeout=0.2)
    assert time.monotonic() - started < 2
    with pytest.raises(WaitTimeout, match="the users list has 5 name"):
        await ann.wait_for_users(5, timeout=0.1)
    with pytest.raises(ValueError):
        await ann.wait_for_users()


async def test_messages_already_received_count_for_a_wait(user):
    ann, bob = await user("ann"), await user("bob")
    for text in ("one", "two", "three"):
        await bob.send(text)
    third = await ann.wait_for_message(user="bob", count=3)
    assert third.text == "three"
    assert [m.text for m in ann.messages] == ["one", "two", "three"]


async def test_the_log_records_each_event_in_and_out_with_a_time(user):
    ann = await user("ann")
    await ann.send("logged")
    await ann.wait_for_message(text="logged")
    kinds = [(e.direction, e.event) for e in ann.log.entries]
    assert kinds[:2] == [("in", "connect"), ("out", "adduser")]
    assert ("out", "message") in kinds and ("in", "message") in kinds
    assert ("in", "private") in kinds and ("in", "users") in kinds
    assert all(e.time > 0 for e in ann.log.entries)
    sent = next(e for e in ann.log.entries if e.event == "message" and e.direction == "out")
    text, message_id = sent.data[0]  # the text and the client's own id for it
    assert text == "logged" and len(message_id) == 32


async def test_subscribers_hear_each_kind_of_change(user):
    ann = await user("ann")
    heard: list[str] = []
    ann.subscribe(lambda client, what: heard.append(what))
    bob = await user("bob")
    await bob.send("hello")
    await ann.wait_for_message(text="hello")
    await ann.join("r")
    assert {"users", "messages", "rooms"} <= set(heard)


async def test_sending_before_connecting_says_what_to_do(chat_server):
    client = ChatClient(chat_server.url)
    with pytest.raises(ConnectionError, match="call connect"):
        await client.send("hello")


async def test_connecting_to_nothing_fails_clearly():
    client = ChatClient("http://127.0.0.1:9")
    with pytest.raises(ConnectionError, match="could not connect to http://127.0.0.1:9"):
        await client.connect(timeout=2)
    assert client.state == "disconnected"


async def test_disconnect_is_idempotent_and_the_others_see_it(user):
    ann, bob = await user("ann"), await user("bob")
    await ann.wait_for_users(2)
    await bob.disconnect()
    await bob.disconnect()
    assert bob.state == "disconnected" and bob.users == []
    assert await ann.wait_for_users(names=["ann"]) == ["ann"]


async def test_after_the_server_restarts_the_client_rejoins_with_its_name():
    chat = ChatServer()
    server = await chat.serve(name="restart")
    ann = ChatClient(server.url, reconnection_delay=0.05, randomization_factor=0)
    await ann.connect()
    await ann.add_user("ann")
    first_id = ann.id
    await server.stop()
    await ann.wait_until(lambda: ann.state == "disconnected", what="disconnected")
    again = await ChatServer().serve(name="restart", port=server.port)
    await ann.wait_until(lambda: ann.name == "ann", what="rejoined", timeout=10)
    assert ann.id != first_id
    assert await ann.wait_for_users(names=["ann"])
    await ann.disconnect()
    await again.stop()


async def test_limits_are_configurable():
    chat = ChatServer(limits=Limits(name=3, message=5, room=2))
    server = await chat.serve(name="small")
    client = ChatClient(server.url)
    await client.connect()
    with pytest.raises(ChatRefused, match="the user name is 4 characters long; the limit is 3"):
        await client.add_user("anna")
    await client.add_user("ann")
    with pytest.raises(ChatRefused, match="limit is 5"):
        await client.send("123456")
    with pytest.raises(ChatRefused, match="limit is 2"):
        await client.join("abc")
    await client.send("12345")
    await chatlab.shutdown()


async def test_after_shutdown_no_client_keeps_a_users_list(user):
    # The server sends the users list to everyone, the leaving connection
    # included; over polling, the leaving client's disconnect waits for its
    # open long-poll, which brings that list after the disconnect. A client
    # that is no longer connected must not keep it.
    clients = [await user(name, transports=["polling"]) for name in ("ann", "bob", "cat")]
    for client in clients:
        await client.wait_for_users(3)
    await chatlab.shutdown()
    late = 0
    for client in clients:
        assert (client.state, client.users) == ("disconnected", []), list(client.log.entries)[-3:]
        events = [entry.event for entry in client.log.entries]
        late += "users" in events[events.index("disconnect"):]
    assert late, "no users list came after a disconnect: the test shows nothing"


async def test_a_users_list_arriving_after_the_disconnect_is_ignored(user):
    ann, bob = await user("ann"), await user("bob")
    await ann.wait_for_users(2)
    await ann.disconnect()
    # python-socketio hands over an event that was on its way as it would
    # any other: through the client's handler for it.
    await ann.sio._trigger_event("users", "/", ["ann", "bob"])
    assert ann.users == [] and ann.log.entries[-1].event == "users"
    await bob.wait_for_users(names=["bob"])


async def test_reconnecting_is_true_only_while_python_socketio_tries_again():
    chat = ChatServer()
    server = await chat.serve(name="reconnecting")
    ann = ChatClient(server.url, reconnection_delay=0.05, randomization_factor=0)
    await ann.connect()
    await ann.add_user("ann")
    assert not ann.reconnecting
    await server.stop()
    await ann.wait_until(lambda: ann.reconnecting, what="reconnecting")
    assert ann.state == "disconnected"
    again = await ChatServer().serve(name="reconnecting", port=server.port)
    await ann.wait_until(lambda: ann.name == "ann", what="rejoined", timeout=10)
    assert not ann.reconnecting
    await ann.disconnect()
    assert not ann.reconnecting and ann.state == "disconnected"
    await again.stop()


async def test_a_client_that_gives_up_reconnecting_says_so():
    server = await ChatServer().serve(name="gives-up")
    ann = ChatClient(server.url, reconnection_attempts=1, reconnection_delay=0.01,
                     randomization_factor=0)
    await ann.connect()
    await ann.add_user("ann")
    await server.stop()
    await ann.wait_until(lambda: ann.reconnecting, what="reconnecting")
    await ann.wait_until(lambda: not ann.reconnecting, what="gave up", timeout=10)
    assert ann.state == "disconnected"
    await ann.disconnect()


async def test_offline_lasts_from_go_offline_to_go_online(user):
    ann = await user("ann")
    await ann.go_offline()
    assert ann.offline and not ann.reconnecting and ann.state == "disconnected"
    await ann.go_online()
    assert not ann.offline and ann.connected
    await ann.go_offline()
    await ann.disconnect()
    assert not ann.offline

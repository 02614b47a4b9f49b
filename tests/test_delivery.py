"""Nothing lost, nothing twice: offsets, history and replay on (re)connect,
message ids stored once, and a client that resends until acknowledged."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import socketio

import chatlab
from chatlab import ChatClient, ChatServer, Limits, RecordingClient

from test_chat_refusals import joined

pytestmark = pytest.mark.integration

# Each test that uses the chat runs on the plain server and the fast one.
FAST_TOO = True


def seen(client: ChatClient) -> list[tuple[int | None, str]]:
    return [(m.offset, m.text) for m in client.messages]


async def served(chat: ChatServer, name: str) -> str:
    return (await chat.serve(name=name)).url


async def test_public_messages_get_offsets_in_order_and_room_and_direct_ones_none(user):
    ann, bob = await user("ann"), await user("bob")
    assert await ann.send("one") == 1
    assert await bob.send("two") == 2
    await ann.join("py")
    await ann.send("to the room", room="py")
    await ann.send("to bob", to="bob")
    assert await ann.send("three") == 3
    await bob.wait_for_message(text="three")
    assert seen(bob) == [(1, "one"), (2, "two"), (None, "to bob"), (3, "three")]


async def test_a_new_client_gets_the_recent_history_then_live_messages():
    chat = ChatServer(history=3)
    url = await served(chat, "history")
    ann = ChatClient(url)
    await ann.connect()
    await ann.add_user("ann")
    for n in range(1, 6):
        await ann.send(f"m{n}")
    late = RecordingClient("late")
    await late.connect(url)
    await late.wait_for("message", count=3)
    await ann.send("m6")
    await late.wait_for("message", count=4)
    assert late.received("history") == [({"chat": chat.store._chat_id, "after": 2, "last": 5},)]
    assert [m[0]["offset"] for m in late.received("message")] == [3, 4, 5, 6]
    events = [entry.event for entry in late.log.entries if entry.direction == "in"]
    assert events[:3] == ["connect", "history", "message"], "history comes first"
    await chatlab.shutdown()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_returning_client_gets_exactly_what_it_missed_in_order(transport):
    url = await served(ChatServer(limits=Limits(events_per_second=1000, burst=1000)), "missed")
    ann, bob = ChatClient(url), ChatClient(url, transports=[transport])
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    await ann.send("before")
    await bob.wait_for_message(text="before")
    await bob.go_offline()
    for n in range(60):  # more than the 50 a new client would get
        await ann.send(f"missed {n}")
    await bob.go_online()
    await ann.send("after")
    await bob.wait_for_message(text="after")
    offsets = [m.offset for m in bob.messages]
    assert offsets == list(range(1, 63)), offsets
    assert [m.text for m in bob.messages][1:3] == ["missed 0", "missed 1"]
    assert bob.users == ["ann", "bob"] and bob.name == "bob"
    await chatlab.shutdown()


async def test_a_message_sent_offline_is_delivered_once_after_coming_back(user):
    ann, bob = await user("ann"), await user("bob")
    await bob.go_offline()
    sending = asyncio.ensure_future(bob.send("typed while offline", timeout=10))
    await bob.wait_until(lambda: bob.pending == ["typed while offline"])
    assert not sending.done()
    await bob.go_online()
    assert await sending == 1
    assert bob.pending == []
    await ann.wait_for_message(text="typed while offline")
    await bob.send("marker")
    await ann.wait_for_message(text="marker")
    assert seen(ann) == [(1, "typed while offline"), (2, "marker")]
    assert ann.messages[0].user == "bob" and bob.messages[0].mine


async def test_a_message_id_is_stored_once_and_a_retry_gets_its_first_offset(raw, chat):
    observer = await joined(raw, "observer")
    ann = await joined(raw, "ann")
    first = await ann.call("message", ("hello", "ann-1"), timeout=5)
    again = await ann.call("message", ("hello", "ann-1"), timeout=5)
    other = await ann.call("message", ("hello", "ann-2"), timeout=5)
    assert first == {"ok": True, "offset": 1}
    assert again == {"ok": True, "offset": 1, "duplicate": True}
    assert other == {"ok": True, "offset": 2}
    await observer.wait_for("message", count=2)
    assert [m[0]["offset"] for m in observer.received("message")] == [1, 2]
    assert await chat.store.count() == 2


async def test_a_lost_acknowledgement_is_retried_under_the_same_id_and_stored_once(chat, user):
    ann = await user("ann", ack_timeout=0.2)
    bob = await user("bob")
    # Hold the chat's ordering lock, as a slow disk would: the first send's
    # acknowledgement comes too late, and the client sends it again.
    async with chat.delivery.order:
        sending = asyncio.ensure_future(ann.send("patience"))
        await ann.log.wait_for("message", direction="out", count=2)
    assert await sending == 1
    sent = [e.data[0] for e in ann.log.entries if e.direction == "out" and e.event == "message"]
    assert len({message_id for _, message_id in sent}) == 1, "every retry has the same id"
    await ann.send("marker")
    await bob.wait_for_message(text="marker")
    assert seen(bob) == [(1, "patience"), (2, "marker")]
    assert await chat.store.count() == 2


async def test_offsets_from_another_history_get_the_recent_messages(raw, chat):
    ann = await joined(raw, "ann")
    for n in range(3):
        await ann.call("message", f"m{n}", timeout=5)
    stranger = RecordingClient("stranger")
    await stranger.connect(chat.running.url,
                           auth={"chat": "0" * 32, "serverOffset": 99})
    try:
        await stranger.wait_for("message", count=3)
        assert stranger.received("history")[0][0]["after"] == 0
    finally:
        await stranger.shutdown()


@pytest.mark.parametrize("auth,words", [
    ({"serverOffset": -1}, "not -1"),
    ({"serverOffset": "3"}, "not a string"),
    ({"serverOffset": True}, "not a boolean"),
    ({"serverOffset": 1.5}, "not 1.5"),
    ({"chat": 5}, "auth.chat must be a chat id"),
    ({"chat": "has space"}, "not a string of other characters"),
])
async def test_bad_resume_data_is_refused_with_the_reason(chat_server, auth, words):
    client = ChatClient(chat_server.url)
    with pytest.raises(ConnectionError, match="the server refused: auth") as refused:
        await client.connect(auth=auth)
    assert words in str(refused.value)


@pytest.mark.parametrize("args,words", [
    (("hi", 5), "the message id must be a string, not a number"),
    (("hi", ""), "1 to 64 visible ASCII characters"),
    (("hi", "with space"), "1 to 64 visible ASCII characters"),
    (("hi", "x" * 65), "1 to 64 visible ASCII characters"),
    (("hi", "é"), "1 to 64 visible ASCII characters"),
    (("hi", "id", "extra"), "a message id; not 3 arguments"),
], ids=["number", "empty", "space", "too-long", "not-ascii", "three-arguments"])
async def test_a_bad_message_id_is_refused_and_nothing_stored(raw, chat, args, words):
    ann = await joined(raw, "ann")
    reply = await ann.call("message", args, timeout=5)
    assert reply["event"] == "message" and words in reply["reason"], reply
    assert await chat.store.count() == 0


async def test_live_messages_during_replays_are_neither_lost_nor_repeated(chat_server):
    senders = [ChatClient(chat_server.url) for _ in range(3)]
    for n, sender in enumerate(senders):
        await sender.connect()
        await sender.add_user(f"sender{n}")
    readers = [ChatClient(chat_server.url) for _ in range(4)]

    async def chatter(sender: ChatClient) -> None:
        for n in range(40):
            await sender.send(f"{sender.name} {n}", timeout=10)

    async def come_and_go(reader: ChatClient) -> None:
        # Connect mid-stream, then drop out and come back, twice: each
        # return replays from the offset while others keep sending.
        await reader.connect()
        await reader.add_user(f"reader{readers.index(reader)}")
        for _ in range(2):
            await reader.wait_until(lambda: (reader.last_offset or 0) >= 10)
            await reader.go_offline()
            await reader.go_online()

    await asyncio.gather(*map(chatter, senders), *map(come_and_go, readers))
    for reader in readers:
        await reader.wait_until(lambda: reader.last_offset == 120, timeout=10)
        offsets = [m.offset for m in reader.messages]
        first = offsets[0]
        assert offsets == list(range(first, 121)), f"{reader.name}: {offsets}"
    await chatlab.shutdown()


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("db", [":memory:", "file"])
async def test_messages_sent_at_once_go_to_everyone_in_offset_order(db, fast, tmp_path):
    """Many messages in flight at once (a file stores them in group
    commits): every client gets every message once, in offset order, and
    each sender's acknowledgement names the offset its message came with."""
    chat = ChatServer(db=tmp_path / "chat.db" if db == "file" else db, fast=fast)
    url = await served(chat, f"at-once-{db}-{fast}")
    clients = [ChatClient(url) for _ in range(4)]
    for n, client in enumerate(clients):
        await client.connect()
        await client.add_user(f"user{n}")
    offsets = await asyncio.gather(*(
        client.send(f"{client.name} {k}", timeout=10) for client in clients for k in range(15)))
    assert sorted(offsets) == list(range(1, 61))
    for client in clients:
        await client.wait_until(lambda: client.last_offset == 60, timeout=10)
        assert [m.offset for m in client.messages] == list(range(1, 61)), client.name
        acked = {f"{client.name} {k}": offsets[clients.index(client) * 15 + k]
                 for k in range(15)}
        assert {m.text: m.offset for m in client.messages if m.text in acked} == acked
    await chatlab.shutdown()


async def test_the_tutorial_page_protocol_still_works_without_ids_or_offsets(raw):
    """A client that knows none of it (the model tutorial's page): a plain
    message, no auth; it gets history it may ignore, and its messages."""
    ann = await raw("ann")
    await ann.emit("adduser", "ann")
    await ann.emit("message", "plain")
    await ann.wait_for("message")
    payload = ann.received("message")[0][0]
    assert {payload["message"], payload["user"]} == {"plain", "ann"}
    assert isinstance(payload["id"], str)


async def test_a_refused_connection_keeps_nothing_for_it(chat):
    client = socketio.AsyncClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(chat.running.url, auth={"serverOffset": -5})
    await client.shutdown()
    assert chat.delivery.waiting == 0 and chat.namespace.admitted == 0


async def test_a_message_id_of_another_message_is_refused(raw, chat):
    ann, bob = await joined(raw, "ann"), await joined(raw, "bob")
    assert (await ann.call("message", ("mine", "id-1"), timeout=5))["ok"]
    reply = await bob.call("message", ("also mine", "id-1"), timeout=5)
    assert reply["event"] == "message" and "is another message's" in reply["reason"], reply
    assert await chat.store.count() == 1


async def test_a_queue_longer_than_the_burst_goes_out_at_the_pace_the_server_allows():
    url = await served(ChatServer(limits=Limits(events_per_second=50, burst=5)), "paced")
    ann, bob = ChatClient(url), ChatClient(url)
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    await bob.go_offline()
    sends = [asyncio.ensure_future(bob.send(f"queued {n}", timeout=10)) for n in range(15)]
    await bob.wait_until(lambda: len(bob.pending) == 15)
    await bob.go_online(timeout=10)
    assert await asyncio.gather(*sends) == list(range(1, 16))
    await ann.wait_for_message(text="queued 14")
    assert [m.text for m in ann.messages] == [f"queued {n}" for n in range(15)]
    too_fast = [e for e in bob.errors if "too fast" in e.get("reason", "")]
    assert too_fast and all(isinstance(e["retryAfter"], float) for e in too_fast)
    await chatlab.shutdown()


async def test_a_client_ahead_of_the_servers_history_is_sent_it_again(user, chat):
    """A database restored from an older copy: the chat's id is the same
    but its history is shorter than the client's offset."""
    ann, bob = await user("ann"), await user("bob")
    await ann.send("one")
    await bob.wait_for_message(text="one")
    await bob.go_offline()
    bob.last_offset = 40  # as if it had seen messages the server no longer has
    await bob.go_online()
    await ann.send("two")
    await bob.wait_for_message(text="two")
    assert seen(bob) == [(1, "one"), (1, "one"), (2, "two")]


async def test_history_is_the_first_event_even_while_the_replay_waits(raw, chat):
    ann = await joined(raw, "ann")
    await ann.call("message", "before", timeout=5)
    bob = await raw("bob")
    async with chat.delivery.order:  # the replay has to wait; other events do not
        newcomer = await raw("newcomer")
        await bob.call("adduser", "bob", timeout=5)  # users goes to everyone
        await newcomer.wait_for("users")
    await newcomer.wait_for("message")
    events = [e.event for e in newcomer.log.entries if e.direction == "in"]
    assert events[:2] == ["connect", "history"], events
    assert newcomer.received("message")[0][0]["message"] == "before"


async def test_an_offset_of_3_point_0_is_3(raw, chat_server):
    ann = await joined(raw, "ann")
    for n in range(5):
        await ann.call("message", f"m{n}", timeout=5)
    (history,) = ann.received("history")[0]
    client = RecordingClient("js-like")
    await client.connect(chat_server.url, auth={"chat": history["chat"], "serverOffset": 3.0})
    await client.wait_for("message", count=2)
    assert client.received("history")[0][0]["after"] == 3
    assert [m[0]["offset"] for m in client.received("message")] == [4, 5]
    await client.shutdown()


async def test_a_polling_body_of_many_emits_loses_none(chat, chat_server):
    """A browser batches quick emits into one long-polling POST; python-engineio
    alone would refuse a body of more than 16 packets."""
    base = chat_server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(base) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        url = f"{base}&sid={sid}"

        async def post(*packets: str) -> None:
            async with http.post(url, data="\x1e".join(packets)) as response:
                assert response.status == 200

        await post("40")
        await post('42["adduser","ann"]')
        await post(*(f'42["message","batched {n}"]' for n in range(30)))
        observer = ChatClient(chat_server.url)
        await observer.connect()
        await observer.wait_until(lambda: observer.last_offset == 30)
        assert [m.text for m in observer.messages] == [f"batched {n}" for n in range(30)]
        await observer.disconnect()

"""One chat across several ChatServer nodes sharing one real Redis: offsets
cluster-wide, each message once and in order on every node, room and direct
messages across nodes, resends and replay on another node, one users list,
and names unique across nodes."""

from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator, Awaitable, Callable

import pytest
import redis

import chatlab
from chatlab import ChatClient, ChatRefused, ChatServer, Limits, RecordingClient

from redis_support import RedisServer, redis_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

FAST = Limits(events_per_second=1000, burst=1000)


@pytest.fixture(params=[False, True], ids=["plain", "fast"])
async def nodes(redis_server: RedisServer, request) -> AsyncIterator[list[ChatServer]]:  # noqa: F811
    """Three nodes of one chat, on an empty Redis; each has ``.url``. With
    and without chatlab.fast (its fan-out under the Redis manager)."""
    redis.Redis.from_url(redis_server.url).flushall()
    servers = []
    for n in range(3):
        chat = ChatServer(redis=redis_server.url, limits=FAST, fast=request.param)
        chat.url = (await chat.serve(name=f"node-{n}")).url  # type: ignore[attr-defined]
        servers.append(chat)
    yield servers
    await chatlab.shutdown()


@pytest.fixture
def user() -> Callable[..., Awaitable[ChatClient]]:
    async def make(node: ChatServer, name: str | None = None) -> ChatClient:
        client = ChatClient(node.url)  # type: ignore[attr-defined]
        await client.connect()
        if name is not None:
            await client.add_user(name)
        return client

    return make


def received_offsets(client: ChatClient) -> list[int]:
    """Every public message's offset as it came off the wire, duplicates
    included (ChatClient itself shows a repeat once)."""
    return [entry.data[0]["offset"] for entry in client.log.entries
            if entry.direction == "in" and entry.event == "message"
            and isinstance(entry.data[0], dict) and "offset" in entry.data[0]]


async def wait_for_offsets(client: ChatClient, last: int) -> None:
    await client.wait_until(lambda: client.last_offset is not None and client.last_offset >= last,
                            timeout=10, what=f"offset {last}")


async def test_concurrent_senders_on_every_node_each_message_once_in_offset_order(nodes, user):
    clients = [await user(node, f"u{n}") for n, node in enumerate(nodes)]

    async def send_many(client: ChatClient, n: int) -> list[int]:
        return [await client.send(f"{client.name} {i}") for i in range(n)]

    acked = await asyncio.gather(*(send_many(client, 40) for client in clients))
    offsets = sorted(offset for sent in acked for offset in sent)
    assert offsets == list(range(1, 121)), "one offset each, cluster-wide, no gaps"
    for client in clients:
        await wait_for_offsets(client, 120)
    for client in clients:
        assert received_offsets(client) == list(range(1, 121)), client.name
    # The same offset means the same message on every node.
    texts = {m.offset: m.text for m in clients[0].messages}
    assert all({m.offset: m.text for m in c.messages} == texts for c in clients[1:])
    assert await nodes[2].store.count() == 120


async def test_the_ack_comes_after_the_sender_has_its_own_message(nodes, user):
    ann, bob = await user(nodes[0], "ann"), await user(nodes[1], "bob")
    offset = await ann.send("hello")
    assert [m.offset for m in ann.messages] == [offset]
    await bob.wait_for_message(text="hello")


async def test_room_and_direct_messages_cross_nodes(nodes, user):
    ann, bob, cy = await user(nodes[0], "ann"), await user(nodes[1], "bob"), await user(nodes[2], "Cy")
    await ann.join("py")
    await bob.join("py")
    await ann.send("to the room", room="py")
    await bob.wait_for_message(text="to the room")
    await ann.send("to cy", to="cy")  # names compare by name_key
    message = await cy.wait_for_message(text="to cy")
    assert message.to == "Cy" and message.user == "ann"
    with pytest.raises(ChatRefused, match="no user called"):
        await ann.send("nobody", to="dan")
    await cy.send("public")
    await bob.wait_for_message(text="public")
    assert "to the room" not in [m.text for m in cy.messages]
    assert "to cy" not in [m.text for m in bob.messages]


async def test_a_resend_with_the_same_id_on_another_node_is_stored_once(nodes):
    # ann's acknowledgement was lost; she comes back through another node
    # and sends the message again under the same id.
    first_try = RecordingClient("ann")
    await first_try.connect(nodes[0].url)
    await first_try.call("adduser", "ann")
    assert await first_try.call("message", ("hi", "id-1")) == {"ok": True, "offset": 1}
    await first_try.disconnect()
    second_try = RecordingClient("ann again")
    await second_try.connect(nodes[1].url)
    await second_try.call("adduser", "ann")
    again = await second_try.call("message", ("hi", "id-1"))
    assert again == {"ok": True, "offset": 1, "duplicate": True}
    assert await nodes[2].store.count() == 1
    await chatlab.recording.shutdown_all()


async def test_a_client_that_comes_back_on_another_node_gets_what_it_missed(nodes, user):
    ann, bob = await user(nodes[0], "ann"), await user(nodes[1], "bob")
    await ann.send("before")
    await bob.wait_for_message(text="before")
    await bob.go_offline()
    for n in range(30):
        await ann.send(f"missed {n}")
    bob.urls = [nodes[2].url]  # its next connection goes there
    await bob.go_online()
    await ann.send("after")
    await bob.wait_for_message(text="after")
    assert [m.offset for m in bob.messages] == list(range(1, 33))
    assert received_offsets(bob) == list(range(1, 33)), "nothing twice"


async def test_a_replay_ahead_of_the_nodes_feed_waits_for_it(nodes, user):
    ann = await user(nodes[0], "ann")
    for n in range(5):
        await ann.send(f"m{n}")
    # A client that has seen offset 5 on node 0 comes to node 1: its feed
    # may or may not be there yet; either way, 6 comes once, nothing before.
    late = RecordingClient("late")
    chat_id = await nodes[0].store.chat_id()
    await late.connect(nodes[1].url, auth={"chat": chat_id, "serverOffset": 5})
    await ann.send("m5")
    await late.wait_for("message")
    assert late.received("history")[0][0]["after"] == 5
    assert [m[0]["offset"] for m in late.received("message")] == [6]
    await chatlab.recording.shutdown_all()


async def test_users_list_is_the_union_and_names_are_unique_across_nodes(nodes, user):
    ann, bob = await user(nodes[0], "ann"), await user(nodes[1], "bob")
    await ann.wait_for_users(names=["ann", "bob"])
    watcher = await user(nodes[2])
    with pytest.raises(ChatRefused, match="taken"):
        await watcher.add_user("ANN")
    await watcher.add_user("cy")
    for client in (ann, bob, watcher):
        await client.wait_for_users(names=["ann", "bob", "cy"])
    await bob.disconnect()
    await ann.wait_for_users(names=["ann", "cy"])
    await watcher.wait_for_users(names=["ann", "cy"])
    assert nodes[0].names() == ["ann", "cy"]
    again = await user(nodes[2], "bob")  # a name that left is free again
    await ann.wait_for_users(names=["ann", "cy", "bob"])
    await again.disconnect()


async def test_a_dead_nodes_users_leave_every_list_within_the_bound(redis_server):  # noqa: F811
    redis.Redis.from_url(redis_server.url).flushall()
    nodes = []
    for n in range(2):
        chat = ChatServer(redis=redis_server.url, limits=FAST)
        chat.cluster.users.beat, chat.cluster.users.ttl = 0.1, 0.4
        nodes.append((chat, (await chat.serve(name=f"dying-{n}")).url))
    ann = ChatClient(nodes[0][1])
    bob = ChatClient(nodes[1][1])
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    await ann.wait_for_users(names=["ann", "bob"])
    # Node 1 stops beating, as a killed process would, and keeps its users
    # in Redis: they go once its heartbeat has expired and node 0 has swept.
    dying = nodes[1][0].cluster.users
    for task in dying._tasks:
        task.cancel()
    dying._mine.clear()  # its clean stop() has nothing to remove
    started = asyncio.get_running_loop().time()
    await ann.wait_for_users(names=["ann"], timeout=5)
    assert asyncio.get_running_loop().time() - started <= 0.4 + 0.1 + 0.5
    taker = ChatClient(nodes[0][1])
    await taker.connect()
    await taker.add_user("bob")  # the dead node's name is free
    await chatlab.shutdown()


async def test_after_redis_restarts_empty_the_nodes_start_a_new_history(redis_server):  # noqa: F811
    redis.Redis.from_url(redis_server.url).flushall()
    nodes = []
    for n in range(2):
        chat = ChatServer(redis=redis_server.url, limits=FAST)
        chat.cluster.users.beat, chat.cluster.users.ttl = 0.2, 2.0
        nodes.append((chat, (await chat.serve(name=f"restart-{n}")).url))
    ann, bob = ChatClient(nodes[0][1]), ChatClient(nodes[1][1])
    for client, name in ((ann, "ann"), (bob, "bob")):
        await client.connect()
        await client.add_user(name)
    for n in range(3):
        await ann.send(f"before {n}")
    await bob.wait_for_message(text="before 2")
    old_chat = bob.chat

    await asyncio.get_running_loop().run_in_executor(None, redis_server.restart)

    # Both nodes notice, and tell their clients of the new history.
    for client in (ann, bob):
        await client.wait_until(lambda c=client: c.chat not in (None, old_chat) and c.last_offset == 0,
                                timeout=10, what="a fresh history")
    assert ann.chat == bob.chat
    # The heartbeats claim the names again: the list is whole.
    for client in (ann, bob):
        await client.wait_for_users(names=["ann", "bob"], timeout=10)
    with pytest.raises(ChatRefused, match="taken"):
        taker = ChatClient(nodes[0][1])
        await taker.connect()
        await taker.add_user("BOB")
    # Chatting across nodes works again, offsets from 1.
    assert await bob.send("after") == 1
    await ann.wait_for_message(text="after")
    assert await ann.send("reply") == 2
    await bob.wait_for_message(text="reply")
    assert [m.offset for m in ann.messages if m.text in ("after", "reply")] == [1, 2]
    await chatlab.shutdown()


async def test_a_client_given_every_node_moves_to_another_when_its_node_stops(redis_server):  # noqa: F811
    redis.Redis.from_url(redis_server.url).flushall()
    chats = [ChatServer(redis=redis_server.url, limits=FAST) for _ in range(2)]
    running = [await chat.serve(name=f"moving-{n}") for n, chat in enumerate(chats)]
    ann = ChatClient([r.url for r in running])
    bob = ChatClient(running[1].url)
    try:
        for client, name in ((ann, "ann"), (bob, "bob")):
            await client.connect()
            await client.add_user(name)
        assert ann.url == running[0].url
        await bob.send("before")
        await ann.wait_for_message(text="before")
        await running[0].stop()  # ann's node goes
        await ann.wait_until(lambda: not ann.connected, what="the node gone")
        await bob.send("while ann moves")
        await ann.wait_until(lambda: ann.connected and ann.name == "ann", timeout=10,
                             what="ann back, on the other node")
        assert ann.url == running[1].url
        await ann.wait_for_message(text="while ann moves")
        await ann.send("after")
        await bob.wait_for_message(text="after")
        assert [m.offset for m in ann.messages] == [1, 2, 3]
        assert received_offsets(ann) == [1, 2, 3], "caught up, nothing twice"
        await bob.wait_for_users(names=["bob", "ann"])
    finally:
        await chatlab.shutdown()


def publishes(url: str) -> int:
    """How many PUBLISH commands this Redis has run."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


async def test_a_replay_goes_to_its_client_only_not_through_redis(redis_server, nodes, user):  # noqa: F811
    ann = await user(nodes[0], "ann")
    for n in range(60):
        await ann.send(f"kept {n}")
    before = publishes(redis_server.url)
    # History, replay and the welcome are for one connection of this node:
    # passed to every node over pub/sub, they would cost each node a decode
    # per message.
    bob = ChatClient(nodes[1].url)  # type: ignore[attr-defined]
    await bob.connect(auth={"serverOffset": 0})
    await bob.wait_until(lambda: bob.last_offset == 50, what="the replay")
    await bob.add_user("bob")
    await ann.wait_for_users(names=["ann", "bob"])
    assert publishes(redis_server.url) - before < 10


async def test_a_crowd_joining_at_once_gets_a_few_lists_not_one_per_join(nodes):
    # Each join is published to every node; a node reading and sending the
    # list for each would send every client a list per join (N lists of up
    # to N names each, for N users).
    from test_users_list import WireUser
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        users = await asyncio.gather(*(
            WireUser.join(http, nodes[n % 3].url, f"u{n}") for n in range(150)))
        try:
            for user in users:
                await user.wait_for_list(150)
            for node in nodes:
                await asyncio.wait_for(node.cluster.users.sent(), 10)
            # Every list sent was read (a node's lists go out in order).
            last = [f"u{n}" for n in range(150)]
            for user in users:
                await user.changes.wait_until(lambda user=user: user.ws.closed or sorted(
                    user.lists()[-1]) == sorted(last), what="the newest list last")
            counts = sorted(len(user.lists()) for user in users)
            assert counts[-1] < 40, counts  # one per join was about 80 each
        finally:
            for user in users:
                await user.close()


async def test_a_node_that_cannot_listen_stops_its_heartbeat_and_feed(redis_server, nodes):  # noqa: F811
    port = int(nodes[0].url.rsplit(":", 1)[1].strip("/"))  # type: ignore[attr-defined]
    late = ChatServer(redis=redis_server.url)
    with pytest.raises(chatlab.PortInUseError):
        await late.serve(name="late", port=port)
    # Nothing of it left running (the test's guard also checks tasks), and
    # it never joined the chat's nodes.
    assert late.cluster.feed is None and late.cluster.stopped
    assert all(task.done() for task in late.cluster.users._tasks)


async def test_a_node_whose_redis_cannot_be_reached_says_so_and_leaves_nothing(capfd, caplog):
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    with pytest.raises(ConnectionError, match=f"cannot reach the chat's Redis at {url}"):
        await ChatServer(redis=url).serve(name="no-redis")
    assert "no-redis" not in chatlab.running_servers()
    assert capfd.readouterr().err == "" and caplog.records == []


async def test_one_sender_s_messages_get_offsets_in_the_order_it_sent_them(nodes):
    # Sent back to back without waiting for acknowledgements: the handlers
    # run side by side, and their scripts must still reach Redis in the
    # order the messages came.
    import aiohttp
    from wire import connect_websocket

    async with aiohttp.ClientSession() as http:
        ws = await connect_websocket(http, nodes[0].url)
        await ws.send_str('42["adduser","ann"]')
        async for frame in ws:  # joined once welcomed
            if frame.type != aiohttp.WSMsgType.TEXT or frame.data.startswith('42["private"'):
                break
        for n in range(500):
            await ws.send_str(f'42{n}["message","{n}","id-{n}"]')
        acks = 0
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            if frame.data == "2":
                await ws.send_str("3")
            elif frame.data.startswith("43"):
                acks += 1
                if acks == 500:
                    break
        await ws.close()
    stored = await nodes[1].store.after(0)
    assert [m.text for m in stored] == [f"{n}" for n in range(500)]


async def test_the_store_keeps_text_exactly_and_lets_the_oldest_go_with_their_ids(redis_server):  # noqa: F811
    import redis.asyncio as aioredis
    from chatlab.cluster.store import RedisStore

    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    store = RedisStore(client, "kept-test", kept=3)
    await store.chat_id()
    tricky = 'a "quote" \\ back/slash \u2028 é 😀 <b>x</b> \x7f'
    for n in range(5):
        message, new = await store.add("ann", "sid-1", f"{n} {tricky}", f"id-{n}")
        assert new and message.offset == n + 1 and message.text == f"{n} {tricky}"
    assert [(m.offset, m.user, m.sender, m.text) for m in await store.after(0)] == [
        (n + 1, "ann", "sid-1", f"{n} {tricky}") for n in range(2, 5)]
    again, new = await store.add("bob", "sid-2", "other text", "id-4")  # a resend
    assert not new and (again.offset, again.user, again.text) == (5, "ann", f"4 {tricky}")
    # id-0's message was let go of, and its id with it: a new message.
    fresh, new = await store.add("ann", "sid-1", "0 again", "id-0")
    assert new and fresh.offset == 6
    assert await client.hlen("kept-test:ids") == 3
    await client.aclose()

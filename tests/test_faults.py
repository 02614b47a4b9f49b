"""Faults: clients that vanish without saying goodbye leave the users list,
and a server restarted on its database file loses and repeats nothing."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys

import aiohttp
import pytest

from chatlab import ChatClient, ChatServer, Limits
from wire import connect_websocket

pytestmark = pytest.mark.integration


JOIN_AND_WAIT = """
import asyncio, sys, chatlab

async def main():
    client = chatlab.ChatClient(sys.argv[1])
    await client.connect()
    await client.add_user("ghost")
    print("joined", flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


async def test_a_killed_client_process_leaves_the_users_list():
    server = await ChatServer().serve(name="faults-kill")
    ann = ChatClient(server.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", JOIN_AND_WAIT, server.url, stdout=asyncio.subprocess.PIPE)
    try:
        await ann.connect()
        await ann.add_user("ann")
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"joined\n"
        await ann.wait_for_users(names=["ann", "ghost"])
        process.send_signal(signal.SIGKILL)  # no disconnect, no goodbye
        await process.wait()
        assert await ann.wait_for_users(names=["ann"], timeout=10) == ["ann"]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await ann.disconnect()
        await server.stop()


async def test_a_client_that_stops_answering_pings_is_dropped_within_the_ping_timeout():
    # The transport stays open but the client has gone quiet (a laptop lid
    # closed, a network that silently drops packets): only the pings tell.
    chat = ChatServer(ping_interval=0.3, ping_timeout=0.3)
    server = await chat.serve(name="faults-silent")
    ann = ChatClient(server.url)
    try:
        await ann.connect()
        await ann.add_user("ann")
        async with aiohttp.ClientSession() as session:
            async with await connect_websocket(session, server.url, autoping=False) as ws:
                await ws.send_str('42["adduser","silent"]')
                await ann.wait_for_users(names=["ann", "silent"])
                # From here on, the pings ("2") go unanswered.
                assert await ann.wait_for_users(names=["ann"], timeout=5) == ["ann"]
                assert chat.names() == ["ann"]
    finally:
        await ann.disconnect()
        await server.stop()


async def test_a_restart_on_the_same_database_loses_and_repeats_nothing(tmp_path):
    """Three users keep sending while the server is stopped and started
    again, twice, on the same SQLite file. Afterwards every message any of
    them sent is in every one's history exactly once, in the server's order."""
    db = tmp_path / "chat.db"
    limits = Limits(events_per_second=1000, burst=1000)
    server = await ChatServer(db=db, limits=limits).serve(name="faults-restart")
    port = server.port
    names = ["user0", "user1", "user2"]  # (client.name is None while it is away)
    clients = [ChatClient(server.url, ack_timeout=1) for _ in names]
    for client, name in zip(clients, names):
        await client.connect()
        await client.add_user(name)
    per_client = 60

    async def keep_sending(client: ChatClient, name: str) -> list[int]:
        offsets = []
        for n in range(per_client):
            # Long enough to ride out a restart: the message waits, and is
            # sent again once the client is back.
            offsets.append(await client.send(f"{name} #{n}", timeout=30))
        return offsets

    async def restart() -> None:
        nonlocal server
        await server.stop()
        server = await ChatServer(db=db, limits=limits).serve(name="faults-restart", port=port)

    async def restart_twice() -> None:
        # Once mid-stream, and once more the moment a client is back (while
        # it joins again, catches up and resends).
        await clients[0].wait_until(lambda: (clients[0].last_offset or 0) >= 20, timeout=30)
        await restart()
        await clients[0].wait_until(lambda: clients[0].connected, timeout=30)
        await restart()

    tasks = [asyncio.ensure_future(restart_twice()),
             *(asyncio.ensure_future(keep_sending(c, name)) for c, name in zip(clients, names))]
    try:
        sent = await asyncio.gather(*tasks)
        acknowledged = [offset for offsets in sent[1:] for offset in offsets]
        total = per_client * len(clients)
        assert sorted(acknowledged) == list(range(1, total + 1)), "each stored once"
        for client in clients:
            await client.wait_until(lambda: client.last_offset == total, timeout=30)
        histories = [[(m.offset, m.user, m.text) for m in client.messages] for client in clients]
        assert histories[0] == histories[1] == histories[2]
        assert [offset for offset, _, _ in histories[0]] == list(range(1, total + 1))
        for name in names:  # each user's own messages, in the order sent
            mine = [text for _, user, text in histories[0] if user == name]
            assert mine == [f"{name} #{n}" for n in range(per_client)]
        delivered = sum(len(history) for history in histories)
        reader = sqlite3.connect(db)  # a reader is welcome while the server has the file
        try:
            (stored,) = reader.execute("SELECT COUNT(*) FROM messages").fetchone()
        finally:
            reader.close()
        assert stored == total and delivered == total * len(clients)
        transmissions = sum(client.log.counts["out", "message"] for client in clients)
        print(f"\nsent {total} ({transmissions} transmissions with the retries), "
              f"stored {stored}, delivered {delivered} ({len(clients)} clients, 2 restarts)")
    finally:
        for task in tasks:  # a failure must not leave a restart to finish later
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.disconnect()
        await server.stop()


async def test_a_rejoin_refused_while_the_name_is_still_taken_asks_again_until_it_is_free():
    # After a reconnection the server may still hold the client's name: its
    # old connection until the server notices it is gone, or a dead node of
    # a cluster until its heartbeat runs out. The rejoin waits for it.
    server = await ChatServer().serve(name="faults-rejoin")
    ann, holder = ChatClient(server.url), ChatClient(server.url)
    coming_back = None
    try:
        await ann.connect()
        await ann.add_user("ann")
        await ann.go_offline()
        await holder.connect()
        await holder.add_user("ann")  # free while ann is away
        coming_back = asyncio.ensure_future(ann.go_online(timeout=20))

        def refusals() -> int:
            return sum(1 for entry in ann.log.entries
                       if entry.direction == "out" and entry.event == "adduser")

        # add_user, then at least two rejoins: refused, and asked again
        await ann.wait_until(lambda: refusals() >= 3, timeout=10, what="the rejoin asked again")
        assert ann.name is None
        await holder.disconnect()
        await coming_back
        assert ann.name == "ann"
        # The server's refusals are shown; the client never gave up.
        assert {e["reason"] for e in ann.errors} == {"the name 'ann' is taken; choose another"}
        await ann.wait_for_users(names=["ann"])
    finally:
        if coming_back is not None:
            coming_back.cancel()
        await ann.disconnect()
        await holder.disconnect()
        await server.stop()


async def test_a_client_given_several_urls_connects_to_the_first_that_answers():
    server = await ChatServer().serve(name="faults-urls")
    gone = await ChatServer().serve(name="faults-gone")
    dead_url = gone.url
    await gone.stop()
    client = ChatClient([dead_url, server.url])
    try:
        await client.connect()
        assert client.url == server.url
        await client.add_user("ann")
    finally:
        await client.disconnect()
        await server.stop()
    with pytest.raises(ConnectionError, match="could not connect to .*, .*"):
        await ChatClient([dead_url, dead_url]).connect(timeout=2)
    with pytest.raises(ValueError, match="URL"):
        ChatClient([])

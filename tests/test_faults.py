"""Clients that vanish without saying goodbye leave the users list."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from chatlab import ChatClient, ChatServer

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
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    try:
        await ann.connect()
        await ann.add_user("ann")
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, autoping=False) as ws:
                opened = await ws.receive_str()
                assert opened.startswith("0{")
                await ws.send_str("40")  # Socket.IO connect to "/"
                assert (await ws.receive_str()).startswith("40{")
                await ws.send_str('42["adduser","silent"]')
                await ann.wait_for_users(names=["ann", "silent"])
                # From here on, the pings ("2") go unanswered.
                assert await ann.wait_for_users(names=["ann"], timeout=5) == ["ann"]
                assert chat.names() == ["ann"]
    finally:
        await ann.disconnect()
        await server.stop()

"""chatlab's Python client against the official Node.js Socket.IO server.

`tests/js/chat-server.mjs` implements the chat protocol on Node's socket.io;
the same scenario, run with chatlab's ChatClient against it and against
chatlab's own ChatServer, must see the same events and payloads.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from chatlab import ChatClient, ChatRefused, ChatServer

JS = Path(__file__).parent / "js"


async def scenario(url: str, transports: list[str]) -> dict[str, list]:
    """A chat between ann, bob and cat; returns what each client received,
    with connection ids replaced by the client names they belong to."""
    clients = {name: ChatClient(url, transports=transports) for name in ("ann", "bob", "cat")}
    ann, bob, cat = clients.values()
    try:
        for name, client in clients.items():
            await client.connect()
            await client.add_user(name)
        ids = {client.id: f"<{name}>" for name, client in clients.items()}
        await ann.wait_for_users(3)
        await bob.send("hello all")
        await ann.join("py")
        await bob.join("py")
        await ann.send("hello py", room="py")
        await cat.send("hello ann", to="ann")
        with pytest.raises(ChatRefused, match="join the room 'py' before sending to it"):
            await cat.send("x", room="py")
        with pytest.raises(ChatRefused, match="already joined as 'cat'"):
            await cat.add_user("bob")
        await ann.wait_for_message(user="cat")
        await bob.wait_for_message(room="py")
        await cat.disconnect()
        await ann.wait_for_users(2)
        await bob.wait_for_users(2)
        return {
            name: [(entry.event, _anonymous(entry.data, ids))
                   for entry in client.log.entries
                   if entry.direction == "in" and entry.event not in ("connect", "disconnect")]
            for name, client in (("ann", ann), ("bob", bob))
        }
    finally:
        for client in clients.values():
            await client.disconnect()


def _anonymous(value, ids: dict[str, str]):
    text = repr(value)
    for sid, name in ids.items():
        text = text.replace(sid, name)
    return text


class NodeServer:
    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> "NodeServer":
        if shutil.which("node") is None:
            pytest.fail("Node.js is needed for this test (the README's set-up installs it)")
        if not (JS / "node_modules" / "socket.io").is_dir():
            pytest.fail("run `npm ci --prefix tests/js` (make test does)")
        self.process = await asyncio.create_subprocess_exec(
            "node", str(JS / "chat-server.mjs"), stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 15)
        port = re.fullmatch(rb"listening on (\d+)\n", line)
        assert port, line
        self.url = f"http://127.0.0.1:{int(port[1])}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process is not None
        self.process.terminate()
        assert await asyncio.wait_for(self.process.wait(), 10) == 0


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_python_client_sees_the_same_chat_on_node_and_on_chatlab(transport):
    chat = ChatServer()
    server = await chat.serve(name=f"reference-{transport}")
    try:
        on_chatlab = await scenario(server.url, [transport])
    finally:
        await server.stop()
    async with NodeServer() as node:
        on_node = await scenario(node.url, [transport])
    assert on_node == on_chatlab
    assert on_chatlab["ann"][-1] == ("users", "(['ann', 'bob'],)")  # cat left: users shrank
    assert all(event != "error" for event, _ in on_chatlab["ann"] + on_chatlab["bob"])
    assert len(on_chatlab["ann"]) == 8, on_chatlab["ann"]  # 4 users, private, 3 messages

"""The official Node.js Socket.IO client speaks the whole chat protocol with
chatlab's chat server, over websocket and over long polling."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from chatlab import ChatServer

JS = Path(__file__).parent / "js"


def node_ready() -> None:
    if shutil.which("node") is None:
        pytest.fail("Node.js is needed for this test (the README's set-up installs it)")
    if not (JS / "node_modules" / "socket.io-client").is_dir():
        pytest.fail("run `npm ci --prefix tests/js` (make test does)")


async def run_node(script: str, *args: str) -> dict:
    process = await asyncio.create_subprocess_exec(
        "node", str(JS / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_the_official_client_against_chatlab(transport):
    node_ready()
    chat = ChatServer()
    server = await chat.serve(name=f"official-{transport}")
    try:
        result = await run_node("protocol-client.mjs", server.url, transport)
    finally:
        await server.stop()
    ann, bob = result["ids"]["ann"], result["ids"]["bob"]
    replies = result["replies"]
    assert replies["adduserAnn"] == {"ok": True, "id": ann, "name": "ann"}
    assert replies["adduserBob"] == {"ok": True, "id": bob, "name": "bob"}
    assert replies["message"] == {"ok": True}
    assert replies["joinAnn"] == {"ok": True, "rooms": ["node"]}
    assert replies["joinBob"] == {"ok": True, "rooms": ["node"]}
    assert replies["roommessage"] == {"ok": True}
    assert replies["direct"] == {"ok": True}
    refusal = {"event": "message", "reason": "the message must not be empty"}
    assert replies["refused"] == refusal
    assert replies["leaveBob"] == {"ok": True, "rooms": []}

    welcome = {"id": ann, "name": "ann", "msg": f"Welcome, ann! You are connected as {ann}."}
    hello = {"message": "hello from node", "user": "bob", "id": bob}
    to_room = {"message": "to the room", "user": "ann", "id": ann, "room": "node"}
    just_you = {"message": "just you", "user": "ann", "id": ann, "to": "bob"}
    assert result["seen"]["ann"] == [
        ["users", ["ann"]],
        ["private", welcome],
        ["users", ["ann", "bob"]],
        ["message", hello],
        ["message", to_room],
        ["message", just_you],
        ["error", refusal],
        ["users", ["ann"]],
    ]
    assert result["seen"]["bob"] == [
        ["users", ["ann"]],  # users goes to every connection, joined or not
        ["users", ["ann", "bob"]],
        ["private", {"id": bob, "name": "bob",
                     "msg": f"Welcome, bob! You are connected as {bob}."}],
        ["message", hello],
        ["message", to_room],
        ["message", just_you],
    ]

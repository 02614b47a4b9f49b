"""The official Node.js Socket.IO client speaks the whole chat protocol with
chatlab's chat server, over websocket and over long polling, including the
delivery part as the official Socket.IO tutorial's client uses it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from chatlab import ChatServer

pytestmark = pytest.mark.e2e


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
    chat_id = await chat.store.chat_id()
    replies = result["replies"]
    assert replies["adduserAnn"] == {"ok": True, "id": ann, "name": "ann"}
    assert replies["adduserBob"] == {"ok": True, "id": bob, "name": "bob"}
    assert replies["message"] == {"ok": True, "offset": 1}
    assert replies["joinAnn"] == {"ok": True, "rooms": ["node"]}
    assert replies["joinBob"] == {"ok": True, "rooms": ["node"]}
    assert replies["roommessage"] == {"ok": True}
    assert replies["direct"] == {"ok": True}
    refusal = {"event": "message", "reason": "the message must not be empty"}
    assert replies["refused"] == refusal
    assert replies["leaveBob"] == {"ok": True, "rooms": []}

    nothing_yet = ["history", {"chat": chat_id, "after": 0, "last": 0}]
    welcome = {"id": ann, "name": "ann", "msg": f"Welcome, ann! You are connected as {ann}."}
    hello = {"message": "hello from node", "user": "bob", "id": bob, "offset": 1}
    to_room = {"message": "to the room", "user": "ann", "id": ann, "room": "node"}
    just_you = {"message": "just you", "user": "ann", "id": ann, "to": "bob"}
    seen = result["seen"]
    assert seen["ann"][:9] == [
        nothing_yet,
        ["users", ["ann"]],
        ["private", welcome],
        ["users", ["ann", "bob"]],
        ["message", hello],
        ["message", to_room],
        ["message", just_you],
        ["error", refusal],
        ["users", ["ann"]],
    ]
    assert seen["bob"] == [
        nothing_yet,
        ["users", ["ann"]],  # users goes to every connection, joined or not
        ["users", ["ann", "bob"]],
        ["private", {"id": bob, "name": "bob",
                     "msg": f"Welcome, bob! You are connected as {bob}."}],
        ["message", hello],
        ["message", to_room],
        ["message", just_you],
    ]

    # Carol, the tutorial's way: a message id "<socket id>-<counter>" each,
    # and auth (a function) giving the chat and the last offset she saw.
    carol, again = result["ids"]["carol"], result["ids"]["carolAgain"]
    assert carol != again
    assert replies["adduserCarol"] == {"ok": True, "id": carol, "name": "carol"}
    assert replies["carolHere"] == {"ok": True, "offset": 2}
    assert replies["onceOnly"] == {"ok": True, "offset": 3}
    assert replies["onceAgain"] == {"ok": True, "offset": 3, "duplicate": True}
    assert replies["afterRetry"] == {"ok": True, "offset": 4}
    assert replies["missed"] == [{"ok": True, "offset": 5}, {"ok": True, "offset": 6}]
    assert replies["rejoinCarol"] == {"ok": True, "id": again, "name": "carol"}
    assert replies["backAgain"] == {"ok": True, "offset": 7}

    def message(text: str, user: str, sender: str, offset: int) -> list:
        return ["message", {"message": text, "user": user, "id": sender, "offset": offset}]

    carol_here = message("carol here", "carol", carol, 2)
    once_only = message("once only", "carol", carol, 3)
    after_retry = message("after the retry", "carol", carol, 4)
    missed = [message("missed 1", "ann", ann, 5), message("missed 2", "ann", ann, 6)]
    back_again = message("back again", "carol", again, 7)
    assert seen["carol"] == [
        ["history", {"chat": chat_id, "after": 0, "last": 1}],  # first: the history
        ["message", hello],
        ["users", ["ann", "carol"]],
        ["private", {"id": carol, "name": "carol",
                     "msg": f"Welcome, carol! You are connected as {carol}."}],
        carol_here, once_only, after_retry,  # the retry was not sent again
    ]
    assert seen["carolAgain"] == [
        ["history", {"chat": chat_id, "after": 4, "last": 6}],  # what she missed, and no more
        *missed,
        ["users", ["ann", "carol"]],
        ["private", {"id": again, "name": "carol",
                     "msg": f"Welcome, carol! You are connected as {again}."}],
        back_again,
    ]
    assert seen["ann"][9:] == [
        ["users", ["ann", "carol"]],
        carol_here, once_only, after_retry,
        ["users", ["ann"]],
        *missed,
        ["users", ["ann", "carol"]],
        back_again,
    ]
    page = result["carol"]
    assert page["lastSeen"] == 4 and page["chat"] == chat_id
    assert page["shown"] == [[n, text] for n, text in enumerate(
        ["hello from node", "carol here", "once only", "after the retry",
         "missed 1", "missed 2", "back again"], 1)], "each message shown once, in order"
    assert await chat.store.count() == 7

    offset = "auth.serverOffset must be a whole number of at least 0 " \
        "(the last offset this client saw), not "
    assert replies["refusedConnections"] == [
        offset + "-1",
        offset + "a string",
        "auth.chat must be a chat id as the server sent it in history, not a number",
    ]

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

pytestmark = pytest.mark.e2e


JS = Path(__file__).parent / "js"

# How many recent messages a new client is sent, on both servers, and how
# many ann sends before bob and cat come. Kept small: python-engineio's
# client drops a long-polling connection whose response holds more than 16
# packets, and Node's server sends a whole history in one response.
HISTORY = 3
EARLY = 5
BAD_AUTH = [
    {"serverOffset": -1},
    {"serverOffset": "3"},
    {"serverOffset": True},
    {"serverOffset": 1.5},
    {"chat": 5},
    {"chat": "has space"},
]
BAD_MESSAGES = [(), ("hi", 5), ("hi", ""), ("hi", "with space"), ("hi", "id", "extra")]


async def scenario(url: str, transports: list[str]) -> dict[str, list]:
    """A chat between ann, bob and cat; returns the server's answers and
    what each client received, with connection ids replaced by the client
    names they belong to and the chat id by ``<chat>``.

    Bob and cat come after ann has sent more messages than a new client is
    sent; bob goes offline, misses messages, types one, comes back; ann
    sends a message twice under one id."""
    clients = {name: ChatClient(url, transports=transports) for name in ("ann", "bob", "cat")}
    ann, bob, cat = clients.values()
    ids: dict[str, str] = {}
    answers: dict[str, object] = {}
    # What a client received while it was hanging up: chatlab's server sends
    # a leaving connection the users list without it (Node's does not), and
    # whether that arrives before the client has gone is down to timing.
    leaving: set[int] = set()

    async def hang_up(client: ChatClient, how) -> None:
        start = len(client.log.entries)
        await how()
        during = list(client.log.entries)[start:]
        assert all(entry.event in ("users", "disconnect") for entry in during), during
        leaving.update(id(entry) for entry in during)

    async def come(name: str) -> None:
        client = clients[name]
        await client.connect()
        await client.wait_until(lambda: client.caught_up, what="its history arrived")
        await client.add_user(name)
        ids[client.id] = f"<{name}>"

    try:
        await come("ann")
        answers["early"] = [await ann.send(f"early {n}") for n in range(1, EARLY + 1)]
        await come("bob")
        await come("cat")
        assert [m.offset for m in bob.messages] == list(range(EARLY - HISTORY + 1, EARLY + 1))
        await ann.wait_for_users(3)
        answers["hello all"] = await bob.send("hello all")
        await ann.join("py")
        await bob.join("py")
        await ann.send("hello py", room="py")
        await cat.send("hello ann", to="ann")
        with pytest.raises(ChatRefused, match="join the room 'py' before sending to it"):
            await cat.send("x", room="py")
        with pytest.raises(ChatRefused, match="already joined as 'cat'"):
            await cat.add_user("bob")
        answers["refused messages"] = [await _refusal(cat, args) for args in BAD_MESSAGES]
        await ann.wait_for_message(user="cat")
        await bob.wait_for_message(room="py")

        # A retry under the same message id: acknowledged, not sent again.
        answers["retried"] = [await ann._call("message", ("once only", "ann-retry-1"), 5)
                              for _ in range(2)]
        answers["after the retry"] = await ann.send("after the retry")
        for client in clients.values():
            await client.wait_for_message(text="after the retry")

        # Bob goes offline, misses three messages, types one; back online
        # he gets exactly the missed ones, in order, and his goes out once.
        await hang_up(bob, bob.go_offline)
        await ann.wait_for_users(names=["ann", "cat"])
        await cat.wait_for_users(names=["ann", "cat"])
        answers["missed"] = [await ann.send("missed 1"), await cat.send("missed 2"),
                             await ann.send("missed 3")]
        typed = asyncio.ensure_future(bob.send("typed offline", timeout=10))
        await bob.wait_until(lambda: bob.pending == ["typed offline"], what="it is queued")
        before = len(bob.messages)
        await bob.go_online()
        ids[bob.id] = "<bob again>"
        answers["typed offline"] = await typed
        await ann.wait_for_message(text="typed offline")
        await cat.wait_for_message(text="typed offline")
        await bob.wait_for_message(text="typed offline")
        answers["bob back"] = [(m.offset, m.text) for m in bob.messages[before:]]

        answers["refused connections"] = [await _refused_connection(url, auth)
                                          for auth in BAD_AUTH]
        await hang_up(cat, cat.disconnect)
        await ann.wait_for_users(2)
        await bob.wait_for_users(2)
        chat = ann.chat
        assert chat is not None and bob.chat == chat
        return {
            "answers": answers,  # no connection or chat ids in them
            **{name: [(entry.event, _anonymous(entry.data, ids, chat))
                      for entry in client.log.entries
                      if entry.direction == "in" and id(entry) not in leaving
                      and entry.event not in ("connect", "disconnect")]
               for name, client in clients.items()},
        }
    finally:
        for client in clients.values():
            await client.disconnect()


async def _refusal(client: ChatClient, args: tuple) -> str:
    with pytest.raises(ChatRefused) as refused:
        await client._call("message", args, 5)
    return refused.value.reason


async def _refused_connection(url: str, auth: dict) -> str:
    client = ChatClient(url)
    try:
        with pytest.raises(ConnectionError, match="the server refused: ") as refused:
            await client.connect(auth=auth)
    finally:
        await client.disconnect()
    return str(refused.value).split("the server refused: ", 1)[1]


def _anonymous(value, ids: dict[str, str], chat: str) -> str:
    text = repr(value).replace(chat, "<chat>")
    for sid, name in ids.items():
        text = text.replace(sid, name)
    return text


class NodeServer:
    def __init__(self, history: int = 50) -> None:
        self.history = history
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> "NodeServer":
        if shutil.which("node") is None:
            pytest.fail("Node.js is needed for this test (the README's set-up installs it)")
        if not (JS / "node_modules" / "socket.io").is_dir():
            pytest.fail("run `npm ci --prefix tests/js` (make test does)")
        self.process = await asyncio.create_subprocess_exec(
            "node", str(JS / "chat-server.mjs"), "0", str(self.history),
            stdout=asyncio.subprocess.PIPE)
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
    chat = ChatServer(history=HISTORY)
    server = await chat.serve(name=f"reference-{transport}")
    try:
        on_chatlab = await scenario(server.url, [transport])
        assert await chat.store.count() == EARLY + 7
    finally:
        await server.stop()
    async with NodeServer(history=HISTORY) as node:
        on_node = await scenario(node.url, [transport])
    for key in on_chatlab:
        assert on_node[key] == on_chatlab[key], key
    assert on_node == on_chatlab

    answers = on_chatlab["answers"]
    assert answers["early"] == list(range(1, EARLY + 1))
    assert answers["hello all"] == EARLY + 1
    assert answers["refused messages"] == [
        "message needs the message text",
        "the message id must be a string, not a number",
        "the message id must be 1 to 64 visible ASCII characters "
        "(letters, digits, punctuation; no spaces)",
        "the message id must be 1 to 64 visible ASCII characters "
        "(letters, digits, punctuation; no spaces)",
        "message takes the message text and, optionally, a message id; not 3 arguments",
    ]
    retried = EARLY + 2
    assert answers["retried"] == [{"ok": True, "offset": retried},
                                  {"ok": True, "offset": retried, "duplicate": True}]
    assert answers["after the retry"] == retried + 1
    assert answers["missed"] == [retried + 2, retried + 3, retried + 4]
    assert answers["typed offline"] == retried + 5
    assert answers["bob back"] == [
        (retried + 2, "missed 1"), (retried + 3, "missed 2"), (retried + 4, "missed 3"),
        (retried + 5, "typed offline"),
    ]
    serverOffset = "auth.serverOffset must be a whole number of at least 0 " \
        "(the last offset this client saw), not "
    chat_id = "auth.chat must be a chat id as the server sent it in history, not "
    assert answers["refused connections"] == [
        serverOffset + "-1", serverOffset + "a string", serverOffset + "a boolean",
        serverOffset + "1.5", chat_id + "a number", chat_id + "a string of other characters",
    ]

    ann, bob = on_chatlab["ann"], on_chatlab["bob"]
    assert ann[0] == ("history", "({'chat': '<chat>', 'after': 0, 'last': 0},)")
    after = EARLY - HISTORY
    assert bob[0] == ("history", f"({{'chat': '<chat>', 'after': {after}, 'last': {EARLY}}},)")
    newest = bob[1:HISTORY + 1]
    assert [event for event, _ in newest] == ["message"] * HISTORY, "then the newest ones"
    assert all(f"'offset': {n}}}" in data for n, (_, data) in enumerate(newest, after + 1))
    once = [data for event, data in ann + bob + on_chatlab["cat"]
            if event == "message" and "once only" in data]
    assert len(once) == 3, "the retried message went to each client once"
    back = bob.index(("history", "({'chat': '<chat>', 'after': %d, 'last': %d},)"
                      % (retried + 1, retried + 4)))
    assert [event for event, _ in bob[back:back + 6]] == \
        ["history", "message", "message", "message", "users", "private"]
    assert "'message': 'missed 1'" in bob[back + 1][1]
    assert ann[-1] == ("users", "(['ann', 'bob'],)")  # cat left: users shrank
    assert all(event != "error" for event, _ in ann + bob)
    assert [event for event, _ in on_chatlab["cat"]].count("error") == 7  # 2 + 5 refusals

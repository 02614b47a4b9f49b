"""A RecordingClient on several namespaces: one log, each entry with its
namespace, and waits and look-ups by namespace. Real servers on 127.0.0.1."""

from __future__ import annotations

import pytest
import socketio

import chatlab
from chatlab.events import EventLog
from chatlab.widgets import EventLogWidget

pytestmark = pytest.mark.integration


class Echo(socketio.AsyncNamespace):
    """Answers ``say`` with ``heard`` on its own namespace, and refuses a
    client without the token when it has one."""

    def __init__(self, namespace: str, token: str | None = None) -> None:
        super().__init__(namespace)
        self.token = token

    async def on_connect(self, sid, environ, auth):
        if self.token is not None and (auth or {}).get("token") != self.token:
            raise socketio.exceptions.ConnectionRefusedError("wrong token", {"hint": "ask"})

    async def on_say(self, sid, *args):
        await self.emit("heard", args if len(args) != 1 else args[0], to=sid)


@pytest.fixture
async def server():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.register_namespace(Echo("/chat"))
    sio.register_namespace(Echo("/admin", token="s3cret"))
    running = await chatlab.serve(sio, name="test-recording-namespaces")
    yield running
    await chatlab.shutdown()


async def test_one_client_logs_each_event_with_its_namespace(server):
    ann = chatlab.RecordingClient("ann")
    await ann.connect(server.url, namespaces=["/chat", "/admin"], auth={"token": "s3cret"})
    await ann.emit("say", "hi chat", namespace="/chat")
    await ann.emit("say", "hi admin", namespace="/admin")
    await ann.wait_for("heard", namespace="/chat")
    await ann.wait_for("heard", namespace="/admin")

    assert ann.received("heard", namespace="/chat") == [("hi chat",)]
    assert ann.received("heard", namespace="/admin") == [("hi admin",)]
    assert sorted(ann.received("heard")) == [("hi admin",), ("hi chat",)]
    assert ann.received("connect", namespace="/chat") == [()]
    kinds = {(e.direction, e.event, e.namespace) for e in ann.log.entries}
    assert {("out", "say", "/chat"), ("out", "say", "/admin"),
            ("in", "connect", "/chat"), ("in", "connect", "/admin")} <= kinds
    assert ann.log.count("heard") == 2 and ann.log.count("heard", namespace="/chat") == 1


async def test_a_tuple_is_logged_as_the_arguments_the_server_gets(server):
    ann = chatlab.RecordingClient("ann")
    await ann.connect(server.url, namespaces=["/chat"])
    await ann.emit("say", ("two", b"\x00\x01"), namespace="/chat")
    await ann.wait_for("heard")
    [sent] = [e for e in ann.log.entries if e.direction == "out"]
    assert sent.data == ("two", b"\x00\x01") and sent.namespace == "/chat"
    assert ann.received("heard") == [("two", b"\x00\x01")], "bytes come back as bytes"


async def test_a_refused_namespace_is_logged_there_with_the_servers_data(server):
    eve = chatlab.RecordingClient("eve", reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError, match="/admin"):
        await eve.connect(server.url, namespaces=["/chat", "/admin"], auth={"token": "guess"})
    assert eve.received("connect_error", namespace="/admin") == [
        ({"message": "wrong token", "data": {"hint": "ask"}},)]
    assert eve.received("connect_error", namespace="/chat") == []
    assert not eve.connected


async def test_a_wait_on_one_namespace_ignores_the_others(server):
    ann = chatlab.RecordingClient("ann")
    await ann.connect(server.url, namespaces=["/chat", "/admin"], auth={"token": "s3cret"})
    await ann.emit("say", "only here", namespace="/chat")
    await ann.wait_for("heard", namespace="/chat")
    with pytest.raises(chatlab.WaitTimeout, match="'heard' was received on '/admin' 1 time"):
        await ann.wait_for("heard", namespace="/admin", timeout=0.05)


def test_the_event_log_shows_a_namespace_only_when_it_is_not_the_default():
    log = EventLog()
    box = EventLogWidget(log, title="ann")
    log.record("in", "message", "hello")
    log.record("in", "message", "hello", namespace="/<b>chat</b>")
    rows = box._rows.value
    first, second = rows.split('<div class="chatlab-row">')[1:]
    assert "chatlab-namespace" not in first
    assert ('<span class="chatlab-namespace"><bdi dir="auto">/&lt;b&gt;chat&lt;/b&gt;</bdi>'
            '</span> <span class="chatlab-event">') in second
    box.close()

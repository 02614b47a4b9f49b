"""Three ``chatlab serve`` nodes behind a real nginx, configured from
deploy/nginx.conf (see tests/nginx_support.py): the page and the chat work
through it over polling and websocket, a polling session stays on one node
(and breaks without sticky sessions: why they are needed), the websocket
upgrade passes, and the nodes' Host check holds with the flags the
configuration names."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest

import chatlab

from chatlab import ChatClient
from nginx_support import (
    DEPLOY_CONF, NODE_HEADER, WRAPPER, Nginx, Node, require_nginx, start_nginx, start_node,
)
from redis_support import RedisServer

pytestmark = pytest.mark.e2e

NAME = "chat.example.test"  # the name the chat is published under
# What deploy/nginx.conf tells each node: believe nginx's forwarded headers,
# answer the chat's name.
NODE_FLAGS = ("--trusted-proxy", "127.0.0.1", "--allow-host", NAME)
HANDSHAKE = "socket.io/?EIO=4&transport=polling"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Clients from other loopback addresses, so the hash puts them on other nodes.
SOURCES = [f"127.0.0.{n}" for n in range(2, 26)]


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[Node]]:
    require_nginx()  # before starting anything
    started: list[Node] = []
    try:
        for _ in range(3):
            started.append(start_node(*NODE_FLAGS))
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def nginx(nodes: list[Node], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    proxy = start_nginx([node.address for node in nodes], tmp_path_factory.mktemp("nginx"))
    yield proxy
    proxy.stop()


def session(source: str | None = None) -> aiohttp.ClientSession:
    """An HTTP session whose connections come from the address ``source``."""
    local = (source, 0) if source else None
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local),
                                 timeout=HTTP_TIMEOUT)


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[ChatClient]]]:
    """``await client(url, "ann", transports=[...], source="127.0.0.2")``: a
    ChatClient connected (from ``source``) and joined as ann."""
    made: list[tuple[ChatClient, aiohttp.ClientSession]] = []

    async def make(url: str, name: str, *, transports: list[str] | None,
                   source: str | None = None) -> ChatClient:
        http = session(source)
        chat_client = ChatClient(url, transports=transports, http_session=http)
        made.append((chat_client, http))
        await chat_client.connect()
        await chat_client.add_user(name)
        return chat_client

    yield make
    for chat_client, http in made:
        await chat_client.disconnect()  # also ends a reconnection in progress
        await http.close()


def requests_of(proxy: Nginx, sid: str) -> list[tuple[str, str, int, str]]:
    """The access log's entries of one engine.io session."""
    return [entry for entry in proxy.access_log() if f"sid={sid}" in entry[1]]


async def logged(proxy: Nginx, what: Callable[[], object], timeout: float = 5.0) -> object:
    """``what()`` once it is true: nginx writes a request's log line when the
    request ends, a moment after the client has its answer."""
    deadline = time.monotonic() + timeout
    while not (result := what()):
        if time.monotonic() > deadline:
            pytest.fail(f"not in nginx's access log within {timeout:g} s: {proxy.access_log()}")
        await asyncio.sleep(0.02)
    return result


async def get(url: str, source: str | None = None, **headers: str) -> tuple[int, dict, str]:
    async with session(source) as http:
        async with http.get(url, headers=headers) as response:
            return response.status, dict(response.headers), await response.text()


def test_the_shipped_configuration_as_it_is_passes_nginx_s_check(tmp_path) -> None:
    executable = require_nginx()
    config = WRAPPER.format(user="", prefix=tmp_path, node_header=NODE_HEADER,
                            site=DEPLOY_CONF.read_text())
    (tmp_path / "nginx.conf").write_text(config)
    checked = subprocess.run(
        [executable, "-t", "-p", f"{tmp_path}/", "-e", f"{tmp_path}/error.log",
         "-c", f"{tmp_path}/nginx.conf"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


async def test_the_chat_page_loads_through_nginx_under_its_name(nginx: Nginx) -> None:
    host = f"{NAME}:{nginx.port}"
    status, headers, page = await get(nginx.url, Host=host)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert 'src="static/load.js"' in page
    status, _, script = await get(nginx.url + "static/chat.js", Host=host)
    assert status == 200 and '"adduser"' in script


async def test_a_name_the_nodes_do_not_answer_is_refused_through_nginx(nginx: Nginx) -> None:
    status, _, text = await get(nginx.url, Host="rebind.evil.example")
    assert status == 403, text
    # nginx writes X-Forwarded-Host itself: a client cannot claim the chat's name.
    status, _, _ = await get(nginx.url, Host="rebind.evil.example", **{"X-Forwarded-Host": NAME})
    assert status == 403


async def test_the_page_s_own_origin_is_allowed_through_nginx(nginx: Nginx) -> None:
    host = f"{NAME}:{nginx.port}"
    status, _, body = await get(nginx.url + HANDSHAKE, Host=host, Origin=f"http://{host}")
    assert status == 200 and body.startswith("0"), body
    status, _, _ = await get(nginx.url + HANDSHAKE, Host=host, Origin="http://evil.example")
    assert status == 400


async def test_a_polling_client_chats_and_its_session_stays_on_one_node(nginx, client) -> None:
    ann = await client(nginx.url, "ann", transports=["polling"])
    for n in range(3):
        await ann.send(f"hello {n}")
    await ann.wait_for_message(user="ann", text="hello 2")
    assert ann.sio.transport() == "polling"

    sid = ann.sio.eio.sid
    # The handshake and at least one request per event: all answered, all by one node.
    entries = await logged(nginx, lambda: len(requests_of(nginx, sid)) >= 5
                           and requests_of(nginx, sid))
    assert {status for _, _, status, _ in entries} == {200}, entries
    assert len({node for _, _, _, node in entries}) == 1, entries


async def test_a_websocket_client_chats_through_nginx(nginx, client) -> None:
    before = len(nginx.access_log())
    bob = await client(nginx.url, "bob", transports=["websocket"])
    await bob.send("over a websocket")
    await bob.wait_for_message(user="bob", text="over a websocket")
    assert bob.sio.transport() == "websocket"
    # A websocket from the start carries no sid in its URL; nginx logs it
    # when it closes.
    await bob.sio.disconnect()
    [upgrade] = await logged(nginx, lambda: nginx.access_log()[before:])
    assert "transport=websocket" in upgrade[1] and upgrade[2] == 101, upgrade


async def test_polling_upgrades_to_a_websocket_on_the_same_node(nginx, client) -> None:
    cat = await client(nginx.url, "cat", transports=None)  # polling first, then the upgrade
    await cat.wait_until(lambda: cat.sio.transport() == "websocket", timeout=5,
                         what="the client upgraded to a websocket")
    await cat.send("upgraded")
    await cat.wait_for_message(user="cat", text="upgraded")

    sid = cat.sio.eio.sid
    await cat.sio.disconnect()  # nginx logs a websocket when it closes
    entries = await logged(nginx, lambda: [e for e in requests_of(nginx, sid)
                                           if "transport=websocket" in e[1]]
                           and requests_of(nginx, sid))
    assert 101 in {status for _, _, status, _ in entries}, entries
    assert len({node for _, _, _, node in entries}) == 1, entries


async def test_clients_from_several_addresses_spread_over_the_nodes(nginx, nodes) -> None:
    served_by = {}
    for source in SOURCES:
        status, headers, _ = await get(nginx.url + HANDSHAKE, source=source)
        assert status == 200
        served_by[source] = headers[NODE_HEADER]
    assert set(served_by.values()) <= {node.address for node in nodes}
    assert len(set(served_by.values())) > 1, served_by
    # ... and each address stays with its node.
    for source in SOURCES[:5]:
        _, headers, _ = await get(nginx.url + HANDSHAKE, source=source)
        assert headers[NODE_HEADER] == served_by[source]


async def test_without_sticky_sessions_a_polling_session_breaks(nodes, tmp_path) -> None:
    # Why deploy/nginx.conf hashes the client's address: taken in turn, the
    # second request of a session reaches a node that never heard of it.
    proxy = start_nginx([node.address for node in nodes], tmp_path / "nginx", sticky=False)
    try:
        async with session() as http:
            async with http.get(proxy.url + HANDSHAKE) as response:
                assert response.status == 200
                first = response.headers[NODE_HEADER]
                sid = json.loads((await response.text())[1:])["sid"]
            async with http.post(f"{proxy.url}{HANDSHAKE}&sid={sid}", data="40") as response:
                assert response.headers[NODE_HEADER] != first
                assert response.status == 400  # "Invalid session"
        with pytest.raises(ConnectionError):
            lost = ChatClient(proxy.url, transports=["polling"], reconnection=False)
            try:
                await lost.connect()
            finally:
                await lost.sio.disconnect()
    finally:
        proxy.stop()


# -- one chat over the nodes: `chatlab serve --redis` ---------------------------

@pytest.fixture
def redis_url() -> Iterator[str]:
    server = RedisServer()  # the cluster tests' own redis-server
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_one_chat_across_the_nodes_behind_nginx(redis_url, tmp_path, client) -> None:
    nodes = [start_node(*NODE_FLAGS, "--redis", redis_url) for _ in range(3)]
    proxy = start_nginx([node.address for node in nodes], tmp_path / "nginx")
    try:
        # Clients from addresses until two are on different nodes.
        first = await client(proxy.url, "ann", transports=["polling"], source=SOURCES[0])
        first_node = requests_of(proxy, first.sio.eio.sid)[0][3]
        for n, source in enumerate(SOURCES[1:]):
            _, headers, _ = await get(proxy.url + HANDSHAKE, source=source)
            if headers[NODE_HEADER] != first_node:
                break
        else:
            pytest.fail("every address hashed to one node")
        other = await client(proxy.url, "bob", transports=["websocket"], source=source)
        await first.wait_for_users(names=["ann", "bob"])
        await other.send("hello from another node")
        await first.wait_for_message(user="bob", text="hello from another node")
    finally:
        # The clients leave first: stopping the nodes under them would
        # start their reconnection, which would outlive the test.
        await chatlab.disconnect_all()
        proxy.stop()
        for node in nodes:
            node.stop()

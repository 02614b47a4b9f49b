"""The chat server answers only to its own host names, and believes
``X-Forwarded-*`` headers only from the proxies it is told to trust.

A rebinding page (its own name pointed at 127.0.0.1) sends ``Host`` and
``Origin`` of that name; these tests send the same headers over real
sockets to a real chat server.
"""

from __future__ import annotations

import socket
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import socketio

from chatlab import ChatServer, RunningServer
from chatlab.cli import main
from chatlab.hosts import AllowedHosts, TrustedProxies, client_address, default_allowed_hosts

pytestmark = pytest.mark.integration

EVIL = "rebind.evil.example"
POLLING = "/socket.io/?EIO=4&transport=polling"
WEBSOCKET = "/socket.io/?EIO=4&transport=websocket"
TIMEOUT = aiohttp.ClientTimeout(total=5)

Serve = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(**options)``: a ChatServer with those options, running."""
    servers: list[RunningServer] = []

    async def start(**options: object) -> RunningServer:
        chat = ChatServer(**options)  # type: ignore[arg-type]
        server = await chat.serve(name=f"hosts-{len(servers)}")
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def as_browser(host: str, port: int, scheme: str = "http") -> dict[str, str]:
    """The headers a browser sends to a page it knows as ``host:port``."""
    return {"Host": f"{host}:{port}", "Origin": f"{scheme}://{host}:{port}"}


async def get(server: RunningServer, path: str, headers: dict[str, str]
              ) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(server.url + path, headers=headers) as response:
            return response.status, dict(response.headers), await response.text()


async def websocket_status(server: RunningServer, headers: dict[str, str]) -> int:
    """101 when the websocket opens, else the status it was refused with."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        try:
            async with session.ws_connect(server.url + WEBSOCKET, headers=headers) as ws:
                opened = await ws.receive_str()
                assert opened.startswith("0{")  # an Engine.IO open packet
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


# -- a rebinding page ---------------------------------------------------------------


async def test_a_rebinding_page_is_refused_on_every_path(serve: Serve) -> None:
    server = await serve()
    rebinding = as_browser(EVIL, server.port)
    for path in ("/", "/static/chat.js", "/static/no-such-file", POLLING):
        status, headers, text = await get(server, path, rebinding)
        assert status == 403, path
        assert "Access-Control-Allow-Origin" not in headers, path
        assert f"--allow-host {EVIL}" in text and f"allowed_hosts=['{EVIL}']" in text, text
    assert await websocket_status(server, rebinding) == 403


async def test_its_own_names_are_answered(serve: Serve) -> None:
    server = await serve()
    for host in ("127.0.0.1", "localhost", "LocalHost", "[::1]"):
        for path in ("/", POLLING):
            status, headers, _ = await get(server, path, as_browser(host, server.port))
            assert status == 200, (host, path)
        assert headers["Access-Control-Allow-Origin"] == f"http://{host}:{server.port}"
        assert await websocket_status(server, as_browser(host, server.port)) == 101
    # On another port, or with none (as for port 80), the name is the same.
    status, _, _ = await get(server, "/", {"Host": "localhost"})
    assert status == 200


async def test_named_hosts_are_answered_and_others_still_refused(serve: Serve) -> None:
    server = await serve(allowed_hosts=["Classroom.example", "192.0.2.7"])
    for host in ("classroom.example", "192.0.2.7"):
        status, headers, _ = await get(server, POLLING, as_browser(host, server.port))
        assert status == 200, host
        assert headers["Access-Control-Allow-Origin"] == f"http://{host}:{server.port}"
        assert await websocket_status(server, as_browser(host, server.port)) == 101
    for host in (EVIL, "classroom.example.evil.example", "192.0.2.8"):
        status, headers, _ = await get(server, POLLING, as_browser(host, server.port))
        assert status == 403, host
        assert "Access-Control-Allow-Origin" not in headers


async def test_star_answers_every_host_on_purpose(serve: Serve) -> None:
    server = await serve(allowed_hosts=["*"])
    status, _, _ = await get(server, POLLING, as_browser(EVIL, server.port))
    assert status == 200


def test_bad_host_names_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="not a URL"):
        ChatServer(allowed_hosts=["http://classroom.example"])
    with pytest.raises(ValueError, match="has a port.*every port"):
        ChatServer(allowed_hosts=["classroom.example:5000"])
    with pytest.raises(TypeError, match=r"takes a list, e.g."):
        ChatServer(allowed_hosts="classroom.example")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an IP address or network"):
        ChatServer(trusted_proxies=["proxy.example"])


# -- forwarded headers --------------------------------------------------------------


def forwarded(host: str, port: int) -> dict[str, str]:
    """A request as a proxy at 127.0.0.1 passes it on for a page on ``host``."""
    return {"Host": f"127.0.0.1:{port}", "X-Forwarded-Host": host,
            "X-Forwarded-Proto": "https", "Origin": f"https://{host}"}


async def test_a_forwarded_host_from_an_untrusted_peer_is_not_own(serve: Serve) -> None:
    server = await serve()
    for path in ("/", POLLING):
        status, headers, _ = await get(server, path, forwarded(EVIL, server.port))
        assert "Access-Control-Allow-Origin" not in headers
        assert status == (200 if path == "/" else 400), path  # a foreign origin
    assert await websocket_status(server, forwarded(EVIL, server.port)) == 400


async def test_a_forwarded_host_from_a_trusted_proxy_is_own(serve: Serve) -> None:
    server = await serve(trusted_proxies=["127.0.0.0/8"], allowed_hosts=["chat.example.org"])
    headers = forwarded("chat.example.org", server.port)
    status, answer, _ = await get(server, POLLING, headers)
    assert status == 200
    assert answer["Access-Control-Allow-Origin"] == "https://chat.example.org"
    assert await websocket_status(server, headers) == 101
    # The host the proxy forwarded for is the one checked: a rebinding page
    # behind the proxy is refused.
    status, answer, _ = await get(server, POLLING, forwarded(EVIL, server.port))
    assert status == 403
    assert "Access-Control-Allow-Origin" not in answer
    # The nearest proxy's entry counts, not one the client sent before it.
    spoofed = {**headers, "X-Forwarded-Host": f"chat.example.org, {EVIL}"}
    assert (await get(server, POLLING, spoofed))[0] == 403


async def test_a_proxy_not_named_is_not_trusted(serve: Serve) -> None:
    server = await serve(trusted_proxies=["10.0.0.1"], allowed_hosts=["chat.example.org"])
    status, answer, _ = await get(server, POLLING, forwarded("chat.example.org", server.port))
    assert status == 400  # its Origin is not the page's own: Host says 127.0.0.1
    assert "Access-Control-Allow-Origin" not in answer


async def test_client_address_is_the_peer_or_who_a_trusted_proxy_forwarded_for(
    serve: Serve,
) -> None:
    seen: list[str] = []

    async def whoami(sid: str, environ: dict[str, object]) -> None:
        seen.append(client_address(environ))

    async def address_of(server: RunningServer, forwarded_for: str | None) -> str:
        server.sio.on("connect", whoami, namespace="/whoami")
        client = socketio.AsyncClient()
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        try:
            await client.connect(server.url, headers=headers, namespaces=["/whoami"],
                                 transports=["websocket"], wait_timeout=5)
        finally:
            await client.disconnect()
        return seen.pop()

    untrusted = await serve()
    assert await address_of(untrusted, None) == "127.0.0.1"
    assert await address_of(untrusted, "203.0.113.7") == "127.0.0.1"

    trusted = await serve(trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    assert await address_of(trusted, None) == "127.0.0.1"
    assert await address_of(trusted, "203.0.113.7") == "203.0.113.7"
    # Read from the right: past trusted proxies, up to the first other one.
    assert await address_of(trusted, "198.51.100.9, 203.0.113.7, 10.1.2.3") == "203.0.113.7"
    assert await address_of(trusted, "[2001:db8::5]:4711") == "2001:db8::5"


def test_trusted_proxies_read_forwarded_for_from_the_right() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert proxies.client("127.0.0.1", "203.0.113.7:4711") == "203.0.113.7"
    assert proxies.client("10.0.0.2", "10.0.0.3") == "10.0.0.3"  # all trusted: the first
    assert proxies.client("10.0.0.2", "not-an-address") == "10.0.0.2"
    assert proxies.client("192.0.2.1", "203.0.113.7") == "192.0.2.1"
    assert proxies.client("::ffff:127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert proxies.client(None, "203.0.113.7") == ""


def own_network_address() -> str | None:
    """An IPv4 address of this machine other than loopback (None if it has
    none): the one it would send from (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_listening_everywhere_a_pupil_reaches_it_by_its_address() -> None:
    address = own_network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    chat = ChatServer()
    server = await chat.serve(name="hosts-everywhere", host="0.0.0.0")
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            url = f"http://{address}:{server.port}{POLLING}"
            async with session.get(url, headers=as_browser(address, server.port)) as response:
                assert response.status == 200
            # By a name (which could point anywhere) it is refused.
            named = as_browser("teacher.example", server.port)
            async with session.get(url, headers=named) as response:
                assert response.status == 403
    finally:
        await server.stop()


def test_ip_addresses_of_the_machine_itself_are_its_own() -> None:
    hosts = AllowedHosts()
    assert hosts.allows("127.0.0.2:80") and hosts.allows("[::1]") and hosts.allows("localhost")
    # Listening on every interface, a pupil reaches it by one of its addresses.
    assert hosts.allows("192.168.1.10:5000", local_address="192.168.1.10")
    assert hosts.allows("192.168.1.10:5000", local_address="::ffff:192.168.1.10")
    assert not hosts.allows("192.168.1.11:5000", local_address="192.168.1.10")
    # A name could point anywhere, even at this machine's own address.
    assert not hosts.allows("teacher.example:5000", local_address="192.168.1.10")
    assert not hosts.allows("localhost.evil.example")
    assert not hosts.allows("")


# -- in a Jupyter kernel ------------------------------------------------------------


def as_proxied(host: str, server_port: int) -> dict[str, str]:
    """A request as jupyter-server-proxy passes it on: the browser's own
    Host (the Lab's or the hub's), with its path under the prefix."""
    prefix = f"/user/ann/proxy/{server_port}"
    return {"Host": host, "Origin": f"https://{host}", "X-Forwarded-Context": prefix,
            "X-ProxyContextPath": prefix, "X-Forwarded-Prefix": prefix}


async def test_on_a_jupyterhub_the_proxied_page_is_answered(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a JupyterHub's single-user server and the kernels it starts.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ann/")
    server = await serve()
    proxied = as_proxied("hub.example.org", server.port)
    status, headers, _ = await get(server, POLLING, proxied)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://hub.example.org"
    assert await websocket_status(server, proxied) == 101
    # Any host is answered there, but foreign origins are still refused.
    status, headers, _ = await get(server, POLLING, {**proxied, "Origin": "https://evil.example"})
    assert status == 400
    assert "Access-Control-Allow-Origin" not in headers


async def test_outside_a_hub_the_same_host_is_a_rebinding_and_refused(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    server = await serve()
    status, headers, _ = await get(server, POLLING, as_proxied("hub.example.org", server.port))
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    # A local Lab's proxy passes on the Lab's own local Host.
    lab = as_proxied("127.0.0.1:8888", server.port)
    assert (await get(server, POLLING, {**lab, "Origin": "http://127.0.0.1:8888"}))[0] == 200
    lab = as_proxied("localhost:8888", server.port)
    assert (await get(server, POLLING, {**lab, "Origin": "http://localhost:8888"}))[0] == 200


def test_the_default_hosts_follow_jupyterhub() -> None:
    assert default_allowed_hosts({"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"}) == ("*",)
    assert default_allowed_hosts({}) == ()
    # Naming hosts replaces the default: then only those are answered.
    assert AllowedHosts(["lab.test"]).any is False


# -- chatlab serve ------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value", "error"), [
    ("--allow-host", "http://classroom.example", "not a URL"),
    ("--allow-host", "classroom.example:5000", "has a port"),
    ("--trusted-proxy", "proxy.example", "not an IP address or network"),
])
def test_bad_cli_values_are_clear_errors(
    option: str, value: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", option, value])
    assert exited.value.code == 2
    assert error in capsys.readouterr().err


def test_the_cli_help_says_how_to_allow_a_classroom(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--allow-host NAME" in text and "--trusted-proxy ADDR" in text
    assert "0.0.0.0" in text and "IP address" in text

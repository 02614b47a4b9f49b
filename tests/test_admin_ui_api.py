"""chatlab.admin_ui: off unless asked for, protected when on, served from the
lesson's own server, and undone by stop(). Real servers on 127.0.0.1, real
python-socketio clients on the admin namespace."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
import socketio
from aiohttp import web
from engineio.async_socket import AsyncSocket

import chatlab
import chatlab.admin_ui
from chatlab import ChatServer, RecordingClient, RunningServer
from chatlab.admin_ui import ADMIN_NAMESPACE, AdminUI, AdminUINotInstalled, admin_ui

pytestmark = pytest.mark.integration

installed = pytest.mark.skipif(
    not (chatlab.admin_ui.UI_DIR / "index.html").is_file(),
    reason="the Socket.IO Admin UI is not installed (make install)")


@pytest.fixture(autouse=True)
async def stop_everything() -> AsyncIterator[None]:
    yield
    await chatlab.shutdown()


async def watched(password: str | None = "secret", **options: Any) -> tuple[RunningServer, AdminUI]:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    admin = admin_ui(sio, app, password=password, **options)
    return await chatlab.serve(sio, app=app, name=options.get("namespace", "admin-ui")), admin


async def admin_connection(server: RunningServer, auth: Any,
                           namespace: str = ADMIN_NAMESPACE) -> RecordingClient:
    """A client on the admin namespace; refused, its connect_error is logged."""
    client = RecordingClient("admin")
    try:
        await client.connect(server.url, namespaces=[namespace], auth=auth)
    except socketio.exceptions.ConnectionError:
        pass
    return client


def refusal(client: RecordingClient, namespace: str = ADMIN_NAMESPACE) -> Any:
    assert not client.connected
    (data,) = client.received("connect_error", namespace=namespace)
    return data[0]


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as response:
            return response.status, response.headers.get("Location", ""), await response.text()


# -- protected whenever it is on ---------------------------------------------------------


def test_a_strong_password_is_made_up_when_none_is_given() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    first, second = AdminUI(sio), AdminUI(sio)
    assert len(first.password) >= 20 and first.password != second.password
    assert AdminUI(sio, password="mine").password == "mine"
    for password in ("", 123):
        with pytest.raises(ValueError, match="password"):
            AdminUI(sio, password=password)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        AdminUI(sio, namespace="/")


@installed
async def test_the_right_credentials_get_the_servers_sockets() -> None:
    server, admin = await watched(password=None)
    await RecordingClient("learner").connect(server.url)
    client = await admin_connection(server, {"username": "admin", "password": admin.password})
    assert client.connected
    await client.wait_for("all_sockets", namespace=ADMIN_NAMESPACE)
    (sockets,) = client.received("all_sockets", namespace=ADMIN_NAMESPACE)[0]
    assert "/" in {socket["nsp"] for socket in sockets}


@installed
@pytest.mark.parametrize("auth, reason", [
    (None, "sign in with the username and password"),
    ({"sessionId": ""}, "sign in with the username and password"),
    ({"username": "admin", "password": "wrong"}, "invalid credentials"),
    ({"username": "root", "password": "secret"}, "invalid credentials"),
    ({"username": "admin", "password": ["secret"]}, "sign in with"),
])
async def test_anything_else_is_refused(auth: Any, reason: str) -> None:
    server, _ = await watched()
    client = await admin_connection(server, auth)
    assert reason in refusal(client)["message"]
    assert server.errors == []


@installed
async def test_a_lessons_own_admin_namespace_is_left_alone() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.on("connect", lambda sid, environ: None, namespace="/admin")
    app = web.Application()
    admin_ui(sio, app)
    server = await chatlab.serve(sio, app=app, name="admin-ui-own-admin")
    client = RecordingClient("learner")
    await client.connect(server.url, namespaces=["/admin"])  # no credentials asked
    assert client.connected


# -- off by default ----------------------------------------------------------------------


async def test_a_server_without_it_has_no_page_and_no_admin_namespace() -> None:
    server = await chatlab.serve(socketio.AsyncServer(async_mode="aiohttp"), name="plain")
    status, _, _ = await get(f"{server.url}/admin-ui/")
    assert status == 404
    for namespace in (ADMIN_NAMESPACE, "/admin"):
        client = await admin_connection(
            server, {"username": "admin", "password": "secret"}, namespace)
        assert not client.connected


# -- the page, from the lesson's server --------------------------------------------------


@installed
async def test_the_page_is_served_and_pointed_at_its_own_server() -> None:
    server, admin = await watched()
    status, location, _ = await get(f"{server.url}/admin-ui")
    assert status == 302 and location == "admin-ui/"  # relative: a proxy's prefix stays
    status, _, index = await get(f"{server.url}/admin-ui/")
    assert status == 200 and "<title>Socket.IO Admin UI</title>" in index
    assert index.index('src="chatlab-connection.js"') < index.index('src="js/')
    status, _, script = await get(f"{server.url}/admin-ui/chatlab-connection.js")
    assert status == 200 and f'"{ADMIN_NAMESPACE}"' in script
    css = index.split('href="css/')[1].split('"')[0]
    assert (await get(f"{server.url}/admin-ui/css/{css}"))[0] == 200


async def test_the_link_and_credentials() -> None:
    server, admin = await watched(username="teacher", password="p<w>")
    link = admin.link(server, environ={})
    assert str(link) == f"{server.url}/admin-ui/"
    assert repr(link) == (f"Open the Socket.IO Admin UI: {server.url}/admin-ui/\n"
                          f"username: teacher\npassword: p<w>")
    assert "<code>p&lt;w&gt;</code>" in link._repr_html_()
    hub = admin.link(server, environ={"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"})
    assert str(hub) == f"/user/ann/proxy/{server.port}/admin-ui/"


def test_a_missing_package_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(chatlab.admin_ui, "UI_DIR", tmp_path)
    with pytest.raises(AdminUINotInstalled, match=r"make install.*npm ci --prefix chatlab/web/vendor"):
        admin_ui(socketio.AsyncServer(async_mode="aiohttp"), web.Application())


# -- one server at a time, undone by stop() ----------------------------------------------


@installed
async def test_stop_undoes_the_instrumentation() -> None:
    before = AsyncSocket.__dict__["handle_post_request"]
    server, admin = await watched()
    assert AsyncSocket.__dict__["handle_post_request"] is not before
    await server.stop()
    assert AsyncSocket.__dict__["handle_post_request"] is before
    assert "_trigger_event" not in vars(server.sio)
    # Another server may be watched now.
    again, _ = await watched(namespace="/another-admin")
    assert again.running


@installed
async def test_one_server_at_a_time() -> None:
    first, _ = await watched()
    with pytest.raises(RuntimeError, match="already watched"):
        await watched(namespace="/second")
    assert first.running


@installed
async def test_handler_errors_are_still_recorded() -> None:
    server, admin = await watched()

    @server.sio.event
    async def boom(sid: str) -> None:
        raise ValueError("boom")

    client = RecordingClient("learner")
    await client.connect(server.url)
    await client.emit("boom")
    (error,) = await server.wait_for_errors(1)
    assert error.event == "boom"


async def test_the_chat_server_has_it_only_when_asked() -> None:
    plain = ChatServer()
    assert plain.admin_ui is None
    server = await plain.serve(name="admin-ui-plain-chat")
    assert (await get(f"{server.url}/admin-ui/"))[0] == 404
    client = await admin_connection(server, {"username": "admin", "password": "x"})
    assert not client.connected
    await server.stop()

    watched_chat = ChatServer(admin_ui=True)
    assert watched_chat.admin_ui is not None and len(watched_chat.admin_ui.password) >= 20
    server = await watched_chat.serve(name="admin-ui-chat")
    client = await admin_connection(server, {"username": "admin", "password": "x"})
    assert refusal(client)["message"] == "invalid credentials"
    client = await admin_connection(
        server, {"username": "admin", "password": watched_chat.admin_ui.password})
    assert client.connected


def test_the_ui_is_pinned_exactly() -> None:
    vendor = Path(chatlab.__file__).parent / "web" / "vendor"
    pinned = json.loads((vendor / "package.json").read_text())["dependencies"]["@socket.io/admin-ui"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), pinned
    lock = json.loads((vendor / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@socket.io/admin-ui"]["version"] == pinned


@installed
async def test_a_rerun_cell_watches_the_new_server() -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp")
    for password in ("first", "second"):  # the same cell, run twice
        app = web.Application()
        admin_ui(sio, app, password=password)
        server = await chatlab.serve(sio, app=app, name="admin-ui-rerun")
    client = await admin_connection(server, {"username": "admin", "password": "first"})
    assert refusal(client)["message"] == "invalid credentials"
    client = await admin_connection(server, {"username": "admin", "password": "second"})
    assert client.connected


def test_a_chat_server_given_a_password_uses_it():
    chat = chatlab.ChatServer(admin_ui="under-the-hood")
    assert chat.admin_ui is not None and chat.admin_ui.password == "under-the-hood"
    assert chatlab.ChatServer(admin_ui=False).admin_ui is None

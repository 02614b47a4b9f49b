"""A folder of the learner's pages served beside a Socket.IO server, on
real sockets: the chat's ``pages=``, ``folder_app`` for a plain server,
and the link to the page."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
import socketio
from yarl import URL

import chatlab
from chatlab import ChatServer, RunningServer
from chatlab.chat_server import CLIENT_FILE, CLIENT_PATH
from chatlab.pages import PAGES_PATH, add_folder, folder_app, pages_link

pytestmark = pytest.mark.integration


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>mine</title>")
    (page / "app.js").write_text("console.log('mine')")
    (tmp_path / "secret.txt").write_text("not to be served")
    return page


@pytest.fixture
async def chat_with_pages(folder: Path) -> AsyncIterator[RunningServer]:
    server = await ChatServer(pages=folder).serve(name="test-pages")
    yield server
    await chatlab.shutdown()


async def get(url: str, *, redirects: bool = True) -> tuple[int, str, aiohttp.typedefs.CIMultiDictProxy[str]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(URL(url, encoded=True), allow_redirects=redirects) as response:
            return response.status, await response.text(), response.headers


async def test_the_chat_serves_the_folder_at_mine_beside_its_own_page(chat_with_pages):
    url = chat_with_pages.url
    status, body, headers = await get(url + "/mine/")
    assert (status, body) == (200, "<!doctype html><title>mine</title>")
    assert headers["Cache-Control"] == "no-cache"  # a reload shows an edit
    status, body, _ = await get(url + "/mine/app.js")
    assert (status, body) == (200, "console.log('mine')")
    status, body, _ = await get(url + "/")
    assert status == 200 and "<title>chatlab chat</title>" in body


async def test_the_browser_client_is_served_beside_the_pages(chat_with_pages):
    if not CLIENT_FILE.is_file():
        pytest.skip("the Socket.IO browser client is not installed (make install)")
    status, body, _ = await get(chat_with_pages.url + CLIENT_PATH)
    assert status == 200 and body == CLIENT_FILE.read_text()


async def test_a_file_written_after_the_start_is_served(chat_with_pages, folder):
    assert (await get(chat_with_pages.url + "/mine/later.js"))[0] == 404
    (folder / "later.js").write_text("later")
    assert (await get(chat_with_pages.url + "/mine/later.js"))[:2] == (200, "later")


@pytest.mark.parametrize("path", [
    "/mine/%2e%2e/secret.txt", "/mine/..%2fsecret.txt", "/mine/%2e%2e%2fsecret.txt",
    "/mine/nothing.js",
])
async def test_nothing_outside_the_folder_is_served(chat_with_pages, path):
    status, body, _ = await get(chat_with_pages.url + path)
    assert status in (403, 404) and "not to be served" not in body


async def test_a_link_out_of_the_folder_is_not_followed(chat_with_pages, folder):
    (folder / "out.txt").symlink_to(folder.parent / "secret.txt")
    status, body, _ = await get(chat_with_pages.url + "/mine/out.txt")
    assert status == 404 and "not to be served" not in body


async def test_without_its_slash_the_path_redirects_relatively(chat_with_pages):
    status, _, headers = await get(chat_with_pages.url + "/mine", redirects=False)
    # Relative, so that under a proxy's prefix it stays under the prefix.
    assert (status, headers["Location"]) == (302, "mine/")


async def test_a_plain_server_serves_a_folder_with_folder_app(folder):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    async with chatlab.serve(sio, name="test-folder-app", app=folder_app(folder)) as server:
        assert (await get(server.url + "/mine/"))[0] == 200
        if CLIENT_FILE.is_file():
            assert (await get(server.url + CLIENT_PATH))[0] == 200
        assert (await get(server.url + "/socket.io/?EIO=4&transport=polling"))[0] == 200


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="there is no folder .*nowhere.*create it"):
        ChatServer(pages=tmp_path / "nowhere").make_app()


def test_the_path_must_start_and_end_with_a_slash(folder):
    from aiohttp import web
    with pytest.raises(ValueError, match="start and end with '/'"):
        add_folder(web.Application(), folder, at="/mine")


async def test_the_link_goes_through_the_hubs_proxy_on_a_hub(chat_with_pages):
    port = chat_with_pages.port
    assert str(pages_link(chat_with_pages, environ={})) == f"http://127.0.0.1:{port}{PAGES_PATH}"
    on_hub = pages_link(chat_with_pages, environ={"JUPYTERHUB_SERVICE_PREFIX": "/user/ann/"})
    assert str(on_hub) == f"/user/ann/proxy/{port}/mine/"
    assert 'href="/user/ann/proxy/' in on_hub._repr_html_()

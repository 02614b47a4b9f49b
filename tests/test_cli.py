"""``python -m chatlab serve``: the standalone chat server, run as a real
process and reached over real sockets."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from chatlab import ChatClient
from chatlab.cli import main

pytestmark = pytest.mark.e2e


ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0  # seconds for the process to print its URL
STOP_TIMEOUT = 5.0  # seconds for it to exit after a signal
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
URL_LINE = re.compile(r"^chatlab chat server on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)$")
HANDSHAKE = "socket.io/?EIO=4&transport=polling"


class Served:
    """A running ``chatlab serve`` process and the URL it printed."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` and return the exit code (within STOP_TIMEOUT)."""
        self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)


async def run_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatlab", *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def serve_cli() -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    """``await serve_cli("--cors-origin", "x")``: ``chatlab serve --port 0``
    running, once it has printed its URL."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*extra: str) -> Served:
        process = await run_cli("serve", "--port", "0", *extra)
        processes.append(process)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            pytest.fail(f"chatlab serve printed no URL within {START_TIMEOUT:g} s")
        text = line.decode().rstrip("\n")
        match = URL_LINE.match(text)
        if match is None:
            assert process.stderr is not None
            error = await process.stderr.read() if process.returncode is not None else b""
            pytest.fail(f"unexpected first line {text!r}; stderr: {error.decode()!r}")
        assert int(match.group(2)) != 0
        return Served(process, match.group(1))

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        async with session.get(url, headers=headers) as response:
            return response.status, dict(response.headers), await response.text()


def free_port_held() -> socket.socket:
    """A listening socket on 127.0.0.1 that keeps its port taken."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


async def test_serves_the_page_its_script_and_socketio(serve_cli) -> None:
    served = await serve_cli()

    status, headers, page = await get(served.url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert 'src="static/vendor/socket.io.min.js"' in page  # the pinned client, served here
    assert 'src="static/load.js"' in page  # which loads the page's own script

    status, headers, script = await get(served.url + "static/chat.js")
    assert status == 200
    assert "javascript" in headers["Content-Type"]
    assert '"adduser"' in script

    status, headers, client = await get(served.url + "static/vendor/socket.io.min.js")
    assert status == 200, "make install puts the Socket.IO client beside the page"
    assert "javascript" in headers["Content-Type"]
    assert "Socket.IO v4.8.4" in client

    status, _, body = await get(served.url + HANDSHAKE)
    assert status == 200
    assert body.startswith("0")  # an engine.io "open" packet
    opened = json.loads(body[1:])
    assert opened["sid"]
    assert "websocket" in opened["upgrades"]

    assert await served.stop() == 0


async def test_a_full_chat_then_sigterm_stops_it_cleanly(serve_cli) -> None:
    served = await serve_cli()
    ann, bob = ChatClient(served.url), ChatClient(served.url)
    try:
        for client, name in ((ann, "ann"), (bob, "bob")):
            await client.connect()
            await client.add_user(name)
        await ann.wait_for_users(names=["ann", "bob"])
        await ann.send("hello from ann")
        await bob.send("hello from bob")
        assert (await bob.wait_for_message(user="ann")).text == "hello from ann"
        assert (await ann.wait_for_message(user="bob")).text == "hello from bob"

        assert await served.stop(signal.SIGTERM) == 0
        # Their connections ended with it.
        await ann.wait_until(lambda: ann.state == "disconnected", what="ann was disconnected")
        await bob.wait_until(lambda: bob.state == "disconnected", what="bob was disconnected")
    finally:
        await ann.disconnect()
        await bob.disconnect()
    assert served.process.stderr is not None
    assert b"Traceback" not in await served.process.stderr.read()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_it_with_exit_code_0(serve_cli, signum: int) -> None:
    served = await serve_cli()
    assert await served.stop(signum) == 0
    stdout, stderr = await served.process.communicate()
    assert stdout == b""  # nothing after the URL line
    assert b"Traceback" not in stderr
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(served.url)


async def test_a_taken_port_is_a_clear_error_not_a_traceback() -> None:
    holder = free_port_held()
    port = holder.getsockname()[1]
    try:
        process = await run_cli("serve", "--port", str(port))
        stdout, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    finally:
        holder.close()
    assert process.returncode == 2
    assert stdout == b""
    message = stderr.decode()
    assert message.count("\n") == 1, message  # one line
    assert f"port {port}" in message
    assert "already in use" in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("options", "origin", "allowed"),
    [
        ((), "https://example.org", False),
        ((), "http://localhost:1234", True),
        ((), "http://127.0.0.1:8888", True),
        (("--cors-origin", "https://example.org"), "https://example.org", True),
        (("--cors-origin", "https://example.org"), "https://elsewhere.example", False),
        (("--cors-origin", "https://a.example", "--cors-origin", "https://b.example"),
         "https://b.example", True),
        (("--cors-origin", "*"), "https://elsewhere.example", True),
    ],
    ids=[
        "foreign-refused-by-default",
        "localhost-allowed-by-default",
        "127.0.0.1-allowed-by-default",
        "added-origin-allowed",
        "other-origin-still-refused",
        "second-added-origin-allowed",
        "star-allows-all",
    ],
)
async def test_cors_origins(serve_cli, options: tuple[str, ...], origin: str, allowed: bool) -> None:
    served = await serve_cli(*options)
    status, headers, _ = await get(served.url + HANDSHAKE, Origin=origin)
    if allowed:
        assert status == 200
        assert headers.get("Access-Control-Allow-Origin") in (origin, "*")
    else:
        assert status == 400
        assert "Access-Control-Allow-Origin" not in headers
    assert await served.stop() == 0


async def test_a_token_lets_in_only_clients_that_give_it(serve_cli) -> None:
    served = await serve_cli("--token", "s3cret")
    stranger, ann = ChatClient(served.url), ChatClient(served.url)
    try:
        with pytest.raises(ConnectionError, match="this chat needs a token"):
            await stranger.connect()
        with pytest.raises(ConnectionError, match="wrong token"):
            await stranger.connect(auth={"token": "guess"})
        await ann.connect(auth={"token": "s3cret"})
        await ann.add_user("ann")
        await ann.send("in with the token")
        assert (await ann.wait_for_message(user="ann")).text == "in with the token"
    finally:
        await ann.disconnect()
        await stranger.disconnect()
    assert await served.stop() == 0


@pytest.mark.parametrize(
    "argv",
    [[], ["serve", "--port", "70000"], ["serve", "--port", "five"], ["launch"],
     ["serve", "--token", ""], ["serve", "--rate-limit", "-1"], ["serve", "--burst", "0"],
     ["serve", "--rate-limit", "nan"]],
    ids=["no-command", "port-too-big", "port-not-a-number", "unknown-command", "empty-token",
         "negative-rate-limit", "burst-of-0", "rate-limit-nan"],
)
def test_a_bad_command_line_exits_2_with_usage(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: chatlab" in capsys.readouterr().err


async def test_with_a_database_file_the_history_survives_a_restart(serve_cli, tmp_path) -> None:
    db = str(tmp_path / "chat.db")
    first = await serve_cli("--db", db)
    ann = ChatClient(first.url)
    try:
        await ann.connect()
        await ann.add_user("ann")
        assert await ann.send("before the restart") == 1
    finally:
        await ann.disconnect()
    assert await first.stop() == 0

    second = await serve_cli("--db", db)
    bob = ChatClient(second.url)
    try:
        await bob.connect()
        await bob.wait_until(lambda: bob.caught_up, what="bob has the history")
        assert [(m.offset, m.user, m.text) for m in bob.messages] == [
            (1, "ann", "before the restart")]
        await bob.add_user("bob")
        assert await bob.send("after it") == 2  # offsets go on from the file
    finally:
        await bob.disconnect()
    assert await second.stop() == 0


async def test_a_database_path_that_cannot_be_opened_is_a_clear_error(tmp_path) -> None:
    missing = tmp_path / "no such folder" / "chat.db"
    process = await run_cli("serve", "--port", "0", "--db", str(missing))
    stdout, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    assert process.returncode == 2
    assert stdout == b""
    message = stderr.decode()
    assert message.count("\n") == 1, message
    assert "cannot use" in message and "message database" in message
    assert "Traceback" not in message

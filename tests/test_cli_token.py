"""``chatlab serve`` with a token from a file or the environment, which other
users of the machine cannot read in its command line; and the clear errors
for a token given badly. Real processes, reached over real sockets."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest

from chatlab import ChatClient
from chatlab.cli import TOKEN_VARIABLE, main

pytestmark = pytest.mark.e2e


ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 15.0  # seconds for the process to print its URL
STOP_TIMEOUT = 5.0
URL_LINE = re.compile(r"^chatlab chat server on (http://127\.0\.0\.1:\d+)/ \(Ctrl-C to stop\)$")
TOKEN = "open sesame"


@pytest.fixture
async def serve_cli() -> AsyncIterator[Callable[..., Awaitable[tuple[asyncio.subprocess.Process, str]]]]:
    """``await serve_cli(*args, env={...})``: ``chatlab serve --port 0``
    running with ``args`` and these environment variables besides ours,
    once it has printed its URL; returns the process and the URL."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*args: str, env: dict[str, str] | None = None
                    ) -> tuple[asyncio.subprocess.Process, str]:
        environ = {k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatlab", "serve", "--port", "0", *args, cwd=ROOT,
            env={**environ, **(env or {})},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        processes.append(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        match = URL_LINE.match(line.decode().rstrip("\n"))
        assert match is not None, f"unexpected first line {line!r}"
        return process, match.group(1)

    yield start
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)


async def only_the_token_gets_in(url: str) -> None:
    stranger, ann = ChatClient(url), ChatClient(url)
    with pytest.raises(ConnectionError, match="wrong token"):
        await stranger.connect(auth={"token": "guess"})
    await ann.connect(auth={"token": TOKEN})
    try:
        await ann.add_user("ann")
        assert await ann.send("in with the token") == 1
    finally:
        await ann.disconnect()


def command_line(process: asyncio.subprocess.Process) -> str:
    """What every user of the machine can read of a process's command line."""
    return Path(f"/proc/{process.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


async def test_the_token_from_a_file(serve_cli, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")  # as an editor or `echo` leaves it
    process, url = await serve_cli("--token-file", str(token_file))
    await only_the_token_gets_in(url)
    if sys.platform == "linux":
        assert TOKEN not in command_line(process)


async def test_the_token_from_the_environment(serve_cli) -> None:
    process, url = await serve_cli(env={TOKEN_VARIABLE: TOKEN})
    await only_the_token_gets_in(url)
    if sys.platform == "linux":
        assert TOKEN not in command_line(process)


BAD = [
    pytest.param(["--token", "a", "--token-file", "{file}"], {}, "give the token one way only, "
                 "not with both --token and --token-file", id="token-and-file"),
    pytest.param(["--token", "a"], {TOKEN_VARIABLE: "b"}, "give the token one way only, "
                 f"not with both --token and {TOKEN_VARIABLE}", id="token-and-variable"),
    pytest.param(["--token-file", "{file}"], {TOKEN_VARIABLE: "b"}, "give the token one way "
                 f"only, not with both --token-file and {TOKEN_VARIABLE}", id="file-and-variable"),
    pytest.param([], {TOKEN_VARIABLE: ""}, f"{TOKEN_VARIABLE} is set but empty",
                 id="empty-variable"),
    pytest.param(["--token-file", "{missing}"], {}, "cannot read the token file",
                 id="missing-file"),
    pytest.param(["--token-file", "{folder}"], {}, "cannot read the token file",
                 id="folder"),
    pytest.param(["--token-file", "{empty}"], {}, "is empty: put the token on its first line",
                 id="empty-file"),
    pytest.param(["--token-file", "{blank}"], {}, "is empty: put the token on its first line",
                 id="blank-first-line"),
    pytest.param(["--token-file", "{two_lines}"], {}, "has more than one line",
                 id="two-lines"),
    pytest.param(["--token-file", "{binary}"], {}, "is not UTF-8 text", id="not-text"),
]


@pytest.mark.parametrize("args,env,words", BAD)
def test_a_token_given_badly_is_a_clear_error(args, env, words, tmp_path, monkeypatch,
                                              capsys) -> None:
    files = {"file": "a\n", "empty": "", "blank": "\nsecret\n", "two_lines": "a\nb\n"}
    paths = {name: tmp_path / name for name in files}
    for name, text in files.items():
        paths[name].write_text(text)
    (tmp_path / "binary").write_bytes(b"\xff\xfe token")
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = ["serve", "--port", "0"] + [arg.format(
        missing=tmp_path / "nowhere", folder=tmp_path, binary=tmp_path / "binary",
        **paths) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "usage: chatlab" in error and words in error, error

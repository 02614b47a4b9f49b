"""One chat server per database file: a second one, in another process
(``chatlab serve --db`` twice) or in the same kernel, is refused with a
clear error, and the file is free again once the first stops, as when a
notebook cell is run again. (tests/test_store.py: two stores in one
process.)"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from pathlib import Path
from typing import AsyncIterator

import pytest

import chatlab
from chatlab import ChatClient, ChatServer
from chatlab.store import DatabaseInUseError, MessageStore

from test_cli import START_TIMEOUT, STOP_TIMEOUT, run_cli, serve_cli  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

EXIT_CANNOT_START = 2

# Another process that opens the store, says so, and closes it when told.
HOLDER = textwrap.dedent("""
    import asyncio, sys
    from chatlab.store import MessageStore

    async def main(path):
        store = MessageStore(path)
        await store.add("holder", "sid-h", "from the other process")
        print("open", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await store.close()

    asyncio.run(main(sys.argv[1]))
""")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


@pytest.fixture
async def holder(db: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another Python process with ``db`` open in a MessageStore."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(db),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
    assert line == b"open\n"
    yield process
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_a_file_another_process_has_open_is_refused_until_it_closes(db, holder):
    store = MessageStore(db)
    with pytest.raises(DatabaseInUseError) as refused:
        await store.count()
    assert str(refused.value) == (
        f"another chatlab server is using {db}; stop it first, or give this one another file")
    holder.stdin.write(b"close\n")
    assert await asyncio.wait_for(holder.wait(), STOP_TIMEOUT) == 0
    try:
        assert [m.text for m in await store.after(0)] == ["from the other process"]
    finally:
        await store.close()


async def test_a_process_that_dies_with_the_file_open_lets_go_of_it(db, holder):
    holder.kill()  # no close(): the system drops its lock with the process
    await holder.wait()
    store = MessageStore(db)
    try:
        assert await store.count() == 1
    finally:
        await store.close()


async def test_chatlab_serve_twice_on_one_file_the_second_exits_with_the_reason(
        db, serve_cli):  # noqa: F811 (the fixture)
    first = await serve_cli("--db", str(db))
    second = await run_cli("serve", "--port", "0", "--db", str(db))
    out, err = await asyncio.wait_for(second.communicate(), START_TIMEOUT)
    assert second.returncode == EXIT_CANNOT_START
    assert err.decode() == (
        f"chatlab: another chatlab server is using {db}; stop it first, "
        f"or give this one another file\n")
    assert out == b""
    # The first goes on; once it has stopped, the file is free again.
    client = ChatClient(first.url.rstrip("/"))
    await client.connect()
    await client.add_user("ann")
    assert await client.send("still here") == 1
    await client.disconnect()
    assert await first.stop(signal.SIGTERM) == 0
    again = await serve_cli("--db", str(db))
    client = ChatClient(again.url.rstrip("/"))
    await client.connect()
    await client.add_user("ann")
    assert await client.send("after a restart") == 2, "the same history"
    await client.disconnect()
    assert await again.stop(signal.SIGTERM) == 0


async def test_a_cell_run_again_replaces_its_chat_on_the_same_file(db):
    """``chat = ChatServer(db=...); await chat.serve()`` run twice: the new
    chat takes over the file (the old one stops first), while a chat under
    another name is refused; stopped, the file can be served again."""
    try:
        first = ChatServer(db=db)
        server = await first.serve(name="lesson")
        ann = ChatClient(server.url)
        await ann.connect()
        await ann.add_user("ann")
        assert await ann.send("one") == 1
        await ann.disconnect()

        again = ChatServer(db=db)  # the cell, run again
        server = await again.serve(name="lesson")
        assert chatlab.running_servers() == {"lesson": server}
        bob = ChatClient(server.url)
        await bob.connect()
        await bob.add_user("bob")
        assert await bob.send("two") == 2, "the same file, the same history"
        assert [m.text for m in bob.messages] == ["one", "two"]

        other = ChatServer(db=db)
        with pytest.raises(DatabaseInUseError, match="another chatlab server in this process"):
            await other.serve(name="another")
        assert chatlab.running_servers() == {"lesson": server}, "nothing started, nothing stopped"

        await chatlab.shutdown()  # stopping lets go of the file
        server = await other.serve(name="another")
        carol = ChatClient(server.url)
        await carol.connect()
        await carol.add_user("carol")
        assert await carol.send("three") == 3
    finally:
        await chatlab.shutdown()

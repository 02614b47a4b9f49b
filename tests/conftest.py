"""Shared fixtures: a real chat server on 127.0.0.1 and clients for it; and
every test's tier (unit, integration or e2e: see pyproject.toml)."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import AsyncIterator, Awaitable, Callable

import pytest

import chatlab
from chatlab import ChatClient, ChatServer, RecordingClient, RunningServer

_names = itertools.count()

TIERS = ("unit", "integration", "e2e")

# A test module names its tier with ``pytestmark``; notebooks run by nbval
# are e2e.
@pytest.hookimpl(tryfirst=True)  # before -m picks tests by their marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker("e2e")
            _skip_without_redis_server(item)
    wrong: dict[str, list[str]] = {}
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if len(tiers) != 1:
            wrong.setdefault(item.path.name, tiers)
    if wrong:
        found = "; ".join(f"{name}: {tiers or 'none'}" for name, tiers in sorted(wrong.items()))
        raise pytest.UsageError(
            "every test needs exactly one tier mark of " + ", ".join(TIERS) + ": give the "
            f"module a pytestmark. Found: {found}")


# Lessons whose cells need a redis-server program (they skip them without
# one, so their stored outputs cannot match).
NEEDS_REDIS_SERVER = ("10-scaling-out.ipynb",)


def _skip_without_redis_server(item: pytest.Item) -> None:
    if item.path.name not in NEEDS_REDIS_SERVER or os.environ.get("CHATLAB_REQUIRE_REDIS"):
        return
    from chatlab.cluster.local_redis import find_redis_server
    if find_redis_server() is None:
        item.add_marker(pytest.mark.skip(
            reason=f"{item.path.name} needs redis-server, which is not installed "
                   f"(set CHATLAB_REQUIRE_REDIS to fail instead)"))


@pytest.fixture(autouse=True)
async def no_tasks_left() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop. python-socketio's
    client ends its own tasks a moment after disconnect() returns, so they
    get a few seconds; anything still pending then is a leak."""
    before = asyncio.all_tasks()
    yield
    leftover = asyncio.all_tasks() - before - {asyncio.current_task()}
    if leftover:
        _, pending = await asyncio.wait(leftover, timeout=5)
        assert not pending, f"tasks left running: {pending}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A module that sets FAST_TOO = True runs each of its tests that uses
    # the chat twice: as the lessons serve it, and with chatlab.fast's
    # speed-ups, as `chatlab serve` does.
    if "chat" in metafunc.fixturenames and getattr(metafunc.module, "FAST_TOO", False):
        metafunc.parametrize("chat", ["plain", "fast"], indirect=True)


@pytest.fixture
async def chat(request: pytest.FixtureRequest) -> AsyncIterator[ChatServer]:
    """A chat server, running (its handle is ``chat.running``)."""
    server = ChatServer(fast=getattr(request, "param", "plain") == "fast")
    server.running = await server.serve(name=f"test-chat-{next(_names)}")  # type: ignore[attr-defined]
    yield server
    await chatlab.shutdown()
    assert not chatlab.running_servers()


@pytest.fixture
def chat_server(chat: ChatServer) -> RunningServer:
    return chat.running  # type: ignore[attr-defined]


@pytest.fixture
def user(chat_server: RunningServer) -> Callable[..., Awaitable[ChatClient]]:
    """``await user("ann")``: a ChatClient connected and joined as ann;
    ``await user()``: connected but not joined."""

    async def make(name: str | None = None, **options: object) -> ChatClient:
        client = ChatClient(chat_server.url, **options)  # type: ignore[arg-type]
        await client.connect()
        if name is not None:
            await client.add_user(name)
        return client

    return make


@pytest.fixture
async def raw(chat_server: RunningServer) -> AsyncIterator[Callable[..., Awaitable[RecordingClient]]]:
    """``await raw("ann")``: a plain python-socketio client (recording every
    event) connected to the chat, for checking the protocol byte for byte."""
    clients: list[RecordingClient] = []

    async def make(name: str = "raw", transports: list[str] | None = None) -> RecordingClient:
        client = RecordingClient(name)
        await client.connect(chat_server.url, transports=transports)
        clients.append(client)
        return client

    yield make
    # Disconnected here; the chat fixture's shutdown then stops the server.
    for client in clients:
        await client.shutdown()

"""What the tests of the lesson checks share: the stored solutions, shorter
waits, and the right-answer and untouched-stub expectations."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any, Awaitable, Callable

import pytest
import socketio

import chatlab
from chatlab.exercises import harness

SOLUTIONS = Path(__file__).parent.parent / "notebooks" / "solutions"

Check = Callable[[Any], Awaitable[None]]


def load_solution(filename: str) -> ModuleType:
    """The solution stored in notebooks/solutions/, as a module."""
    spec = importlib.util.spec_from_file_location(f"solution_{filename[:2]}", SOLUTIONS / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
async def quick_checks_that_clean_up(monkeypatch: pytest.MonkeyPatch):
    # A wrong answer is found out when an event does not come; wait less
    # for it here than a learner's check does.
    monkeypatch.setattr(harness, "WAIT", 1.0)
    yield
    assert chatlab.running_servers() == {}, "the check left a server running"


async def assert_passes(check: Check, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await check(answer)
    assert capsys.readouterr().out.startswith("✅ Correct:")


async def assert_not_attempted(check: Check, stub: Any, start: str,
                               capsys: pytest.CaptureFixture[str],
                               caplog: pytest.LogCaptureFixture) -> None:
    """The untouched stub gives the ⏭ line starting with ``start``, nothing
    on stderr, and no log line: its errors are the check's to report."""
    await check(stub)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert caplog.text == ""
    assert captured.out.startswith(start), captured.out


def server_with_adduser() -> tuple[socketio.AsyncServer, dict[str, str]]:
    """A server with the ``adduser`` handler the chat lessons give, and the
    users dict it fills, for a test to add the handler under test to."""
    sio = socketio.AsyncServer(async_mode="aiohttp")
    users: dict[str, str] = {}

    @sio.event
    async def adduser(sid, name=None):
        users[sid] = name
        await sio.emit("users", list(users.values()))

    return sio, users

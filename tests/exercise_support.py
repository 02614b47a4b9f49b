"""What the tests of the lesson checks share: the stored solutions, a limit
on how long a check may take, and the right-answer and untouched-stub
expectations."""

from __future__ import annotations

import importlib.util
import time
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


# harness.WAIT in these tests. A check finds a wrong answer out from what
# happened (an error, an acknowledgement, a handler that finished), never by
# waiting its time out: a test that takes this long has a check that did.
PATIENCE = 5.0

# harness.WAIT for a test of a handler that never finishes, where only time
# can tell (it asks for the `waits_out_a_timeout` fixture).
SHORT_WAIT = 1.0


@pytest.fixture
def waits_out_a_timeout() -> None:
    """The check under test must wait out its timeout (a handler that never
    finishes): a short WAIT, and no limit on how long the test takes."""


@pytest.fixture(autouse=True)
async def quick_checks_that_clean_up(monkeypatch: pytest.MonkeyPatch,
                                     request: pytest.FixtureRequest):
    limited = "waits_out_a_timeout" not in request.fixturenames
    monkeypatch.setattr(harness, "WAIT", PATIENCE if limited else SHORT_WAIT)
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert chatlab.running_servers() == {}, "the check left a server running"
    if limited:
        assert took < PATIENCE, (
            f"the test took {took:.1f} s: a check waited out harness.WAIT instead of "
            f"settling on an event")


async def assert_passes(check: Check, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await check(answer)
    assert capsys.readouterr().out.startswith("✓ passed:")


async def assert_not_attempted(check: Check, stub: Any, start: str,
                               capsys: pytest.CaptureFixture[str],
                               caplog: pytest.LogCaptureFixture) -> None:
    """The untouched stub gives the "not tried yet" line starting with ``start``, nothing
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

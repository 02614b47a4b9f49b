"""The lesson 09 check: Socket.IO spoken by hand over a bare websocket,
right, wrong and untouched, against a real chat server and a real window's
client."""

from __future__ import annotations

import json

import aiohttp
import pytest

import chatlab
from chatlab.exercises import ExerciseFailed
from chatlab.exercises.by_hand import check_by_hand, check_heartbeat
from exercise_support import load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)
from exercise_support import waits_out_a_timeout  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

solution = load_solution("09-under-the-hood.py")


@pytest.fixture
async def lesson():
    """The lesson's chat, and Ann's window's client."""
    chat = chatlab.ChatServer()
    server = await chat.serve(name="test-by-hand")
    window = chatlab.ChatClient(server.url)
    await window.connect()
    await window.add_user("Ann")
    yield chat, server, window
    await window.disconnect()
    await server.stop()


def speaker(*, framing=True, connect=True, join=True):
    """A hand-made client, right unless told to make one mistake."""

    async def speak(url, name, text):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(solution.websocket_url(url)) as ws:
                await ws.receive_str()
                if connect:
                    await ws.send_str("40")
                    await ws.receive_str()
                prefix = "42" if framing else ""  # without it: bare JSON
                if join:
                    await ws.send_str(prefix + json.dumps(["adduser", name]))
                await ws.send_str(prefix + json.dumps(["message", text]))

    return speak


async def test_the_solution_passes(lesson, capsys) -> None:
    await check_by_hand(solution.speak, *lesson)
    out = capsys.readouterr().out
    assert out.startswith("✓ passed:") and "'Ann''s window shows it" in out


async def test_the_stub_is_not_tried_yet(lesson, capsys) -> None:
    async def speak(url, name, text):
        raise NotImplementedError

    await check_by_hand(speak, *lesson)
    assert capsys.readouterr().out.startswith("– not tried yet:")


@pytest.mark.parametrize(("mistake", "said"), [
    ({"framing": False}, "cannot read"),
    ({"connect": False}, "no Socket.IO CONNECT"),
    ({"join": False}, "no 'adduser' event"),
])
async def test_a_wrong_answer_says_which_packet(lesson, mistake, said) -> None:
    with pytest.raises(ExerciseFailed) as failed:
        await check_by_hand(speaker(**mistake), *lesson)
    assert said in failed.value.happened
    assert "Traceback" not in failed.value.block()


async def test_the_optional_part_passes_with_pongs(waits_out_a_timeout, capsys) -> None:
    await check_heartbeat(solution.stay, seconds=2.5)
    assert capsys.readouterr().out.startswith("✓ passed:")


async def test_never_answering_pings_is_dropped_at_the_ping_timeout(waits_out_a_timeout) -> None:
    async def stay(url, seconds):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(solution.websocket_url(url)) as ws:
                await ws.receive_str()
                await ws.send_str("40")
                async for _ in ws:  # reads, answers nothing: until the server drops it
                    pass

    with pytest.raises(ExerciseFailed) as failed:
        await check_heartbeat(stay, seconds=2.5)
    assert "closed the connection at the ping timeout" in failed.value.happened

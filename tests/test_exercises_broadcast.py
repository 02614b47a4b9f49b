"""The lesson 02 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations


import pytest
import socketio

from chatlab.exercises import ExerciseFailed
from chatlab.exercises.broadcast import check_arrivals_board
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.integration


def arrivals_server(*, arrived_to="others", shouted_to="all", payload=None, shout_twice=False):
    """An arrivals board, right unless told to make one mistake."""

    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")
        where = {"all": {}, "others": "skip", "sender": "to", "nobody": None}

        async def send(event, data, sid, to):
            if where[to] is None:
                return
            options = {} if to == "all" else {"skip_sid": sid} if to == "others" else {"to": sid}
            await sio.emit(event, data, **options)

        @sio.event
        async def connect(sid, environ, auth):
            name = (auth or {}).get("name", "someone")
            await sio.save_session(sid, {"name": name})
            await send("arrived", name, sid, arrived_to)

        @sio.event
        async def shout(sid, text=None):
            name = (await sio.get_session(sid))["name"]
            data = payload(sid, name, text) if payload else {"user": name, "text": text}
            for _ in range(2 if shout_twice else 1):
                await send("shouted", data, sid, shouted_to)

        return sio

    return make


def stub():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid, environ, auth):
        raise NotImplementedError

    @sio.event
    async def shout(sid, text=None):
        raise NotImplementedError

    return sio


async def test_the_solution_passes(capsys):
    await assert_passes(check_arrivals_board, load_solution("02-broadcast.py").make_arrivals_server,
                        capsys)


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    await assert_not_attempted(
        check_arrivals_board, stub,
        "– not tried yet: the arrivals board", capsys, caplog)


async def test_a_shout_handler_left_as_a_stub_is_named(capsys):
    def make():
        sio = arrivals_server()()

        @sio.event
        async def shout(sid, text=None):
            raise NotImplementedError

        return sio

    await check_arrivals_board(make)
    assert "the 'shout' handler is still a stub" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    ({"arrived_to": "all"}, r"Ann received 'arrived' about Ann .*`skip_sid=sid`"),
    ({"arrived_to": "sender"}, r"Ann received 'arrived' about Ann"),
    ({"arrived_to": "nobody"},
     r"Bob connected, but Ann \(already connected\) received no 'arrived' with 'Bob'"),
    ({"shouted_to": "others"}, r"but Bob received no 'shouted': .*the sender included"),
    ({"shouted_to": "sender"}, "but Ann received no 'shouted'"),
    ({"shout_twice": True}, "received 'shouted' 2 times for one shout"),
    ({"payload": lambda sid, name, text: {"user": sid, "text": text}},
     r"Ann received 'shouted' with \{'user': '.*'\}; it should be \{'user': 'Bob'"),
    ({"payload": lambda sid, name, text: text}, "Ann received 'shouted' with 'Lunch is ready!'"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(mistake, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_arrivals_board(arrivals_server(**mistake))


async def test_a_crashing_handler_is_reported():
    def make():
        sio = arrivals_server()()

        @sio.event
        async def shout(sid, text=None):
            await sio.emit("shouted", {"user": (await sio.get_session(sid))["nmae"], "text": text})

        return sio

    with pytest.raises(ExerciseFailed, match=r"the handler for 'shout' raised KeyError: 'nmae'"):
        await check_arrivals_board(make)

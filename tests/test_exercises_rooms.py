"""The lesson 03 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from chatlab.exercises import ExerciseFailed
from chatlab.exercises.rooms import check_rooms_server
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)
from exercise_support import waits_out_a_timeout  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def rooms_server(*, prefix="room:", ack="chat", say_to="room-others", payload=None,
                 say_twice=False):
    """A rooms server, right unless told to make one mistake."""

    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")

        def chat_rooms(sid):
            return sorted(r[len(prefix):] for r in sio.rooms(sid)
                          if r.startswith(prefix) and r != sid)

        acks = {
            "chat": chat_rooms,
            "raw": lambda sid: sio.rooms(sid),
            "prefixed": lambda sid: sorted(r for r in sio.rooms(sid) if r != sid),
            "reversed": lambda sid: chat_rooms(sid)[::-1],
            "none": lambda sid: None,
        }

        @sio.event
        async def join(sid, room=None):
            await sio.enter_room(sid, prefix + room)
            return acks[ack](sid)

        @sio.event
        async def say(sid, data=None):
            said = payload(sid, data) if payload else {
                "room": data["room"], "text": data["text"], "from": sid}
            options = {
                "room-others": {"room": prefix + data["room"], "skip_sid": sid},
                "room-all": {"room": prefix + data["room"]},
                "others": {"skip_sid": sid},
                "unprefixed-room": {"room": data["room"], "skip_sid": sid},
            }[say_to]
            for _ in range(2 if say_twice else 1):
                await sio.emit("said", said, **options)

        return sio

    return make


def stub():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def join(sid, room=None):
        raise NotImplementedError

    @sio.event
    async def say(sid, data=None):
        raise NotImplementedError

    return sio


async def test_the_solution_passes(capsys):
    await assert_passes(check_rooms_server, load_solution("03-rooms.py").make_rooms_server, capsys)


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    await assert_not_attempted(
        check_rooms_server, stub,
        "– not tried yet: the rooms server (the 'join' handler is still a stub)", capsys, caplog)


async def test_a_stub_make_server_is_not_attempted(capsys):
    def make():
        raise NotImplementedError

    await check_rooms_server(make)
    assert capsys.readouterr().out.startswith("– not tried yet: the rooms server")


async def test_a_say_handler_left_as_a_stub_is_named(capsys):
    def make():
        sio = rooms_server()()

        @sio.event
        async def say(sid, data=None):
            raise NotImplementedError

        return sio

    await check_rooms_server(make)
    assert "the 'say' handler is still a stub" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    ({"prefix": ""}, r"Cy asked to join a room named like Bob's connection id, and "
                     r"python-socketio's enter_room refused it .*prefix"),
    ({"ack": "raw"}, r"the acknowledgement should be \['python'\], not .*own id"),
    ({"ack": "prefixed"}, r"should be \['python'\], not \['room:python'\] \(strip the prefix"),
    ({"ack": "reversed"}, r"Cy joined '.{20}'; .* \(sort the list\)"),
    ({"ack": "none"}, r"Ann joined 'python'; the acknowledgement should be \['python'\], "
                      r"not None"),
    ({"say_to": "room-all"}, "received her own 'said': leave the sender out with `skip_sid=sid`"),
    ({"say_to": "others"}, "Cy, who is only in 'js', received it"),
    ({"say_to": "unprefixed-room"}, "Bob, who joined 'python', received no 'said'"),
    ({"say_twice": True}, "Bob received 'said' 2 times for one message"),
    ({"payload": lambda sid, data: {"room": data["room"], "text": data["text"]}},
     r"Bob received 'said' with \{'room': 'python', 'text': .*\}; it should be"),
    ({"payload": lambda sid, data: data["text"]},
     "Bob received 'said' with 'anyone up for a code review[?]'"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(mistake, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_rooms_server(rooms_server(**mistake))


async def test_a_crashing_handler_is_reported():
    def make():
        sio = rooms_server()()

        @sio.event
        async def say(sid, data=None):
            await sio.emit("said", data["txt"], room="room:" + data["room"], skip_sid=sid)

        return sio

    with pytest.raises(ExerciseFailed, match=r"the handler for 'say' raised KeyError: 'txt'"):
        await check_rooms_server(make)


async def test_a_join_that_never_answers_is_reported(waits_out_a_timeout):
    def make():
        sio = rooms_server()()

        @sio.event
        async def join(sid, room=None):
            await asyncio.Event().wait()  # forgets to finish

        return sio

    with pytest.raises(ExerciseFailed, match="Ann sent 'join' 'python' and got no acknowledgement"):
        await check_rooms_server(make)


async def test_a_missing_join_handler_is_reported_at_once():
    # No handler, no acknowledgement: known once the server has handled the
    # event, not after a wait (the autouse fixture limits how long it takes).
    def make():
        sio = rooms_server()()
        del sio.handlers["/"]["join"]
        return sio

    with pytest.raises(ExerciseFailed, match="Ann sent 'join' 'python' and got no acknowledgement"):
        await check_rooms_server(make)

"""The lesson 06 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import pytest
import socketio

from chatlab.exercises import ExerciseFailed, harness
from chatlab.exercises.delivery import check_reliable_server
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)
from exercise_support import waits_out_a_timeout  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@dataclass
class Store:
    texts: list[str] = field(default_factory=list)  # texts[0] has offset 1
    offsets: dict[Any, int] = field(default_factory=dict)  # message id -> offset


MessageBody = Callable[[socketio.AsyncServer, Store, str, Any, Any], Awaitable[Any]]
ConnectBody = Callable[[socketio.AsyncServer, Store, str, Any], Awaitable[Any]]


# -- a right answer, in pieces that the wrong ones replace ---------------------

async def right_message(sio, store, sid, text, message_id):
    if message_id is not None and message_id in store.offsets:
        return {"ok": True, "offset": store.offsets[message_id]}
    store.texts.append(text)
    offset = len(store.texts)
    if message_id is not None:
        store.offsets[message_id] = offset
    await sio.emit("message", {"message": text, "offset": offset})
    return {"ok": True, "offset": offset}


async def send_after(sio, store, sid, after):
    for offset in range(after + 1, len(store.texts) + 1):
        await sio.emit("message", {"message": store.texts[offset - 1], "offset": offset},
                       to=sid)


async def right_connect(sio, store, sid, auth):
    sio.start_background_task(send_after, sio, store, sid, (auth or {}).get("serverOffset", 0))


def reliable_server(message: MessageBody = right_message, connect: ConnectBody = right_connect):
    """The exercise's server, with these bodies for its two handlers."""

    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")
        store = Store()

        async def on_message(sid, text, message_id=None):
            return await message(sio, store, sid, text, message_id)

        async def on_connect(sid, environ, auth):
            return await connect(sio, store, sid, auth)

        sio.on("message", handler=on_message)
        sio.on("connect", handler=on_connect)
        return sio

    return make


# -- wrong answers: the message handler ------------------------------------------

async def no_acknowledgement(sio, store, sid, text, message_id):
    await right_message(sio, store, sid, text, message_id)


async def acknowledgement_without_offset(sio, store, sid, text, message_id):
    await right_message(sio, store, sid, text, message_id)
    return {"ok": True}


async def offsets_from_zero(sio, store, sid, text, message_id):
    if message_id is not None and message_id in store.offsets:
        return {"ok": True, "offset": store.offsets[message_id]}
    offset = len(store.texts)
    store.texts.append(text)
    store.offsets[message_id] = offset
    await sio.emit("message", {"message": text, "offset": offset})
    return {"ok": True, "offset": offset}


async def everyone_but_the_sender(sio, store, sid, text, message_id):
    if message_id is not None and message_id in store.offsets:
        return {"ok": True, "offset": store.offsets[message_id]}
    store.texts.append(text)
    store.offsets[message_id] = len(store.texts)
    await sio.emit("message", {"message": text, "offset": len(store.texts)}, skip_sid=sid)
    return {"ok": True, "offset": len(store.texts)}


async def text_only(sio, store, sid, text, message_id):
    store.texts.append(text)
    await sio.emit("message", text)
    return {"ok": True, "offset": len(store.texts)}


async def two_arguments_like_node(sio, store, sid, text, message_id):
    store.texts.append(text)
    await sio.emit("message", (text, len(store.texts)))
    return {"ok": True, "offset": len(store.texts)}


async def every_retry_stored(sio, store, sid, text, message_id):
    return await right_message(sio, store, sid, text, None)


async def retry_sent_again(sio, store, sid, text, message_id):
    if message_id is not None and message_id in store.offsets:
        offset = store.offsets[message_id]
        await sio.emit("message", {"message": text, "offset": offset})
        return {"ok": True, "offset": offset}
    return await right_message(sio, store, sid, text, message_id)


async def retry_not_acknowledged(sio, store, sid, text, message_id):
    if message_id is not None and message_id in store.offsets:
        return None
    return await right_message(sio, store, sid, text, message_id)


async def retries_told_by_text(sio, store, sid, text, message_id):
    if text in store.texts:
        return {"ok": True, "offset": store.texts.index(text) + 1}
    return await right_message(sio, store, sid, text, message_id)


async def none_is_an_id_too(sio, store, sid, text, message_id):
    if message_id in store.offsets:
        return {"ok": True, "offset": store.offsets[message_id]}
    store.texts.append(text)
    store.offsets[message_id] = len(store.texts)
    await sio.emit("message", {"message": text, "offset": len(store.texts)})
    return {"ok": True, "offset": len(store.texts)}


# -- wrong answers: the connect handler ------------------------------------------

async def no_replay(sio, store, sid, auth):
    pass


async def replay_everything(sio, store, sid, auth):
    sio.start_background_task(send_after, sio, store, sid, 0)


async def replay_from_the_offset_seen(sio, store, sid, auth):
    after = (auth or {}).get("serverOffset", 0)
    sio.start_background_task(send_after, sio, store, sid, max(after - 1, 0))


async def replay_inside_connect(sio, store, sid, auth):
    # The straight translation of Node's connection handler.
    await send_after(sio, store, sid, (auth or {}).get("serverOffset", 0))


async def replay_to_everyone(sio, store, sid, auth):
    async def replay(after):
        for offset in range(after + 1, len(store.texts) + 1):
            await sio.emit("message", {"message": store.texts[offset - 1], "offset": offset})

    sio.start_background_task(replay, (auth or {}).get("serverOffset", 0))


async def replay_newest_first(sio, store, sid, auth):
    async def replay(after):
        for offset in range(len(store.texts), after, -1):
            await sio.emit("message", {"message": store.texts[offset - 1], "offset": offset},
                           to=sid)

    sio.start_background_task(replay, (auth or {}).get("serverOffset", 0))


async def auth_always_given(sio, store, sid, auth):
    sio.start_background_task(send_after, sio, store, sid, auth["serverOffset"])


async def auth_read_in_the_task(sio, store, sid, auth):
    async def replay():
        await send_after(sio, store, sid, auth["serverOffset"])

    sio.start_background_task(replay)


# -- right answers that take their time --------------------------------------------

async def slow_replay(sio, store, sid, auth):
    async def replay(after):
        for offset in range(after + 1, len(store.texts) + 1):
            await sio.sleep(0.02)
            await sio.emit("message", {"message": store.texts[offset - 1], "offset": offset},
                           to=sid)

    sio.start_background_task(replay, (auth or {}).get("serverOffset", 0))


async def replay_and_a_task_that_runs_for_good(sio, store, sid, auth):
    async def forever():
        while True:
            await sio.sleep(60)

    await right_connect(sio, store, sid, auth)
    if not hasattr(store, "clock"):  # e.g. a clock, started once
        store.clock = sio.start_background_task(forever)


# -- the tests -------------------------------------------------------------------

async def test_the_solution_passes(capsys):
    solution = load_solution("06-delivery-guarantees.py")
    await assert_passes(check_reliable_server, solution.make_reliable_server, capsys)


async def test_the_right_answer_in_pieces_passes(capsys):
    await assert_passes(check_reliable_server, reliable_server(), capsys)


async def test_a_replay_that_takes_its_time_passes(capsys):
    # The check waits for the replay task to finish, not for a fixed time.
    await assert_passes(check_reliable_server, reliable_server(connect=slow_replay), capsys)


async def test_a_task_that_runs_for_good_is_waited_for_once(capsys, waits_out_a_timeout):
    # The check cannot tell it from a replay still going on until WAIT has
    # run out once; after that it no longer waits for it.
    started = time.monotonic()
    await assert_passes(
        check_reliable_server, reliable_server(connect=replay_and_a_task_that_runs_for_good),
        capsys)
    assert time.monotonic() - started < 3 * harness.WAIT


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    def stub():
        sio = socketio.AsyncServer(async_mode="aiohttp")

        @sio.event
        async def message(sid, text, message_id=None):
            raise NotImplementedError

        @sio.event
        async def connect(sid, environ, auth):
            raise NotImplementedError

        return sio

    await assert_not_attempted(
        check_reliable_server, stub,
        "– not tried yet: the reliable chat server "
        "(the 'connect' handler is still a stub)", capsys, caplog)


async def test_a_make_server_left_as_a_stub_is_not_attempted(capsys, caplog):
    def stub():
        raise NotImplementedError

    await assert_not_attempted(
        check_reliable_server, stub, "– not tried yet: the reliable chat server.",
        capsys, caplog)


async def test_a_message_handler_left_as_a_stub_is_named(capsys):
    async def stub(sio, store, sid, text, message_id):
        raise NotImplementedError

    await check_reliable_server(reliable_server(message=stub))
    assert "the 'message' handler is still a stub" in capsys.readouterr().out


@pytest.mark.parametrize("message, expected", [
    (no_acknowledgement, r"Ann sent message\('Hello, Bob!', 'ann-1'\) and the acknowledgement "
                         r"was None: return \{'ok': True, 'offset': 1\}"),
    (acknowledgement_without_offset, r"the acknowledgement was \{'ok': True\}, not "
                                     r"\{'ok': True, 'offset': 1\}"),
    (offsets_from_zero, r"said offset 0, not 1: the stored messages are numbered 1, 2, 3"),
    (everyone_but_the_sender, r"Ann did not receive \[1: 'Hello, Bob!'\]: send each new "
                              r"message to everyone, the sender too"),
    (text_only, r"received the 'message' event 'Hello, Bob!': send one object"),
    (two_arguments_like_node, r"received the 'message' event \['Hello, Bob!', 1\]"),
    (every_retry_stored, r"again \(a retry.*said offset 3: a retry is acknowledged with "
                         r"the offset its first copy was stored under, 1"),
    (retry_sent_again, r"received \[1: 'Hello, Bob!'\] once more: a message whose id is "
                       r"stored already is a retry"),
    (retry_not_acknowledged, r"again \(a retry.*the acknowledgement was None.*for a retry "
                             r"too"),
    (retries_told_by_text, r"message\('Hi Ann!', 'bob-2'\) and the acknowledgement said "
                           r"offset 2, the offset of an earlier message with the same text "
                           r"but another id"),
    (none_is_an_id_too, r"message\('No id on this one.'\) and the acknowledgement said "
                        r"offset 4, the offset of an earlier message without an id.*is always "
                        r"new"),
], ids=lambda value: getattr(value, "__name__", ""))
async def test_a_wrong_message_handler_fails_with_a_helpful_message(message, expected):
    with pytest.raises(ExerciseFailed, match=expected):
        await check_reliable_server(reliable_server(message=message))


@pytest.mark.parametrize("connect, expected", [
    (no_replay, r"Bob, coming back, connected with auth=\{'serverOffset': 5\} and received "
                r"no messages, but missed \[6: .*7: .*\]: start a task in connect"),
    (replay_everything, r"should have received \[6: .*, 7: .*\] \(what was missed\), but "
                        r"received \[1: .*\]: offset 5 had been seen already"),
    (replay_from_the_offset_seen, r"but received \[5: .*, 6: .*, 7: .*\]: offset 5 had "
                                  r"been seen already"),
    (replay_inside_connect, r"received the missed messages before the connection was "
                            r"accepted: .*sio.start_background_task\(replay, sid, offset\)"),
    (replay_to_everyone, r"when Bob, coming back, connected, Ann received \[6: .*, 7: .*\]: the "
                         r"replay is for the connection that asked for it: send it `to=sid`"),
    (replay_newest_first, r"but received \[7: .*, 6: .*\]: send them in order, oldest "
                          r"first"),
    (auth_always_given, r"Cy, a newcomer, connected without auth and was refused, because "
                        r"the handler for 'connect' raised TypeError: 'NoneType' object is "
                        r"not subscriptable .*`\(auth or \{\}\).get\('serverOffset', 0\)`"),
    (auth_read_in_the_task, r"the background task '.*replay' raised TypeError"),
], ids=lambda value: getattr(value, "__name__", ""))
async def test_a_wrong_connect_handler_fails_with_a_helpful_message(connect, expected):
    with pytest.raises(ExerciseFailed, match=expected):
        await check_reliable_server(reliable_server(connect=connect))


async def test_a_server_that_is_not_an_async_server_is_pointed_out():
    with pytest.raises(ExerciseFailed, match="should return a socketio.AsyncServer"):
        await check_reliable_server(lambda: None)

"""The lesson 01 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations


import pytest
import socketio

import chatlab
from chatlab.exercises import ExerciseFailed
from chatlab.exercises.connect_and_emit import check_name_badge
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.integration


def badge_server(*, welcome_to_all=False, text="Welcome, {name}!", answer=True,
                 whoami_default=True, let_nameless_in=False, crash_without_auth=False,
                 refuse_with_builtin=False):
    """A badge server, right unless told to make one mistake."""

    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")

        @sio.event
        async def connect(sid, environ, auth):
            if crash_without_auth:
                name = auth["name"]
            else:
                name = (auth or {}).get("name")
            if not name and not let_nameless_in:
                if refuse_with_builtin:
                    raise ConnectionRefusedError("who are you?")
                return False
            await sio.save_session(sid, {"name": name})
            await sio.emit("welcome", text.format(name=name),
                           **({} if welcome_to_all else {"to": sid}))

        if whoami_default:
            @sio.event
            async def whoami(sid, data=None):
                if answer:
                    return (await sio.get_session(sid))["name"]
        else:
            @sio.event
            async def whoami(sid, data):
                return (await sio.get_session(sid))["name"]

        return sio

    return make


def stub():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid, environ, auth):
        raise NotImplementedError

    @sio.event
    async def whoami(sid, data=None):
        raise NotImplementedError

    return sio


async def test_the_solution_passes(capsys):
    await assert_passes(check_name_badge, load_solution("01-connect-and-emit.py").make_badge_server,
                        capsys)


async def test_a_right_answer_that_refuses_with_the_builtin_exception_passes(capsys):
    await check_name_badge(badge_server(refuse_with_builtin=True))
    assert capsys.readouterr().out.startswith("✓ passed:")


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    await assert_not_attempted(
        check_name_badge, stub,
        "– not tried yet: the name badge server", capsys, caplog)


async def test_a_factory_that_raises_not_implemented_is_not_attempted(capsys):
    def make():
        raise NotImplementedError

    await check_name_badge(make)
    assert capsys.readouterr().out.startswith("– not tried yet")


async def test_a_handler_left_as_a_stub_is_named(capsys):
    def make():
        sio = badge_server()()

        @sio.event
        async def whoami(sid, data=None):
            raise NotImplementedError

        return sio

    await check_name_badge(make)
    assert "the 'whoami' handler is still a stub" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    ({"welcome_to_all": True}, "Ann received a 'welcome' meant for Bob: .*`to=sid`"),
    ({"text": "hi {name}"}, "Ann's 'welcome' should be the text 'Welcome, Ann!', not 'hi Ann'"),
    ({"answer": False}, "asked 'whoami' and got None: `return` the saved name"),
    ({"whoami_default": False}, "give the data parameter a default"),
    ({"let_nameless_in": True}, r"auth=None was let in: refuse it"),
    ({"crash_without_auth": True},
     r"auth=None was refused, but only because the handler for 'connect' raised TypeError"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(mistake, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_name_badge(badge_server(**mistake))


async def test_a_server_without_a_welcome_fails():
    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")

        @sio.event
        async def connect(sid, environ, auth):
            await sio.save_session(sid, {"name": auth["name"]})

        return sio

    with pytest.raises(ExerciseFailed, match="received no 'welcome'"):
        await check_name_badge(make)


async def test_a_missing_whoami_fails():
    def make():
        sio = badge_server()()
        del sio.handlers["/"]["whoami"]
        return sio

    with pytest.raises(ExerciseFailed, match="'whoami' got no answer"):
        await check_name_badge(make)


async def test_forgetting_to_return_the_server_fails():
    with pytest.raises(ExerciseFailed, match=r"should return a socketio.AsyncServer.*return sio"):
        await check_name_badge(lambda: None)


async def test_a_server_already_served_elsewhere_fails():
    sio = badge_server()()
    server = await chatlab.serve(sio, name="someone-elses")
    try:
        with pytest.raises(ExerciseFailed, match="create a new AsyncServer each time"):
            await check_name_badge(lambda: sio)
    finally:
        await server.stop()


async def test_a_server_for_another_web_framework_fails_clearly():
    with pytest.raises(ExerciseFailed, match="async_mode='aiohttp'"):
        await check_name_badge(lambda: socketio.AsyncServer(async_mode="asgi"))

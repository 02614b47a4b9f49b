"""The lesson 08 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations

import pytest
import socketio

from chatlab.exercises import ExerciseFailed
from chatlab.exercises.namespaces import ADMIN_TOKEN, check_admin_namespace
from exercise_support import assert_not_attempted, assert_passes, load_solution
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.integration

SOLUTION = load_solution("08-namespaces-and-middleware.py")


def moderated_server(*, refuse=True, reason="admins only", crash_without_auth=False,
                     kick="chat", answer=True, unknown=False, admin_namespace="/admin"):
    """A moderated server, right unless told to make one mistake."""

    def make():
        sio = socketio.AsyncServer(async_mode="aiohttp")
        chat = SOLUTION.Chat("/chat")
        sio.register_namespace(chat)

        class Admin(socketio.AsyncNamespace):
            async def on_connect(self, sid, environ, auth):
                token = auth["token"] if crash_without_auth else (auth or {}).get("token")
                if refuse and token != ADMIN_TOKEN:
                    if reason is None:
                        return False
                    raise socketio.exceptions.ConnectionRefusedError(reason)

            async def on_kick(self, sid, name):
                if unknown:
                    chat_sid = chat.users[name]  # KeyError for a name not there
                else:
                    chat_sid = chat.users.get(name)
                    if chat_sid is None:
                        return False
                if kick == "chat":
                    await chat.disconnect(chat_sid)
                elif kick == "default namespace":
                    await sio.disconnect(chat_sid)  # the sid is not one of "/"
                elif kick == "everyone":
                    for other in list(chat.users.values()):
                        await chat.disconnect(other)
                if answer:
                    return True

        sio.register_namespace(Admin(admin_namespace))
        return sio

    return make


def stub():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    sio.register_namespace(SOLUTION.Chat("/chat"))

    class Admin(socketio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            raise NotImplementedError("let in only the right token")

        async def on_kick(self, sid, name):
            raise NotImplementedError("disconnect that user from /chat")

    sio.register_namespace(Admin("/admin"))
    return sio


async def test_the_solution_passes(capsys):
    await assert_passes(check_admin_namespace, SOLUTION.make_moderated_server_solution, capsys)


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    await assert_not_attempted(check_admin_namespace, stub,
                               "– not tried yet: the /admin namespace", capsys, caplog)


async def test_a_kick_left_as_a_stub_is_named(capsys):
    def make():
        sio = moderated_server()()
        admin = sio.namespace_handlers["/admin"]

        async def on_kick(sid, name):
            raise NotImplementedError

        admin.on_kick = on_kick
        return sio

    await check_admin_namespace(make)
    assert "the 'kick' handler is still a stub" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    ({"refuse": False}, r"auth=\{'token': 'guess'\} joined /admin: refuse it"),
    ({"reason": None}, "refused without a reason .*'Connection rejected by server'"),
    ({"crash_without_auth": True},
     r"auth=None was refused, but only because the handler for 'connect' .*raised TypeError"),
    ({"kick": "default namespace"}, "Bob is still in /chat"),
    ({"kick": "everyone"}, "Ann was disconnected from /chat too"),
    ({"answer": False}, "disconnected Bob but answered None, not True"),
    ({"unknown": True}, "KeyError"),
    ({"admin_namespace": "/admins"}, "the server has no /admin namespace"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(mistake, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_admin_namespace(moderated_server(**mistake))


async def test_an_admin_namespace_that_refuses_everyone_fails():
    def make():
        sio = moderated_server()()
        admin = sio.namespace_handlers["/admin"]

        async def on_connect(sid, environ, auth):
            raise socketio.exceptions.ConnectionRefusedError("closed")

        admin.on_connect = on_connect
        return sio

    with pytest.raises(ExerciseFailed, match="the right token, was refused .*closed"):
        await check_admin_namespace(make)


async def test_forgetting_to_return_the_server_fails():
    with pytest.raises(ExerciseFailed, match="should return a socketio.AsyncServer"):
        await check_admin_namespace(lambda: None)

"""The lesson 04 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations


import pytest

from chatlab.exercises import ExerciseFailed
from chatlab.exercises.disconnect import check_users_server
from exercise_support import (
    assert_not_attempted, assert_passes, load_solution, server_with_adduser)
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.integration


def users_server(on_disconnect):
    """The lesson's users server with ``on_disconnect(sio, users, sid)`` as
    the body of its disconnect handler."""

    def make():
        sio, users = server_with_adduser()

        @sio.event
        async def disconnect(sid, reason):
            await on_disconnect(sio, users, sid)

        return sio

    return make


def index_of(items, value):
    return items.index(value) if value in items else -1


async def like_the_tutorial(sio, users, sid):
    # A list of names, the name looked up with indexOf, and the wrong event.
    names = list(users.values())
    del names[index_of(names, users.get(sid))]
    users.clear()
    users.update(enumerate(names))
    await sio.emit("user", names)


async def index_of_minus_one(sio, users, sid):
    names = list(users.values())
    del names[index_of(names, users.get(sid))]
    users.clear()
    users.update((f"k{i}", name) for i, name in enumerate(names))
    await sio.emit("users", names)


async def pop_without_default(sio, users, sid):
    users.pop(sid)
    await sio.emit("users", list(users.values()))


async def every_entry_with_the_name(sio, users, sid):
    name = users.get(sid)
    for key in [key for key, value in users.items() if value == name]:
        del users[key]
    await sio.emit("users", list(users.values()))


async def first_entry_with_the_name(sio, users, sid):
    name = users.get(sid)
    if name is None:
        return
    for key, value in list(users.items()):
        if value == name:
            del users[key]
            break
    await sio.emit("users", list(users.values()))


async def removes_but_tells_nobody(sio, users, sid):
    users.pop(sid, None)


async def tells_but_removes_nobody(sio, users, sid):
    if sid in users:
        await sio.emit("users", list(users.values()))


async def test_the_solution_passes(capsys):
    await assert_passes(check_users_server, load_solution("04-disconnect.py").make_users_server,
                        capsys)


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    async def stub(sio, users, sid):
        raise NotImplementedError

    await assert_not_attempted(
        check_users_server, users_server(stub),
        "– not tried yet: the users list on disconnect "
        "(the 'disconnect' handler is still a stub)", capsys, caplog)


async def test_a_legacy_disconnect_handler_without_reason_passes(capsys):
    def make():
        sio, users = server_with_adduser()

        @sio.event
        async def disconnect(sid):
            if users.pop(sid, None) is not None:
                await sio.emit("users", list(users.values()))

        return sio

    await check_users_server(make)
    assert capsys.readouterr().out.startswith("✓ passed:")


@pytest.mark.parametrize("body, message", [
    (like_the_tutorial, r"Ann was sent 'user': the event the pages listen for is 'users'"),
    (index_of_minus_one, r"a client that never sent adduser left, and Ann was sent the users "
                         r"\['Ann', 'Sam'\]: .*-1"),
    (pop_without_default, r"when a client that never sent adduser left, the handler for "
                          r"'disconnect' raised KeyError.*users.pop\(sid, None\)"),
    (every_entry_with_the_name, "both Sams left the list"),
    (first_entry_with_the_name, r"then the first Sam left, and Ann was sent no users instead "
                                r"of \['Ann'\]"),
    (removes_but_tells_nobody, "the second Sam left, and Ann was sent no 'users'"),
    (tells_but_removes_nobody, r"Ann was sent the users \['Ann', 'Sam', 'Sam'\] instead of "
                               r"\['Ann', 'Sam'\]"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(body, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_users_server(users_server(body))


async def test_a_broken_adduser_is_pointed_out():
    def make():
        sio = load_solution("04-disconnect.py").make_users_server()

        @sio.event
        async def adduser(sid, name=None):
            await sio.emit("users", [name])

        return sio

    with pytest.raises(ExerciseFailed, match="keep the given adduser handler"):
        await check_users_server(make)

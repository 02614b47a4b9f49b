"""The lesson 05 check: right, wrong and untouched answers, run for real."""

from __future__ import annotations

import html

import pytest

from chatlab.exercises import ExerciseFailed
from chatlab.exercises.build_the_chat import LIMIT, check_message_rules
from exercise_support import (
    assert_not_attempted, assert_passes, load_solution, server_with_adduser)
from exercise_support import quick_checks_that_clean_up  # noqa: F401 (autouse fixture)

pytestmark = pytest.mark.integration


def checked_chat(*, joined=True, typed=True, blank="strip", limit=LIMIT, error_to="sender",
                 error=None, deliver=None, deliver_to="all"):
    """A checked chat, right unless told to make one mistake."""

    def make():
        sio, users = server_with_adduser()

        def problem(sid, text):
            if joined and sid not in users:
                return "join first"
            if typed and not isinstance(text, str):
                return "not a string"
            if isinstance(text, str):
                if blank == "strip" and not text.strip():
                    return "empty"
                if blank == "empty-only" and text == "":
                    return "empty"
            if isinstance(text, str) and len(text) > limit:
                return "too long"
            return None

        @sio.event
        async def message(sid, text=None):
            reason = problem(sid, text)
            if reason is not None:
                payload = error(reason) if error else {"event": "message", "reason": reason}
                options = {"sender": {"to": sid}, "all": {}}[error_to]
                await sio.emit("error", payload, **options)
                return
            data = deliver(sid, users.get(sid, "someone"), text) if deliver else {
                "message": text, "user": users.get(sid, "someone"), "id": sid}
            options = {"all": {}, "others": {"skip_sid": sid}}[deliver_to]
            await sio.emit("message", data, **options)

        return sio

    return make


def stub():
    sio, users = server_with_adduser()

    @sio.event
    async def message(sid, text=None):
        raise NotImplementedError

    return sio


async def test_the_solution_passes(capsys):
    await assert_passes(check_message_rules, load_solution("05-build-the-chat.py").make_checked_chat,
                        capsys)


async def test_the_untouched_stub_is_not_attempted(capsys, caplog):
    await assert_not_attempted(
        check_message_rules, stub,
        "– not tried yet: the message rules (the 'message' handler is still a stub)", capsys, caplog)


@pytest.mark.parametrize("mistake, message", [
    ({"joined": False}, r"Stranger sent a message from a connection that has not sent "
                        r"adduser \('hello'\), and Ann received it as 'message'"),
    ({"blank": "empty-only"}, r"Ann sent a message of white space only .* received it"),
    ({"blank": None}, r"Ann sent an empty message \(''\), and Ann received it"),
    ({"limit": 10_000}, r"a message of 201 characters"),
    ({"limit": LIMIT - 1}, r"Ann sent the message 'yyy.*…, which is fine, and was refused"),
    ({"typed": False}, r"Ann sent a message that is a number, not a string \(42\)"),
    ({"error_to": "all"}, r"Stranger sent .*, and Ann received the error too: .*`to=sid`"),
    ({"error": lambda reason: reason}, r"received the error 'join first': send the error as "
                                       r"\{'event': 'message', 'reason'"),
    ({"error": lambda reason: {"event": "message", "reason": ""}}, r"received the error"),
    ({"deliver_to": "others"}, r"Ann sent the message .*, and Ann did not receive it"),
    ({"deliver": lambda sid, user, text: {"message": html.escape(text), "user": user,
                                          "id": sid}},
     r"keep the text exactly as sent"),
    ({"deliver": lambda sid, user, text: {"message": text, "user": user}},
     r"it should be \{'message': <the text>, 'user': 'Ann', 'id': <Ann's id>\}"),
])
async def test_a_wrong_answer_fails_with_a_helpful_message(mistake, message):
    with pytest.raises(ExerciseFailed, match=message):
        await check_message_rules(checked_chat(**mistake))


async def test_an_error_under_another_name_is_not_an_error():
    def make():
        sio = load_solution("05-build-the-chat.py").make_checked_chat()

        @sio.event
        async def message(sid, text=None):
            await sio.emit("refused", "no", to=sid)

        return sio

    with pytest.raises(ExerciseFailed, match=r"received no 'error': refuse it with"):
        await check_message_rules(make)


async def test_a_crashing_handler_is_reported():
    def make():
        sio = load_solution("05-build-the-chat.py").make_checked_chat()

        @sio.event
        async def message(sid, text=None):
            session = await sio.get_session(sid)
            await sio.emit("message", {"message": text, "user": session["name"], "id": sid})

        return sio

    with pytest.raises(ExerciseFailed, match=r"the handler for 'message' raised KeyError: 'name'"):
        await check_message_rules(make)


def unchecked_type(use):
    """The solution without its type check: a message that is not a string
    reaches ``use(text)``, which crashes on it."""

    def make():
        sio, users = server_with_adduser()

        @sio.event
        async def message(sid, text=None):
            if sid not in users or not use(text) or len(text) > LIMIT:
                await sio.emit("error", {"event": "message", "reason": "refused"}, to=sid)
                return
            await sio.emit("message", {"message": text, "user": users[sid], "id": sid})

        return sio

    return make


@pytest.mark.parametrize("use, sent, crash", [
    (lambda text: text.strip(), r"a message that is a number, not a string \(42\)",
     r"AttributeError: 'int' object has no attribute 'strip'"),
    (lambda text: len(text) and text.strip(), r"a message that is a number",
     r"TypeError: object of type 'int' has no len\(\)"),
])
async def test_a_handler_that_crashes_on_a_non_string_is_told_the_rule(use, sent, crash):
    with pytest.raises(ExerciseFailed) as failed:
        await check_message_rules(unchecked_type(use))
    assert failed.value.hint == (
        "refuse a message that is not a string (a number, a list, or no data) with "
        "'error' before using it as text: check `isinstance(text, str)` first")
    assert failed.match(rf"Ann sent {sent}.*, and the handler for 'message' raised {crash}")
    assert failed.value.expected.startswith("bad messages are refused")


async def test_a_handler_that_crashes_on_a_stranger_is_told_to_check_adduser_first():
    def make():
        sio, users = server_with_adduser()

        @sio.event
        async def message(sid, text=None):
            await sio.emit("message", {"message": text, "user": users[sid], "id": sid})

        return sio

    with pytest.raises(ExerciseFailed, match=r"Stranger sent a message from a connection "
                                             r"that has not sent adduser .*KeyError") as failed:
        await check_message_rules(make)
    assert failed.value.hint.startswith("refuse a message from a connection that has not "
                                        "sent adduser")

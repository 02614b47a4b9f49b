"""Names that look the same are one name. Over real sockets, the chat
server refuses a second "admin" however it is disguised (an override, a
zero-width space, full-width letters, a Cyrillic "а"), says why, and finds
a user by the name as it looks."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

ADMIN = "admin"
FULL_WIDTH = "\uff21\uff24\uff2d\uff29\uff2e"  # ＡＤＭＩＮ
BOLD = "\U0001d41a\U0001d41d\U0001d426\U0001d422\U0001d427"  # mathematical bold "admin"


def taken(name: str) -> str:
    return f"the name {name!r} is taken; choose another"


LOOK_ALIKES = [
    pytest.param("\u202enimda", "the user name contains the invisible character "
                 "U+202E (RIGHT-TO-LEFT OVERRIDE)", id="right-to-left-override"),
    pytest.param("ad\u200bmin", "the user name contains the invisible character "
                 "U+200B (ZERO WIDTH SPACE)", id="zero-width-space"),
    pytest.param("\u0430dmin", "the user name mixes Latin and Cyrillic letters in one word, "
                 "so it could pass for another name: '\u0430' is U+0430 "
                 "(CYRILLIC SMALL LETTER A)", id="cyrillic-a"),
    pytest.param(FULL_WIDTH, taken(FULL_WIDTH), id="full-width"),
    pytest.param(BOLD, taken(BOLD), id="mathematical-bold"),
    pytest.param("ADMIN\ufe0f", taken("ADMIN\ufe0f"), id="variation-selector"),
]


def last(client, event):
    data = client.received(event)[-1]
    return data[0] if len(data) == 1 else data


async def joined(raw, name):
    client = await raw("someone")
    reply = await client.call("adduser", name, timeout=5)
    assert reply["ok"] is True
    await client.wait_for("private")
    return client


async def test_three_look_alike_admins_cannot_join_beside_admin(raw, chat):
    admin = await joined(raw, ADMIN)
    for disguise, reason in (("\u202enimda", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
                             ("ad\u200bmin", "U+200B (ZERO WIDTH SPACE)"),
                             (FULL_WIDTH, None)):
        other = await raw("other")
        reply = await other.call("adduser", disguise, timeout=5)
        expected = (taken(disguise) if reason is None
                    else f"the user name contains the invisible character {reason}")
        assert reply == {"event": "adduser", "reason": expected}
        await other.wait_for("error")
        assert last(other, "error") == reply, "the error event says the same"
    assert chat.names() == [ADMIN]
    assert last(admin, "users") == [ADMIN]


@pytest.mark.parametrize("disguise,reason", LOOK_ALIKES)
async def test_each_disguise_of_a_taken_name_is_refused(raw, chat, disguise, reason):
    await joined(raw, ADMIN)
    other = await raw("other")
    assert await other.call("adduser", disguise, timeout=5) == {
        "event": "adduser", "reason": reason}
    assert chat.names() == [ADMIN]


async def test_a_name_is_shown_as_typed_and_freed_when_its_user_leaves(raw, chat):
    first = await joined(raw, FULL_WIDTH)
    assert chat.names() == [FULL_WIDTH], "shown as typed"
    second = await raw("second")
    assert await second.call("adduser", ADMIN, timeout=5) == {
        "event": "adduser", "reason": taken(ADMIN)}
    await first.disconnect()
    await second.wait_for("users")
    assert (await second.call("adduser", ADMIN, timeout=5))["ok"] is True
    assert chat.names() == [ADMIN]


async def test_a_direct_message_finds_its_user_by_the_name_as_it_looks(raw, chat):
    admin = await joined(raw, ADMIN)
    bob = await joined(raw, "bob")
    assert await bob.call("direct", {"to": FULL_WIDTH, "message": "psst"}, timeout=5) == {
        "ok": True}
    await admin.wait_for("message")
    got = last(admin, "message")
    assert got["message"] == "psst" and got["to"] == ADMIN and got["user"] == "bob"
    assert chat.namespace.sid_of(BOLD) == chat.namespace.sid_of(ADMIN) is not None


async def test_a_message_keeps_joiners_and_marks_but_not_overrides(raw, chat):
    ann = await joined(raw, "ann")
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    hebrew = "\u05e9\u05dc\u05d5\u05dd 123\u200f!"
    for text in (family, persian, hebrew):
        assert (await ann.call("message", text, timeout=5))["ok"] is True
    await ann.wait_for("message", count=3)
    assert [data[0]["message"] for data in ann.received("message")] == [family, persian, hebrew]
    reply = await ann.call("message", "pay 1\u202e0001", timeout=5)
    assert reply["event"] == "message"
    assert reply["reason"].startswith(
        "the message contains the bidirectional control U+202E (RIGHT-TO-LEFT OVERRIDE)")


def test_the_users_dict_keeps_its_index_of_names_in_step():
    from chatlab.chat import Users

    users = Users()
    users["a"], users["b"] = ADMIN, "bob"
    assert users == {"a": ADMIN, "b": "bob"} and list(users) == ["a", "b"]
    assert users.sid_of(FULL_WIDTH) == "a" and users.sid_of("BOB") == "b"
    with pytest.raises(ValueError):
        users["c"] = BOLD  # the same name as a's
    users["a"] = "ann"  # a renamed: "admin" is free again
    assert users.sid_of(ADMIN) is None and users.sid_of("Ann") == "a"
    assert users.pop("a") == "ann" and users.sid_of("ann") is None
    assert users.pop("a", None) is None
    users.update({"c": FULL_WIDTH})
    assert users.setdefault("c", "other") == FULL_WIDTH and users.sid_of(ADMIN) == "c"
    assert users.popitem() == ("c", FULL_WIDTH) and users.sid_of(ADMIN) is None
    del users["b"]
    assert users == {} and users.sid_of("bob") is None
    users |= {"d": "dan"}
    users.clear()
    assert users.sid_of("dan") is None

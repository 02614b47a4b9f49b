"""chatlab.protocol: how many arguments each client event takes and what
shape they have, and the protocol as a table."""

from __future__ import annotations

import dataclasses

import pytest

from chatlab.protocol import CLIENT_EVENTS, EVENTS, ClientEvent, Event, argument_problem, markdown_table

pytestmark = pytest.mark.unit


# Arguments that fit each client event (their values are validation's business).
FITTING = {
    "adduser": [("ann",)],
    "message": [("hello",), ("hello", "ann-1")],
    "join": [("lobby",)],
    "leave": [("lobby",)],
    "roommessage": [({"room": "lobby", "message": "hi"},)],
    "direct": [({"to": "bob", "message": "hi"},)],
}


def problem(name: str, *args: object) -> str | None:
    return argument_problem(CLIENT_EVENTS[name], args)


def test_every_client_event_is_covered_here():
    assert set(FITTING) == set(CLIENT_EVENTS)


@pytest.mark.parametrize("name,args", [
    pytest.param(name, args, id=f"{name}-{len(args)}")
    for name, fitting in FITTING.items() for args in fitting])
def test_fitting_arguments_have_no_problem(name, args):
    assert problem(name, *args) is None


@pytest.mark.parametrize("name", sorted(FITTING))
def test_arguments_are_counted_not_checked(name):
    # A wrong value of the right shape is for chatlab.validation to refuse.
    if CLIENT_EVENTS[name].keys:
        assert problem(name, {key: None for key in CLIENT_EVENTS[name].keys}) is None
    else:
        assert problem(name, None) is None
        assert problem(name, 42) is None


@pytest.mark.parametrize("name,reason", [
    ("adduser", "adduser needs your user name"),
    ("message", "message needs the message text"),
    ("join", "join needs the room name"),
    ("leave", "leave needs the room name"),
    ("roommessage", "roommessage needs {room, message}"),
    ("direct", "direct needs {to, message}"),
])
def test_too_few_arguments_name_the_missing_one(name, reason):
    assert problem(name) == reason


@pytest.mark.parametrize("name,argument", [
    ("adduser", "your user name"),
    ("join", "the room name"),
    ("leave", "the room name"),
    ("roommessage", "{room, message}"),
    ("direct", "{to, message}"),
])
def test_too_many_arguments_for_a_one_argument_event(name, argument):
    args = FITTING[name][0]
    assert problem(name, *args, "extra") == f"{name} takes one argument ({argument}), not 2"
    assert problem(name, *args, "extra", "more") == f"{name} takes one argument ({argument}), not 3"


def test_message_takes_an_optional_id_and_no_more():
    assert problem("message", "hello", "ann-1", "extra") == (
        "message takes the message text and, optionally, a message id; not 3 arguments")
    assert problem("message", "hello", None, None, None).endswith("; not 4 arguments")


@pytest.mark.parametrize("name,expected", [
    ("roommessage", "{room, message}"), ("direct", "{to, message}")])
@pytest.mark.parametrize("data,described", [
    ("hi", "a string"), (None, "null"), (["lobby", "hi"], "a list"), (3, "a number"),
    (True, "a boolean"),
])
def test_an_object_event_needs_an_object(name, expected, data, described):
    assert problem(name, data) == f"{name} needs an object {expected}, not {described}"


@pytest.mark.parametrize("name", ["roommessage", "direct"])
def test_an_object_event_needs_exactly_its_keys(name):
    keys = CLIENT_EVENTS[name].keys
    exactly = f"{name} needs an object with exactly the keys {{{', '.join(keys)}}}"
    full = dict.fromkeys(keys, "x")
    assert problem(name, {}) == exactly
    assert problem(name, {keys[0]: "x"}) == exactly, "one key missing"
    assert problem(name, {**full, "extra": 1}) == exactly, "one key too many"
    assert problem(name, {keys[0]: "x", "Message": "x"}) == exactly, "keys are case sensitive"
    assert problem(name, dict(reversed(full.items()))) is None, "in any order"


def test_client_events_are_the_client_s_rows():
    client_rows = [e for e in EVENTS if e.direction == "client → server"]
    assert all(isinstance(e, ClientEvent) for e in client_rows)
    assert [CLIENT_EVENTS[e.name] for e in client_rows] == client_rows
    assert len(CLIENT_EVENTS) == len(client_rows), "one row per client event"
    assert not any(isinstance(e, ClientEvent) for e in EVENTS if e not in client_rows)
    # "message" goes both ways: the client's row is the one checked.
    assert CLIENT_EVENTS["message"].direction == "client → server"


def test_rows_cannot_be_changed_in_place():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVENTS[0].name = "other"  # type: ignore[misc]


def split_row(row: str) -> list[str]:
    assert row.startswith("| ") and row.endswith(" |"), row
    return row[2:-2].split(" | ")


def test_the_table_has_a_header_and_a_row_per_event_in_order():
    lines = markdown_table().split("\n")
    assert lines[:2] == ["| direction | event | payload |", "|---|---|---|"]
    rows = [split_row(line) for line in lines[2:]]
    assert rows == [[e.direction, f"`{e.name}`", e.payload] for e in EVENTS]


def test_table_rows_for_the_tutorial_s_events():
    lines = markdown_table().split("\n")
    assert "| client → server | `adduser` | the user name (string) |" in lines
    assert "| server → the new user | `private` | `{id, name, msg}` |" in lines
    assert "| server → all | `message` | `{message, user, id, offset}` |" in lines


def test_a_row_s_cells_hold_no_column_separator():
    # A "|" in a payload would split its row in the rendered table.
    for event in EVENTS:
        assert "|" not in event.direction + event.name + event.payload, event
        assert isinstance(event, Event)

"""The README's protocol table is the protocol the server checks against."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatlab.protocol import CLIENT_EVENTS, EVENTS, markdown_table

pytestmark = pytest.mark.unit


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_is_the_protocol():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- protocol table: .*? -->\n(.*?)\n<!-- end of protocol table -->",
                      text, re.S)
    assert found, "the README has lost its protocol table markers"
    assert found[1] == markdown_table(), (
        "the README's protocol table differs from chatlab.protocol: paste "
        "chatlab.protocol.markdown_table() between the markers")


def test_the_tutorials_five_rows_come_first():
    assert [(e.direction, e.name) for e in EVENTS[:5]] == [
        ("client → server", "adduser"), ("client → server", "message"),
        ("server → all", "users"), ("server → the new user", "private"),
        ("server → all", "message")]
    assert set(CLIENT_EVENTS) == {"adduser", "message", "join", "leave", "roommessage", "direct"}

"""How a check's verdict reads where a learner sees it: a failure as one
short block in IPython (expected, happened, hint) that still fails the cell,
and verdicts that need no emoji font."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

import chatlab
from chatlab.exercises import ExerciseFailed, not_attempted, passed

pytestmark = pytest.mark.integration

# Lesson 05's exercise answered without the type check: a message that is
# not a string reaches `text.strip()` and the handler crashes.
WRONG_ANSWER = '''
import socketio
from chatlab.exercises.build_the_chat import check_message_rules

def make_checked_chat():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    users = {}

    @sio.event
    async def adduser(sid, name=None):
        users[sid] = name
        await sio.emit("users", list(users.values()))

    @sio.event
    async def message(sid, text=None):
        if sid not in users or not text.strip() or len(text) > 200:
            await sio.emit("error", {"event": "message", "reason": "refused"}, to=sid)
            return
        await sio.emit("message", {"message": text, "user": users[sid], "id": sid})

    return sio

await check_message_rules(make_checked_chat)
'''

# Characters a verdict may use besides ASCII: each is in every common font
# (no emoji presentation), and each mark comes with a word.
PLAIN_MARKS = set("✓–✗…")


@pytest.fixture
def shell():
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell(config=config)
    yield shell
    shell.run_cell("await chatlab.shutdown()" if "chatlab" in shell.user_ns else "pass")
    InteractiveShell.clear_instance()


def test_a_failed_check_shows_one_block_and_fails_the_cell(shell, capsys):
    result = shell.run_cell(WRONG_ANSWER)
    shown = capsys.readouterr().out

    assert isinstance(result.error_in_exec, ExerciseFailed)  # the cell failed
    assert not result.success
    # no traceback, none of the checker's own code
    assert "Traceback" not in shown
    assert "harness.py" not in shown and "build_the_chat.py" not in shown
    assert "raise " not in shown and "await " not in shown
    lines = shown.strip().splitlines()
    assert lines[0] == "✗ not passed yet: the message rules"
    labels = [line.split(":")[0].strip() for line in lines[1:] if not line.startswith("    ")]
    assert labels == ["expected", "happened", "hint"], shown
    assert "bad messages are refused to their sender alone" in shown
    assert "AttributeError: 'int' object has no attribute 'strip'" in shown
    assert "refuse a message that is not a string" in shown
    assert chatlab.running_servers() == {}


def test_the_block_says_expected_happened_and_a_hint_even_without_one():
    failure = ExerciseFailed("Ann received nothing", expected="Ann is greeted",
                             exercise="the greeting")
    lines = failure._render_traceback_()
    assert lines[:4] == [
        "✗ not passed yet: the greeting",
        "  expected: Ann is greeted",
        "  happened: Ann received nothing",
        "  hint:     go through the exercise's steps above once more, change your answer, and run",
    ]
    assert all(line.startswith(" " * 12) for line in lines[4:])
    assert all(len(line) <= 88 for line in lines)
    assert str(ExerciseFailed("it broke", hint="fix it")) == "it broke: fix it"


def test_verdicts_read_without_an_emoji_font(capsys):
    passed("the server answers")
    not_attempted("the server")
    printed = capsys.readouterr().out.splitlines()
    failure = ExerciseFailed("it broke", hint="fix it", exercise="the server").block()

    assert printed[0] == "✓ passed: the server answers"
    assert printed[1].startswith("– not tried yet: the server.")
    assert failure.startswith("✗ not passed yet: the server")
    for text in printed + [failure]:
        assert {c for c in text if not c.isascii()} <= PLAIN_MARKS, text

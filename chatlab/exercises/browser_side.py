"""Checks for lesson 07 · The browser side.

The exercise: the learner's own page (served by the lesson's chat at
``/mine/``) joins the chat, shows the users list, and shows the user's own
messages apart from the others'. :func:`check_my_page` looks at what the
chat server can see: a connection opened by a real browser (its
``User-Agent``) from a page under ``/mine/`` (its ``Referer``), that joined
with ``adduser`` and sent a ``message`` that a chat window received.

What the page *shows* stays in the browser, where no server can see it: the
learner looks at it, and the kit's tests read it with Playwright.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

from ..chat_server import ChatServer
from ..client import ChatClient
from ..pages import PAGES_PATH
from ..waiting import WaitTimeout
from . import ExerciseFailed, not_attempted, passed

__all__ = ["check_my_page", "is_browser"]

WHAT = "your page joins the chat and sends a message"
EXPECTED = ("a browser, on your page under /mine/, joins the chat and sends a message "
            "that the chat window receives")

# How long the check waits, once your page has joined, for its message.
WAIT = 30.0


def is_browser(environ: Mapping[str, Any]) -> bool:
    """Whether a connection's first request came from a web browser: every
    browser's ``User-Agent`` starts with ``Mozilla/``; Python's, Node's and
    curl's do not."""
    return str(environ.get("HTTP_USER_AGENT", "")).startswith("Mozilla/")


def _page_path(environ: Mapping[str, Any]) -> str | None:
    # The page that opened the connection, when the browser said (it does
    # on an HTTP long-polling request, the client's default first step).
    referer = environ.get("HTTP_REFERER")
    return urlsplit(str(referer)).path if referer else None


async def check_my_page(chat: ChatServer, window: Any, *, timeout: float = WAIT) -> None:
    """Check that a browser on your page joined ``chat`` and sent a message
    that ``window`` (a ``ChatWidget`` or a ``ChatClient``) received.

    It says "not tried yet" while no browser has joined the chat, so Run All
    goes on; once one has, it waits up to ``timeout`` seconds for its
    message to arrive.
    """
    client: ChatClient = getattr(window, "client", window)
    if not isinstance(client, ChatClient):
        raise TypeError(f"check_my_page needs a ChatWidget or a ChatClient, not {window!r}")
    browsers: dict[str, str | None] = {}  # user name -> the path of its page
    for sid, name in list(chat.users.items()):
        environ = chat.sio.get_environ(sid) or {}
        if is_browser(environ):
            browsers[name] = _page_path(environ)
    if not browsers:
        not_attempted("open your page from its link above, join, and send a message")
        return
    mine = {name: path for name, path in browsers.items()
            if path is None or PAGES_PATH in path}
    if not mine:
        names = ", ".join(sorted(browsers))
        raise ExerciseFailed(
            f"the browser users who joined ({names}) came from the kit's own page, not "
            f"from yours", expected=EXPECTED, exercise=WHAT,
            hint=f"open the link to your page (it ends in {PAGES_PATH}), not the chat page")
    names = sorted(mine)
    try:
        message = await client.wait_until(
            lambda: next((m for m in client.messages if m.user in mine), None),
            timeout=timeout, what=f"a message from {' or '.join(names)} arrived")
    except WaitTimeout:
        raise ExerciseFailed(
            f"your page joined as {', '.join(names)}, but no message from it reached "
            f"{client.name}'s window within {timeout:g} s", expected=EXPECTED, exercise=WHAT,
            hint="does your page emit 'message' with the text when you press Send? Look "
                 "in the browser's console (F12) for errors, then send one and run "
                 "this cell again") from None
    passed(f"{message.user}'s browser joined from your page, and {client.name}'s "
           f"window received its message")

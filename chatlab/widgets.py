"""ipywidgets views over a chat client and an event log.

The widgets hold no chat logic. A click or Enter calls the client; the
client emits, the server answers, the client's handlers update its state and
notify its subscribers; the widget then re-renders the part that changed.
That makes every widget a live view of what the client knows, whichever
task (a cell, a socket handler) changed it.

Everything a user typed is escaped before it reaches an HTML widget: the
frontend sets its value as ``innerHTML``. Each name is a ``<bdi>`` and each
message ``dir="auto"``, so that its direction cannot reorder the text
around it; stacked accents (zalgo text) are cut at the edge of their line
or message, and a long message scrolls on its own. The text box and Send button are
one anywidget (:class:`~chatlab.chat_window.ChatEntry`) that sends the text
together with the click or Enter, so a slow link cannot cut a message short.
"""

from __future__ import annotations

import asyncio
import collections
import html
import json
import unicodedata
from typing import Any

import ipywidgets as W
import traitlets

from .chat_window import ChatEntry
from .client import ChatClient, ChatRefused, Message
from .events import EventLog, LogEntry
from .waiting import WaitTimeout

__all__ = ["ChatWidget", "EventLogWidget", "SideBySide", "side_by_side"]

# The status while the client holds messages the server has not acknowledged.
WAITING = "not acknowledged yet: the message is sent again until the server has it"

# What a window whose client is not connected (and not on its way back) says.
ENDED = "This chat has ended: re-run the cells that start it."
RECONNECTING = ("reconnecting… the connection dropped; the client is trying again "
                "and sends what you type once it is back")
OFFLINE = "offline: what you send now goes out when the client is back online"
CONNECTING = "connecting…"

# One stylesheet for both widgets, scoped by their classes. JupyterLab's
# theme variables keep it readable in the dark theme too.
_STYLE = """<style>
.chatlab-chat, .chatlab-log { container-type: inline-size; font-family: var(--jp-ui-font-family, sans-serif);
  font-size: 13px; border: 1px solid var(--jp-border-color2, #ddd);
  border-radius: 8px; padding: 8px; background: var(--jp-layout-color1, #fff); }
.chatlab-chat .widget-html-content, .chatlab-log .widget-html-content {
  line-height: 1.35; }
.chatlab-head { display: flex; justify-content: space-between; align-items: baseline;
  gap: 8px; padding-bottom: 4px; border-bottom: 1px solid var(--jp-border-color2, #eee); }
.chatlab-name { font-weight: 600; font-size: 14px; }
.chatlab-name, .chatlab-meta, .chatlab-users li, .chatlab-row, .chatlab-status {
  overflow: hidden; overflow: clip; padding-block: 0.15em; }
.chatlab-state::before { content: "\\25CF "; }
.chatlab-state-connected { color: #2e7d32; }
.chatlab-state-connecting { color: #ef6c00; }
.chatlab-state-disconnected { color: #9e9e9e; }
.chatlab-rooms { color: var(--jp-ui-font-color2, #666); font-size: 12px; }
.chatlab-list { display: flex; flex-direction: column; gap: 4px; padding: 4px 2px; }
.chatlab-msg { max-width: 80%; padding: 4px 9px; border-radius: 12px;
  align-self: flex-start; background: var(--jp-layout-color2, #eef0f3);
  border-bottom-left-radius: 3px; }
.chatlab-msg.chatlab-mine { align-self: flex-end; background: #d6ebff;
  color: #10233d; border-bottom-left-radius: 12px; border-bottom-right-radius: 3px; }
.chatlab-msg.chatlab-pending { opacity: 0.55; }
.chatlab-meta { font-size: 11px; opacity: 0.75; }
.chatlab-text { white-space: pre-wrap; overflow-wrap: anywhere; unicode-bidi: plaintext;
  max-height: 16em; overflow: auto; padding: 2px 0 1px; }
.chatlab-tag { margin-left: 4px; padding: 0 5px; border-radius: 6px;
  background: rgba(0, 0, 0, 0.08); }
.chatlab-empty { color: var(--jp-ui-font-color3, #999); font-style: italic; padding: 4px; }
.chatlab-users-title { font-weight: 600; font-size: 12px; margin-bottom: 2px; }
.chatlab-users ul { list-style: none; margin: 0; padding: 0; }
.chatlab-users li { overflow-wrap: anywhere; }
.chatlab-users li::before { content: "\\25CF "; color: #2e7d32; font-size: 10px; }
.chatlab-you { color: var(--jp-ui-font-color2, #666); font-size: 11px; }
.chatlab-status { color: #c62828; font-size: 12px; min-height: 1.35em; overflow-wrap: anywhere; }
.chatlab-notice { color: var(--jp-ui-font-color1, #333); font-size: 12px; }
.chatlab-notice:not(:empty) { margin-top: 4px; padding: 3px 6px; border-radius: 4px;
  background: var(--jp-warn-color3, #fff3e0); }
/* A narrow window (four in a row, say) puts its users under its messages. */
@container (max-width: 379px) {
  .chatlab-chat .chatlab-body { flex-direction: column !important; }
  .chatlab-chat .chatlab-body > .chatlab-users { width: auto !important;
    min-width: 0 !important; height: auto !important; max-height: 64px; }
  .chatlab-users ul { display: flex; flex-wrap: wrap; column-gap: 10px; }
}
.chatlab-log-title { font-weight: 600; padding-bottom: 4px; }
.chatlab-row { font-family: var(--jp-code-font-family, monospace); font-size: 12px;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.chatlab-time { color: var(--jp-ui-font-color3, #999); }
.chatlab-in { color: #1565c0; }
.chatlab-out { color: #6a1b9a; }
.chatlab-event { font-weight: 600; }
.chatlab-namespace { color: var(--jp-ui-font-color2, #666); }
</style>"""

_DATA_CHARS = 120  # the longest event data an event-log row shows


def _style() -> W.HTML:
    # A <style> applies wherever it sits in the page, so its own widget can
    # be hidden and take no room.
    return W.HTML(_STYLE, layout=W.Layout(display="none"))


def _scroller(height: str) -> W.Layout:
    # column-reverse starts the scroll at the bottom (the newest entry) and
    # keeps it there when the content is replaced.
    return W.Layout(height=height, overflow="auto", display="flex",
                    flex_flow="column-reverse")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _bdi(text: object) -> str:
    """A user's text (a name, a room) escaped, in an element that keeps its
    direction apart from the text around it."""
    return f'<bdi dir="auto">{_e(text)}</bdi>'


def _refusal(error: dict[str, Any]) -> str:
    event, reason = error.get("event"), error.get("reason", error)
    return f"the server refused {event!r}: {reason}" if event else str(reason)


# The room each window and event log asks for: four fit in one row of a
# notebook's output at 1,400 px with JupyterLab's file browser open (about
# 950 px), and each shrinks no further than stays readable.
WINDOW_LAYOUT = dict(flex="1 1 220px", min_width="200px", max_width="560px", margin="4px")


class ChatWidget(W.VBox):
    """A chat window for one :class:`~chatlab.ChatClient`.

    :param client: the client to show and to send with.
    :param max_messages: how many of the newest messages to show.
    :param ended: what the window says once its client is not connected and
        not coming back (disconnected, shut down, or its server stopped).

    It shows the user's name and connection state, the messages (your own on
    the right), a text box with a Send button (Enter sends too), the active
    users and the latest problem: an ``error`` from the server or a failed
    send. While the client is not connected, ``notice`` says so (and what to
    do); once it is not coming back, the text box and Send button are
    disabled. To drive it from Python, set ``text.value`` and call
    ``send_button.click()``, or ``await submit("hi")``.
    """

    #: What the window says about its connection: "" while connected.
    notice = traitlets.Unicode("")

    # Seconds a send waits for the server before the widget says it is
    # waiting (the client keeps the message and sends it again meanwhile).
    send_timeout = 5.0

    def __init__(self, client: ChatClient, *, max_messages: int = 200, ended: str = ENDED,
                 **box_options: Any) -> None:
        # The text box and the Send button, as one widget (see chat_window).
        self.text = ChatEntry(layout=W.Layout(width="auto"))
        self._header = W.HTML()
        self._messages = W.HTML(layout=_scroller("260px"))
        self._users = W.HTML(layout=W.Layout(width="130px", min_width="90px",
                                             overflow="auto", height="260px"))
        self._status = W.HTML()
        self._notice = W.HTML()
        self._users.add_class("chatlab-users")
        main = W.VBox([self._messages, self.text],
                      layout=W.Layout(flex="1 1 auto", min_width="0"))
        body = W.HBox([main, self._users])
        body.add_class("chatlab-body")
        box_options.setdefault("layout", W.Layout(**WINDOW_LAYOUT))
        super().__init__(
            [_style(), self._header, body, self._notice, self._status], **box_options)
        self.add_class("chatlab-chat")
        self.client = client
        self.max_messages = max_messages
        self.ended = ended
        self._name: str | None = None  # the last name known, kept after a disconnect
        self._problem = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._render_all()
        if client.errors:
            self._set_problem(_refusal(client.errors[-1]))
        client.subscribe(self._on_change)
        self.text.on_send(self._on_send)

    @property
    def send_button(self) -> ChatEntry:
        """The Send button, which is part of the text box's widget:
        ``send_button.click()`` sends the box's value, as a click does."""
        return self.text

    # -- sending ------------------------------------------------------------

    async def submit(self, text: str | None = None, *, typed: bool = False) -> None:
        """Send ``text``, or else the text box's value, to everyone.

        The box is cleared once the server accepts the message it held, or
        once the client holds it to send when the connection is back (shown
        as "sending…" meanwhile). A refused or failed send leaves the box as
        it was and shows why in the status line; it is not raised, as a click
        could not catch it either. (``typed``: ``text`` is what the frontend's
        box held when it was sent; the frontend then empties its box.)
        """
        from_box = text is None
        message = self.text.value if text is None else text
        try:
            await self.client.send(message, timeout=self.send_timeout)
        except WaitTimeout as exc:
            if message not in self.client.pending:
                self._set_problem(str(exc))
                return
            # Kept by the client and sent when it can: typing it again
            # would send it twice.
            self._set_problem(WAITING)
        except (ChatRefused, ConnectionError) as exc:
            self._set_problem(str(exc))
            return
        else:
            self._set_problem("")
        # Typing may have gone on while the send was on its way: keep that.
        if typed:
            self.text.sent(message)
        elif from_box and self.text.value == message:
            self.text.value = ""

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until the sends started by clicks and Enter have finished
        (their outcome is in the text box and the status line)."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            if pending:
                raise WaitTimeout(f"timed out after {timeout:g} s waiting for a send to finish")

    def _on_send(self, text: str | None) -> None:
        self._start_submit(text)

    def _start_submit(self, text: str | None = None) -> None:
        # The send must run on the loop the client connected on: its socket
        # belongs to that loop. JupyterLab sends widget messages on a kernel
        # subshell, so this callback may run in another thread, on another
        # loop; hop over thread-safely then. The box is read over there too:
        # the kernel may apply the typing that came just before Enter on
        # that loop, and this hop queues behind it.
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        loop = self.client.loop or here
        if loop is None or loop.is_closed():
            self._set_problem("no event loop is running here: use `await widget.submit()`")
        elif loop is here:
            self._start_task(text)
        else:
            loop.call_soon_threadsafe(self._start_task, text)

    def _start_task(self, text: str | None) -> None:
        task = asyncio.ensure_future(self.submit(text, typed=text is not None))
        self._tasks.add(task)  # a task nobody references may be collected
        task.add_done_callback(self._submit_done)

    def _submit_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()  # retrieved: never "unretrieved"
        if exc is not None:
            self._set_problem(f"sending failed: {type(exc).__name__}: {exc}")

    # -- rendering ----------------------------------------------------------

    # What to re-render after each kind of change the client reports.
    _PARTS = {
        "state": ("_render_header", "_render_users", "_render_link"),  # a disconnect empties the users
        "me": ("_render_header", "_render_users"),  # "(you)" follows the name
        "rooms": ("_render_header",),
        "users": ("_render_users",),
        "messages": ("_render_messages",),
        "pending": ("_render_messages", "_render_waiting"),
        "errors": ("_render_error",),
    }

    def _on_change(self, client: ChatClient, what: str) -> None:
        for part in self._PARTS.get(what, ("_render_all",)):
            getattr(self, part)()

    def _render_all(self) -> None:
        self._render_header()
        self._render_users()
        self._render_messages()
        self._render_link()

    def _render_link(self) -> None:
        # What the client's connection allows: typing while it is on its way
        # back is fine (the client keeps what is sent), not once it is over.
        client = self.client
        if client.connected:
            notice = ""
        elif client.reconnecting:
            notice = RECONNECTING
        elif client.offline:
            notice = OFFLINE
        elif client.state == "connecting":
            notice = CONNECTING
        else:
            notice = self.ended
        over = notice == self.ended
        self.text.disabled = over
        self.text.placeholder = ("the chat has ended" if over
                                 else "Type a message and press Enter")
        self.notice = notice
        self._notice.value = f'<div class="chatlab-notice">{_e(notice)}</div>'

    def _label(self) -> str | None:
        name = self.client.name or self.client.wanted_name
        if name:
            self._name = name
        return self._name

    def _render_header(self) -> None:
        name, state = self._label(), self.client.state
        shown = _bdi(name) if name else '<i>no name yet</i>'
        rooms = "".join(f'<span class="chatlab-tag">#{_bdi(r)}</span>' for r in self.client.rooms)
        self._header.value = (
            f'<div class="chatlab-head"><span class="chatlab-name">{shown}</span>'
            f'<span class="chatlab-rooms">{rooms}</span>'
            f'<span class="chatlab-state chatlab-state-{_e(state)}">{_e(state)}</span></div>')

    def _render_users(self) -> None:
        me = self.client.name
        you = ' <span class="chatlab-you">(you)</span>'
        rows = "".join(f"<li>{_bdi(u)}{you if u == me else ''}</li>" for u in self.client.users)
        self._users.value = (
            f'<div class="chatlab-users-title">Active users ({len(self.client.users)})</div>'
            f'<ul>{rows}</ul>')

    def _render_messages(self) -> None:
        shown = self.client.messages[-self.max_messages:] if self.max_messages > 0 else []
        rows = "".join(self._render_message(m) for m in shown)
        rows += "".join(
            '<div class="chatlab-msg chatlab-mine chatlab-pending"><div class="chatlab-meta">'
            f'you · sending…</div><div class="chatlab-text" dir="auto">{_e(text)}</div></div>'
            for text in self.client.pending)
        rows = rows or '<div class="chatlab-empty">no messages yet</div>'
        self._messages.value = f'<div class="chatlab-list">{rows}</div>'

    @staticmethod
    def _render_message(message: Message) -> str:
        tags = ""
        if message.room is not None:
            tags = f'<span class="chatlab-tag">#{_bdi(message.room)}</span>'
        elif message.to is not None:
            tags = f'<span class="chatlab-tag">direct to {_bdi(message.to)}</span>'
        mine = " chatlab-mine" if message.mine else ""
        sender = "you" if message.mine else _bdi(message.user)
        return (f'<div class="chatlab-msg{mine}"><div class="chatlab-meta">{sender}{tags}</div>'
                f'<div class="chatlab-text" dir="auto">{_e(message.text)}</div></div>')

    def _render_waiting(self) -> None:
        if self._problem == WAITING and not self.client.pending:
            self._set_problem("")

    def _render_error(self) -> None:
        if self.client.errors:
            self._set_problem(_refusal(self.client.errors[-1]))

    def _set_problem(self, text: str) -> None:
        self._problem = text
        self._status.value = f'<div class="chatlab-status">{"⚠ " + _e(text) if text else ""}</div>'

    @property
    def status(self) -> str:
        """The status line's text: the latest problem, or ``""``."""
        return self._problem

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Stop following the client and close the widget and its parts."""
        if not self._closed:
            self._closed = True
            self.client.unsubscribe(self._on_change)
            for child in _descendants(self):
                child.close()
        super().close()

    def __repr__(self) -> str:
        name = self._shown_name()
        return f"ChatWidget({name!r})" if name else "ChatWidget(no name yet)"

    def _shown_name(self) -> str | None:
        return self._name or self.client.name or self.client.wanted_name


class EventLogWidget(W.VBox):
    """Every event a client sent (→) and received (←), live.

    :param log: the :class:`~chatlab.EventLog` to show, e.g. ``client.log``.
    :param title: the heading (the client's name, say).
    :param limit: how many of the newest events to show.

    Each row shows the seconds since the first event, the direction, the
    namespace when it is not the default one (``/chat message``), the
    event's name and its data as compact JSON, cut at 120 characters.
    """

    def __init__(self, log: EventLog, *, title: str = "events", limit: int = 50,
                 **box_options: Any) -> None:
        self._rows = W.HTML(layout=_scroller("220px"))
        box_options.setdefault("layout", W.Layout(**WINDOW_LAYOUT))
        super().__init__(
            [_style(), W.HTML(f'<div class="chatlab-log-title">{_bdi(title)}</div>'), self._rows],
            **box_options)
        self.add_class("chatlab-log")
        self.event_log = log  # not .log: every widget's .log is its logger
        self.title = title
        self.limit = limit
        self._start: float | None = log.entries[0].time if log.entries else None
        self._lines: collections.deque[str] = collections.deque(maxlen=max(limit, 0))
        self._closed = False
        for entry in list(log.entries)[-limit:] if limit > 0 else []:
            self._lines.append(self._render_entry(entry))
        self._render()
        log.subscribe(self._on_entry)

    @classmethod
    def for_client(cls, client: Any, *, limit: int = 50, **box_options: Any) -> "EventLogWidget":
        """The event log of a :class:`~chatlab.ChatClient` or a
        :class:`~chatlab.RecordingClient`, titled with its name."""
        name = getattr(client, "name", None) or getattr(client, "wanted_name", None)
        return cls(client.log, title=str(name or "events"), limit=limit, **box_options)

    def _on_entry(self, entry: LogEntry) -> None:
        self._lines.append(self._render_entry(entry))
        self._render()

    def _render(self) -> None:
        rows = "".join(self._lines) or '<div class="chatlab-empty">no events yet</div>'
        self._rows.value = f"<div>{rows}</div>"

    def _render_entry(self, entry: LogEntry) -> str:
        if self._start is None:
            self._start = entry.time
        arrow, kind = ("←", "in") if entry.direction == "in" else ("→", "out")
        data = compact_json(entry.data)
        return (f'<div class="chatlab-row"><span class="chatlab-time">'
                f'{entry.time - self._start:7.3f}s</span> '
                f'<span class="chatlab-{kind}">{arrow}</span> '
                f'{_namespace(entry)}'
                f'<span class="chatlab-event">{_bdi(entry.event)}</span>'
                f'{" " + _data(data) if data else ""}</div>')

    def close(self) -> None:
        """Stop following the log and close the widget and its parts."""
        if not self._closed:
            self._closed = True
            self.event_log.unsubscribe(self._on_entry)
            for child in _descendants(self):
                child.close()
        super().close()

    def __repr__(self) -> str:
        return f"EventLogWidget({self.title!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _before_running(super()._repr_mimebundle_(**kwargs), [self])


def _namespace(entry: LogEntry) -> str:
    """The entry's namespace and a space, or nothing for the default one."""
    if entry.namespace == "/":
        return ""
    return f'<span class="chatlab-namespace">{_bdi(entry.namespace)}</span> '


class SideBySide(W.HBox):
    """Widgets in a row that wraps onto new lines when the page is narrow.

    Chat windows and event logs share the row evenly: up to four fit in one
    row of a notebook at 1,400 px with JupyterLab's file browser open; more,
    or a narrower page, wrap into rows of the same kind.
    """

    def __init__(self, *widgets: W.Widget, **box_options: Any) -> None:
        box_options.setdefault("layout", W.Layout(
            display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"))
        super().__init__(list(widgets), **box_options)

    def __repr__(self) -> str:
        count = len(self.children)
        return f"SideBySide({count} widget{'' if count == 1 else 's'})"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return _before_running(super()._repr_mimebundle_(**kwargs), list(self.children))


def before_running(widgets: list[W.Widget]) -> str:
    """What a notebook shows for ``widgets`` where it cannot show widgets:
    the plain text stored with the output, which is all a lesson opened
    fresh shows until its cell runs (e.g. "Run the cell to open the chat
    windows (ann, bob)")."""
    chats = [w._shown_name() or "no name yet" for w in widgets if isinstance(w, ChatWidget)]
    logs = [w.title for w in widgets if isinstance(w, EventLogWidget)]
    others = len(widgets) - len(chats) - len(logs)
    parts = []
    if chats:
        parts.append(f"open the chat window{'s' if len(chats) > 1 else ''} ({', '.join(chats)})")
    if logs:
        what = "the event logs" if len(logs) > 1 else "the event log"
        parts.append(f"{'show ' if not chats else ''}{what} ({', '.join(logs)})")
    if others:
        parts.append(f"{'show ' if not parts else ''}{others} more widget{'s' if others > 1 else ''}")
    if not parts:
        return "Run the cell to show the widgets"
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"Run the cell to {listed}"


def _before_running(bundle: dict[str, Any], widgets: list[W.Widget]) -> dict[str, Any]:
    return {**bundle, "text/plain": before_running(widgets)}


def side_by_side(*widgets: W.Widget) -> SideBySide:
    """Lay ``widgets`` out in a row, e.g. one :class:`ChatWidget` per user."""
    return SideBySide(*widgets)


def compact_json(data: tuple[Any, ...], limit: int = _DATA_CHARS) -> str:
    """An event's data (its arguments) as one line of JSON, at most
    ``limit`` characters: one argument as itself, several as a list.
    Invisible format characters are shown as escapes (``\\u202e``)."""
    if not data:
        return ""
    value: Any = data[0] if len(data) == 1 else list(data)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_unjsonable)
    except (TypeError, ValueError):  # e.g. keys that are not strings
        text = repr(value)
    text = _escape_invisible(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _data(text: str) -> str:
    # JSON reads left to right, whatever the direction of the strings in it.
    return f'<bdi class="chatlab-data" dir="ltr">{_e(text)}</bdi>'


def _escape_invisible(text: str) -> str:
    """``text`` with its invisible format characters (a bidirectional
    override, a zero-width space) as JSON escapes such as ``\\u202e``: a
    log of the wire shows what was sent, and they do not act on the row."""
    if text.isascii():
        return text
    return "".join(json.dumps(char)[1:-1] if unicodedata.category(char) == "Cf" else char
                   for char in text)


def _unjsonable(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    return repr(value)


def _descendants(box: W.Box) -> list[W.Widget]:
    found: list[W.Widget] = []
    for child in box.children:
        if isinstance(child, W.Box):
            found.extend(_descendants(child))
        found.append(child)
    return found

"""The widgets show what their client knows and send through it.

Real chat servers on 127.0.0.1 and real ChatClients: a widget is driven the
way its frontend drives it (the entry's send message with the text typed, or
a click), and what it shows is read from the HTML it would put on the page.
"""

from __future__ import annotations

import asyncio
import html
import warnings

import ipywidgets
import pytest

import chatlab
from chatlab import ChatClient, ChatRefused
from chatlab.widgets import ENDED, WAITING, ChatWidget, EventLogWidget, SideBySide, compact_json, side_by_side

pytestmark = pytest.mark.integration


EVIL_NAME = "<script>alert(1)</script>"
EVIL_TEXT = "<img src=x onerror=alert(1)>"


def page(widget: ipywidgets.Widget) -> str:
    """All the HTML a widget and its parts would put on the page."""
    parts = []
    for child in getattr(widget, "children", ()):
        parts.append(page(child))
    if isinstance(widget, ipywidgets.HTML):
        parts.append(widget.value)
    return "\n".join(parts)


def messages_of(widget: ChatWidget) -> str:
    return widget._messages.value


def users_of(widget: ChatWidget) -> str:
    return widget._users.value


def header_of(widget: ChatWidget) -> str:
    return widget._header.value


def bdi(html_text: str) -> str:
    """How a widget shows a user's text (already escaped) inside other text."""
    return f'<bdi dir="auto">{html_text}</bdi>'


TEXT = '<div class="chatlab-text" dir="auto">'


async def test_click_sends_the_text_box_to_everyone(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)

    ann_box.text.value = "hello, bob"
    ann_box.send_button.click()
    await bob.wait_for_message(user="ann", text="hello, bob")
    assert f'<div class="chatlab-meta">{bdi("ann")}</div>{TEXT}hello, bob</div>' \
        in messages_of(bob_box)
    assert "chatlab-mine" not in messages_of(bob_box)

    await ann.wait_for_message(text="hello, bob")
    await ann_box.wait_idle()
    assert ann_box.text.value == "", "a sent message leaves the box"
    assert '<div class="chatlab-msg chatlab-mine"><div class="chatlab-meta">you</div>' \
        in messages_of(ann_box)
    assert ann_box.status == ""


async def test_enter_in_the_text_box_sends(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)

    bob_box.text.value = "sent with Enter"
    # What the Text widget's frontend sends the kernel when Enter is pressed.
    bob_box.text._handle_custom_msg({"event": "submit"}, [])
    await ann.wait_for_message(user="bob", text="sent with Enter")
    assert "sent with Enter" in messages_of(ann_box)
    await bob_box.wait_idle()
    assert bob_box.text.value == ""


async def test_a_click_on_another_threads_loop_sends_on_the_clients_loop(user):
    # JupyterLab delivers widget messages on a kernel subshell: a thread of
    # its own, running a loop of its own, which the client's socket is not on.
    ann, bob = await user("ann"), await user("bob")
    box = ChatWidget(ann)

    async def frontend() -> None:
        box.text.value = "from another thread"
        box.send_button.click()

    await asyncio.to_thread(asyncio.run, frontend())
    await bob.wait_for_message(user="ann", text="from another thread")
    await box.wait_idle()
    assert box.text.value == ""
    assert box.status == ""


async def test_no_deprecation_warning_reaches_the_notebook(user):
    ann = await user("ann")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box = ChatWidget(ann)
        box.text.value = "quiet"
        box.text._handle_custom_msg({"event": "submit"}, [])
        await ann.wait_for_message(text="quiet")
        await box.wait_idle()
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


async def test_submit_sends_given_text_and_leaves_the_box_alone(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)
    ann_box.text.value = "a draft"

    await ann_box.submit("hi")
    await bob.wait_for_message(user="ann", text="hi")
    assert ">hi</div>" in messages_of(bob_box)
    assert ann_box.text.value == "a draft"

    await ann_box.submit()
    await bob.wait_for_message(text="a draft")
    assert ann_box.text.value == ""
    assert messages_of(bob_box).index(">hi<") < messages_of(bob_box).index(">a draft<"), \
        "the newest message is at the bottom"


@pytest.mark.parametrize("text, reason", [
    ("   ", "the message must not be empty"),
    ("x" * 2001, "the message is 2001 characters long; the limit is 2000"),
])
async def test_a_refused_message_stays_in_the_box_with_the_reason(user, text, reason):
    ann, bob = await user("ann"), await user("bob")
    ann_box = ChatWidget(ann)

    ann_box.text.value = text
    ann_box.send_button.click()
    await ann_box.wait_idle()
    assert ann_box.text.value == text, "nothing typed is lost"
    assert reason in ann_box.status
    assert html.escape(reason, quote=True) in page(ann_box)

    # The refused text reached nobody: the next message is bob's first.
    ann_box.text.value = "second try"
    ann_box.send_button.click()
    first = await bob.wait_for_message()
    assert first.text == "second try"
    await ann_box.wait_idle()
    assert ann_box.status == "", "a successful send clears the status line"
    assert "chatlab-status\"></div>" in page(ann_box)


async def test_server_errors_show_in_the_status_line(user):
    ann = await user("ann")
    box = ChatWidget(ann)
    with pytest.raises(ChatRefused):
        await ann.join("")  # refused by the server, which also sends "error"
    await ann.wait_for_error()
    assert "the server refused 'join': the room name must not be empty" == box.status


async def test_sending_while_disconnected_shows_why(user):
    ann = await user("ann")
    box = ChatWidget(ann)
    await ann.disconnect()
    box.text.value = "anyone there?"
    await box.submit()
    assert box.text.value == "anyone there?"
    assert "not connected" in box.status


async def test_a_message_typed_offline_shows_as_sending_until_the_server_has_it(user):
    ann, bob = await user("ann"), await user("bob")
    box = ChatWidget(bob)
    box.send_timeout = 0.2
    await bob.go_offline()
    box.text.value = "sent from a train"
    await box.submit()
    assert box.text.value == "", "the client holds it: typing it again would send it twice"
    assert box.status == WAITING
    assert "you · sending…" in box._messages.value and "sent from a train" in box._messages.value
    await bob.go_online()
    await ann.wait_for_message(text="sent from a train")
    assert box.status == "" and "sending…" not in box._messages.value
    assert box._messages.value.count("sent from a train") == 1


async def test_users_list_shows_everyone_and_shrinks_on_disconnect(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)
    await ann.wait_for_users(names=["ann", "bob"])
    assert "Active users (2)" in users_of(ann_box)
    you = '<span class="chatlab-you">(you)</span>'
    assert f'<li>{bdi("ann")} {you}</li><li>{bdi("bob")}</li>' in users_of(ann_box)
    assert f'<li>{bdi("ann")}</li><li>{bdi("bob")} {you}</li>' in users_of(bob_box)

    await bob.disconnect()
    await ann.wait_for_users(names=["ann"])
    assert "Active users (1)" in users_of(ann_box)
    assert "bob" not in users_of(ann_box)
    assert "Active users (0)" in users_of(bob_box)


async def test_header_follows_the_connection_state(chat_server):
    ann = ChatClient(chat_server.url)
    box = ChatWidget(ann)
    assert "no name yet" in header_of(box) and ">disconnected<" in header_of(box)
    assert repr(box) == "ChatWidget(no name yet)"

    seen: list[str] = []
    ann.subscribe(lambda client, what: what == "state" and seen.append(header_of(box)))
    await ann.connect()
    assert [h.split("chatlab-state-")[1].split('"')[0] for h in seen] == ["connecting", "connected"]

    await ann.add_user("ann")
    assert f'<span class="chatlab-name">{bdi("ann")}</span>' in header_of(box)
    await ann.join("lab")
    assert f'<span class="chatlab-tag">#{bdi("lab")}</span>' in header_of(box)

    await ann.disconnect()
    assert ">disconnected<" in header_of(box)
    assert f'<span class="chatlab-name">{bdi("ann")}</span>' in header_of(box), \
        "the name stays on show"
    assert repr(box) == "ChatWidget('ann')"


async def test_names_and_messages_are_escaped_everywhere(user, raw):
    evil, bob = await user(EVIL_NAME), await user("bob")
    watcher = await raw("watcher")  # a plain python-socketio client's log too
    await watcher.call("adduser", "watcher", timeout=5)
    widgets = [ChatWidget(evil), ChatWidget(bob), EventLogWidget.for_client(evil),
               EventLogWidget.for_client(bob), EventLogWidget.for_client(watcher)]

    await widgets[0].submit(EVIL_TEXT)
    await bob.wait_for_message(user=EVIL_NAME, text=EVIL_TEXT)
    await watcher.wait_for("message")
    await evil.join(EVIL_NAME[:20])
    await evil.send(EVIL_TEXT, room=EVIL_NAME[:20])
    await evil.wait_for_message(room=EVIL_NAME[:20])
    await evil.send(EVIL_TEXT, to="bob")
    await bob.wait_for_message(text=EVIL_TEXT, count=2)
    with pytest.raises(ChatRefused):
        await bob.send(EVIL_TEXT, to=EVIL_NAME + "!")  # refused: the reason names it
    await bob.wait_for_error()

    everything = "\n".join(page(w) for w in widgets)
    for raw_text in (EVIL_NAME, EVIL_TEXT, "<script", "<img"):
        assert raw_text not in everything
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in everything
    assert "&lt;img src=x onerror=alert(1)&gt;" in everything
    # and in each place a user's text is shown
    chat_bob = page(widgets[1])
    assert "&lt;img src=x onerror=alert(1)&gt;</div>" in messages_of(widgets[1])
    assert f"<li>{bdi('&lt;script&gt;alert(1)&lt;/script&gt;')}</li>" in users_of(widgets[1])
    assert f'<span class="chatlab-name">{bdi("&lt;script&gt;alert(1)&lt;/script&gt;")}</span>' \
        in header_of(widgets[0])
    assert f"#{bdi('&lt;script&gt;alert(1)&lt;/sc')}" in header_of(widgets[0])
    assert f"#{bdi('&lt;script&gt;alert(1)&lt;/sc')}" in messages_of(widgets[0])
    assert "⚠ " in chat_bob and "&lt;script&gt;" in widgets[1]._status.value
    assert "&lt;script&gt;" in widgets[2].children[1].value, "the log's title"


async def test_event_log_shows_in_and_out_with_escaped_data(user, raw):
    ann = await user("ann")
    log_box = EventLogWidget.for_client(ann)
    await ann.send(EVIL_TEXT)
    await ann.wait_for_message(text=EVIL_TEXT)

    rows = log_box._rows.value
    assert '<span class="chatlab-time">  0.000s</span> <span class="chatlab-in">←</span> ' \
        f'<span class="chatlab-event">{bdi("connect")}</span></div>' in rows
    # sent as the text and the client's own id for the message
    event, data = f'<span class="chatlab-event">{bdi("message")}</span>', \
        '<bdi class="chatlab-data" dir="ltr">'
    out = (f'<span class="chatlab-out">→</span> {event} '
           f'{data}[&quot;&lt;img src=x onerror=alert(1)&gt;&quot;,&quot;')
    assert out in rows
    assert (f'<span class="chatlab-in">←</span> {event} '
            f'{data}{{&quot;message&quot;:&quot;&lt;img src=x onerror=alert(1)&gt;&quot;,'
            '&quot;user&quot;:&quot;ann&quot;,') in rows
    assert rows.index(out) < rows.rindex("chatlab-in"), "newest at the bottom"

    # a RecordingClient's log works the same way, titled with its name
    zoe = await raw("zoe")
    zoe_box = EventLogWidget.for_client(zoe, limit=2)
    assert repr(zoe_box) == "EventLogWidget('zoe')"
    await zoe.emit("adduser", "zoe")
    await zoe.wait_for("private")
    rows = zoe_box._rows.value
    assert rows.count('class="chatlab-row"') == 2, "only the newest `limit` rows"
    assert ">users</bdi>" in rows and ">private</bdi>" in rows and ">adduser<" not in rows


def test_event_data_is_compact_and_cut():
    assert compact_json(()) == ""
    assert compact_json(("hi",)) == '"hi"'
    assert compact_json(({"a": [1, 2]}, "x")) == '[{"a":[1,2]},"x"]'
    assert compact_json((b"\x00\x01",)) == '"<2 bytes>"'
    long = compact_json(("y" * 500,))
    assert len(long) == 120 and long.endswith("…")


def test_event_data_shows_invisible_characters_as_escapes():
    assert compact_json(("pay 1\u202e0001",)) == '"pay 1\\u202e0001"'
    assert compact_json(({"ad\u200bmin": "\U000e0041"},)) == '{"ad\\u200bmin":"\\udb40\\udc41"}'
    shalom = "\u05e9\u05dc\u05d5\u05dd \U0001f600"  # kept as it is
    assert compact_json((shalom,)) == f'"{shalom}"'


# -- right-to-left text and text that does not fit ------------------------------------

RTL_NAME = "\u05d3\u05e0\u05d9 <b>"        # Hebrew, then markup
RTL_TEXT = "\u05e9\u05dc\u05d5\u05dd <i>x</i>"
RTL_ROOM = "\u05dc\u05d1"


async def test_names_and_messages_keep_their_direction_apart_and_stay_escaped(user):
    dani, bob = await user(RTL_NAME), await user("bob")
    await dani.join(RTL_ROOM)
    await bob.join(RTL_ROOM)
    dani_box, bob_box = ChatWidget(dani), ChatWidget(bob)
    await dani.send(RTL_TEXT)
    await dani.send("to the room", room=RTL_ROOM)
    await dani.send("just you", to="bob")
    await bob.wait_for_message(text="just you")

    name = bdi("\u05d3\u05e0\u05d9 &lt;b&gt;")
    text = "\u05e9\u05dc\u05d5\u05dd &lt;i&gt;x&lt;/i&gt;"
    shown = messages_of(bob_box)
    assert f'<div class="chatlab-meta">{name}</div>{TEXT}{text}</div>' in shown
    assert f'<span class="chatlab-tag">#{bdi(RTL_ROOM)}</span>' in shown
    assert f'<span class="chatlab-tag">direct to {bdi("bob")}</span>' in shown
    assert f"<li>{name}</li>" in users_of(bob_box)
    assert f'<li>{name} <span class="chatlab-you">(you)</span></li>' in users_of(dani_box)
    assert f'<span class="chatlab-name">{name}</span>' in header_of(dani_box)
    for raw_text in (RTL_NAME, RTL_TEXT, "<b>", "<i>"):
        assert raw_text not in page(bob_box) + page(dani_box)


def css_rule(selector: str) -> str:
    """The declarations of every rule of the widgets' stylesheet whose
    selectors include ``selector``, in order."""
    from chatlab.widgets import _STYLE

    bodies = []
    for rule in _STYLE.split("}"):
        selectors, _, body = rule.partition("{")
        if selector in [part.strip() for part in selectors.split(",")]:
            bodies.append(" ".join(body.split()))
    assert bodies, f"no rule for {selector}"
    return " ".join(bodies)


def test_the_stylesheet_caps_messages_and_cuts_stacked_marks():
    text = css_rule(".chatlab-text")
    assert "max-height: 16em" in text and "overflow: auto" in text, "a long message scrolls"
    assert "overflow-wrap: anywhere" in text and "unicode-bidi: plaintext" in text
    for selector in (".chatlab-name", ".chatlab-meta", ".chatlab-users li", ".chatlab-row"):
        assert "overflow: clip" in css_rule(selector), selector


async def test_the_event_log_isolates_and_escapes_what_was_sent(user, raw):
    zoe = await raw("zoe")
    log_box = EventLogWidget.for_client(zoe)
    await zoe.emit("adduser", "\u202ezoe")  # refused by the server; logged as sent
    await zoe.wait_for("error")
    rows = log_box._rows.value
    assert "\u202e" not in rows
    assert ('<bdi class="chatlab-data" dir="ltr">&quot;\\u202ezoe&quot;</bdi>') in rows
    assert f'<span class="chatlab-event">{bdi("adduser")}</span>' in rows


async def test_room_and_direct_messages_are_marked(user):
    ann, bob = await user("ann"), await user("bob")
    bob_box = ChatWidget(bob)
    await ann.join("lab")
    await bob.join("lab")
    await ann.send("to the lab", room="lab")
    await ann.send("just for you", to="bob")
    await bob.wait_for_message(text="just for you")
    shown = messages_of(bob_box)
    assert f'{bdi("ann")}<span class="chatlab-tag">#{bdi("lab")}</span></div>{TEXT}to the lab' \
        in shown
    assert (f'{bdi("ann")}<span class="chatlab-tag">direct to {bdi("bob")}</span></div>'
            f'{TEXT}just for you') in shown


async def test_only_the_newest_messages_are_shown(user):
    ann = await user("ann")
    box = ChatWidget(ann, max_messages=2)
    assert "no messages yet" in messages_of(box)
    for text in ("one", "two", "three"):
        await ann.send(text)
    await ann.wait_for_message(text="three")
    shown = messages_of(box)
    assert ">one<" not in shown
    assert shown.index(">two<") < shown.index(">three<")


async def test_close_stops_following_the_client(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, log_box = ChatWidget(ann), EventLogWidget.for_client(ann)
    before, log_before = messages_of(ann_box), log_box._rows.value
    ann_box.close()
    log_box.close()
    ann_box.close()  # twice is fine
    await bob.send("after close")
    await ann.wait_for_message(text="after close")
    assert messages_of(ann_box) == before
    assert log_box._rows.value == log_before
    assert ann.messages[-1].text == "after close"


async def test_reprs_are_short_and_stable(user):
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)
    log_box = EventLogWidget.for_client(ann)
    row = side_by_side(ann_box, bob_box, log_box)
    assert isinstance(row, SideBySide) and isinstance(row, ipywidgets.HBox)
    assert row.children == (ann_box, bob_box, log_box)
    assert "wrap" in row.layout.flex_flow

    expected = {ann_box: "ChatWidget('ann')", bob_box: "ChatWidget('bob')",
                log_box: "EventLogWidget('ann')", row: "SideBySide(3 widgets)"}
    for widget, text in expected.items():
        assert repr(widget) == text
    await ann.send("changes nothing in the reprs")
    await bob.wait_for_message()
    assert [repr(w) for w in expected] == list(expected.values())
    assert repr(side_by_side(ann_box)) == "SideBySide(1 widget)"
    assert repr(EventLogWidget(ann.log)) == "EventLogWidget('events')"
    assert repr({"Ann": ann_box}) == "{'Ann': ChatWidget('ann')}"


async def test_the_stored_plain_text_says_what_running_the_cell_shows(user, chat_server):
    # A notebook stores an output's text/plain with it; a lesson opened
    # fresh shows only that until the cell runs.
    ann, bob = await user("ann"), await user("bob")
    ann_box, bob_box = ChatWidget(ann), ChatWidget(bob)
    ann_log, bob_log = EventLogWidget.for_client(ann), EventLogWidget.for_client(bob)
    expected = {
        side_by_side(ann_box, bob_box): "Run the cell to open the chat windows (ann, bob)",
        side_by_side(ann_log, bob_log): "Run the cell to show the event logs (ann, bob)",
        side_by_side(ann_box, bob_box, bob_log):
            "Run the cell to open the chat windows (ann, bob) and the event log (bob)",
        # A window alone keeps its short name: the lessons show windows
        # side by side, and code shows them in lists and dicts.
        ann_box: "ChatWidget('ann')",
        bob_log: "Run the cell to show the event log (bob)",
        side_by_side(ChatWidget(ChatClient(chat_server.url))):
            "Run the cell to open the chat window (no name yet)",
        side_by_side(ipywidgets.Label("x")): "Run the cell to show 1 more widget",
    }
    for widget, text in expected.items():
        bundle = widget._repr_mimebundle_()
        assert bundle["text/plain"] == text
        assert "application/vnd.jupyter.widget-view+json" in bundle, "the live view is kept"


# -- a window that is not connected --------------------------------------------


async def test_after_shutdown_no_window_shows_active_users(chat_server):
    # Over polling, the leaving connection's own users list comes after its
    # disconnect (see test_client); three windows, then the lesson's last cell.
    clients = [ChatClient(chat_server.url, transports=["polling"]) for _ in range(3)]
    boxes = [ChatWidget(client) for client in clients]
    for client, name in zip(clients, ("ann", "bob", "cat")):
        await client.connect()
        await client.add_user(name)
    for client in clients:
        await client.wait_for_users(3)
    assert all("Active users (3)" in users_of(box) for box in boxes)
    await chatlab.shutdown()
    for box in boxes:
        assert "Active users (0)" in users_of(box) and "<li>" not in users_of(box)


async def test_a_window_whose_client_disconnected_is_disabled_and_says_what_to_do(user):
    ann = await user("ann")
    box = ChatWidget(ann)
    assert (box.notice, box.text.disabled) == ("", False)
    assert '<div class="chatlab-notice"></div>' in page(box)
    await ann.disconnect()
    assert box.notice == ENDED == "This chat has ended: re-run the cells that start it."
    assert box.text.disabled, "the text box and its Send button"
    assert box.send_button.disabled
    assert html.escape(ENDED) in page(box)


async def test_after_chatlab_shutdown_every_window_is_disabled(user):
    clients = [await user(name) for name in ("ann", "bob")]
    boxes = [ChatWidget(client, ended="re-run the cells from *Start the chat*") for client in clients]
    await chatlab.shutdown()
    for box in boxes:
        assert box.notice == "re-run the cells from *Start the chat*"
        assert box.text.disabled


async def test_a_window_says_reconnecting_and_stays_usable_while_its_client_retries():
    server = await chatlab.ChatServer().serve(name="widget-reconnect")
    ann = ChatClient(server.url, reconnection_delay=0.05, randomization_factor=0)
    box = ChatWidget(ann)
    await ann.connect()
    await ann.add_user("ann")
    await server.stop()
    await ann.wait_until(lambda: ann.reconnecting, what="reconnecting")
    assert box.notice.startswith("reconnecting")
    assert not box.text.disabled, "what is typed now is sent once the client is back"
    again = await chatlab.ChatServer().serve(name="widget-reconnect", port=server.port)
    await ann.wait_until(lambda: ann.name == "ann", what="rejoined", timeout=10)
    assert (box.notice, box.text.disabled) == ("", False)
    await ann.disconnect()
    await again.stop()


async def test_a_window_whose_server_stopped_for_good_is_disabled():
    server = await chatlab.ChatServer().serve(name="widget-gives-up")
    ann = ChatClient(server.url, reconnection_attempts=1, reconnection_delay=0.01,
                     randomization_factor=0)
    box = ChatWidget(ann)
    await ann.connect()
    await ann.add_user("ann")
    await server.stop()
    await ann.wait_until(lambda: ann.reconnecting, what="reconnecting")
    await ann.wait_until(lambda: not ann.reconnecting, what="gave up", timeout=10)
    assert (box.notice, box.text.disabled) == (ENDED, True)
    await ann.disconnect()


async def test_a_window_offline_on_purpose_says_so_and_keeps_its_box(user):
    ann = await user("ann")
    box = ChatWidget(ann)
    await ann.go_offline()
    assert box.notice.startswith("offline") and not box.text.disabled
    await ann.go_online()
    assert (box.notice, box.text.disabled) == ("", False)


# -- the text box and Send button: one anywidget ---------------------------------


def frontend_send(box: ChatWidget, text: str) -> None:
    """What the entry's frontend sends the kernel on a click or Enter."""
    box.text._handle_custom_msg({"type": "send", "text": text}, [])


async def test_the_text_sent_with_the_click_is_sent_even_if_the_box_lags(user):
    # On a slow link the kernel's copy of the box can lag the typing; the
    # frontend sends the text with the click, and that is what goes out.
    ann, bob = await user("ann"), await user("bob")
    box = ChatWidget(ann)
    told: list[object] = []
    box.text.send = told.append  # what the kernel tells the frontend
    box.text.value = "the whole te"  # the last update that arrived
    frontend_send(box, "the whole text")
    got = await bob.wait_for_message(user="ann")
    assert got.text == "the whole text"
    await box.wait_idle()
    assert told == [{"type": "sent", "text": "the whole text"}], "the frontend empties its box"
    assert box.text.value == "the whole te", "the frontend's own update empties it here"


async def test_a_refused_text_from_the_frontend_stays_in_its_box(user):
    ann = await user("ann")
    box = ChatWidget(ann)
    told: list[object] = []
    box.text.send = told.append
    frontend_send(box, "   ")
    await box.wait_idle()
    assert told == [] and box.status == "the server refused 'message': the message must not be empty"


def test_the_entry_frontend_shows_text_safely():
    from chatlab.chat_window import _ESM

    assert "innerHTML" not in _ESM and "insertAdjacentHTML" not in _ESM
    assert 'model.send({ type: "send", text: input.value })' in _ESM
    assert "export default" in _ESM


# -- the layout -------------------------------------------------------------------


def px(value: str) -> float:
    assert value.endswith("px"), value
    return float(value[:-2])


async def test_four_windows_fit_one_row_beside_jupyterlabs_file_browser(user):
    # A notebook's output is about 950 px wide at 1,400 px with the file
    # browser open (tests/test_jupyterlab.py measures it in a real Lab).
    clients = [await user(name) for name in ("ann", "bob", "cat")]
    row = side_by_side(*(ChatWidget(c) for c in clients), EventLogWidget.for_client(clients[0]))
    assert row.layout.flex_flow == "row wrap", "more, or a narrower page, wrap"
    needed = 0.0
    for widget in row.children:
        layout = widget.layout
        assert layout.flex.split()[:2] == ["1", "1"], "they share the row, growing and shrinking"
        needed += px(layout.min_width) + 2 * px(layout.margin)
        assert px(layout.max_width) >= 2 * px(layout.min_width)
    assert needed <= 900

"""A live view of what a :class:`~chatlab.wire.WireTap` records.

Each row is one Engine.IO packet (or one HTTP or websocket step that
carries none): seconds since the tap's first record, the direction, the
transport, the connection, the packet as sent and what it means. All of it
is text: the rows are escaped before they reach the page, and invisible
format characters are shown as escapes, so traffic cannot add markup or
reorder the row it is in.
"""

from __future__ import annotations

import collections
import html
import unicodedata
from typing import Any

import ipywidgets as W

from .decode import CLIENT_TO_SERVER
from .tap import Record, WireTap

__all__ = ["WireLogWidget", "record_rows"]

ARROWS = {CLIENT_TO_SERVER: "C→S"}
RAW_CHARS = 40
ALL = "all connections"


def record_rows(record: Record, start: float, *, hide_pings: bool = False) -> list[str]:
    """The text rows that show ``record``: one per packet it carries, or one
    for the HTTP or websocket step itself."""
    head = (f"{record.time - start:8.3f}s {ARROWS.get(record.direction, 'S→C')} "
            f"{record.transport:<9} {_short_id(record.connection)}")
    packets = record.packets()
    if packets:
        return [visible(f"{head} {_raw(p.raw):<{RAW_CHARS}} {p.meaning}") for p in packets
                if not (hide_pings and p.is_ping)]
    return [visible(f"{head} {_step(record)}")]


def _step(record: Record) -> str:
    if record.kind == "open":
        return f"websocket opens: {record.http}"
    if record.kind == "close":
        return f"websocket closes ({record.http})"
    if record.kind == "request":
        if record.method == "GET":
            return f"long poll: {record.http} (answered when the server has packets)"
        return record.http
    if record.method == "POST" and record.http.startswith("200"):
        return f"{record.http}: the server took the packets"
    body = f": {_raw(record.data)}" if record.data else ""
    return f"{record.http}{body}"


def _short_id(connection: str | None) -> str:
    return (connection or "-")[:8].ljust(8)


def _raw(data: str | bytes) -> str:
    if isinstance(data, bytes):
        text = "<" + data[:12].hex(" ") + (" …" if len(data) > 12 else "") + ">"
    else:
        text = data.replace("\x1e", "␞")
    return text if len(text) <= RAW_CHARS else text[:RAW_CHARS - 1] + "…"


def visible(text: str) -> str:
    """``text`` with control and format characters (bidi overrides,
    zero-width marks) written as escapes."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") and c != "\n" else c
        for c in text)


class WireLogWidget(W.VBox):
    """The packets a :class:`~chatlab.wire.WireTap` records, decoded, live.

    :param tap: the tap to follow.
    :param hide_pings: leave out the heartbeat's ping and pong packets (the
        upgrade's probes stay).
    :param connection: show one Engine.IO connection only (its ``sid``), or
        every connection with None.
    :param limit: how many of the newest rows to show.
    """

    def __init__(self, tap: WireTap, *, hide_pings: bool = True,
                 connection: str | None = None, limit: int = 200, **box_options: Any) -> None:
        self.tap = tap
        self.limit = limit
        self._lines: collections.deque[str] = collections.deque(maxlen=max(limit, 0))
        self._closed = False
        self._hide = W.Checkbox(value=hide_pings, description="hide pings", indent=False)
        self._picker = W.Dropdown(options=[ALL], value=ALL, description="connection")
        self._rows = W.HTML(layout=W.Layout(max_height="320px", overflow="auto"))
        box_options.setdefault("layout", W.Layout(width="100%"))
        super().__init__([W.HBox([self._hide, self._picker]), self._rows], **box_options)
        self._connections: list[str] = []
        self._add_connections(tap.records)
        self.connection = connection
        self._hide.observe(lambda _: self._rebuild(), "value")
        self._picker.observe(lambda _: self._rebuild(), "value")
        self._rebuild()
        tap.subscribe(self._on_record)

    @property
    def hide_pings(self) -> bool:
        return bool(self._hide.value)

    @hide_pings.setter
    def hide_pings(self, value: bool) -> None:
        self._hide.value = value

    @property
    def connection(self) -> str | None:
        return None if self._picker.value == ALL else self._picker.value

    @connection.setter
    def connection(self, value: str | None) -> None:
        if value is not None and value not in self._connections:
            self._connections.append(value)
            self._picker.options = [ALL, *self._connections]
        self._picker.value = ALL if value is None else value

    @property
    def rows(self) -> list[str]:
        """The rows shown, oldest first, as plain text."""
        return list(self._lines)

    def _start(self) -> float:
        records = self.tap.records
        return records[0].time if records else 0.0

    def _shown(self, record: Record) -> bool:
        return self.connection is None or record.connection == self.connection

    def _rebuild(self) -> None:
        self._lines.clear()
        start = self._start()
        for record in self.tap.records:
            if self._shown(record):
                self._lines.extend(record_rows(record, start, hide_pings=self.hide_pings))
        self._render()

    def _on_record(self, record: Record) -> None:
        self._add_connections([record])
        if self._shown(record):
            self._lines.extend(record_rows(record, self._start(), hide_pings=self.hide_pings))
            self._render()

    def _add_connections(self, records: list[Record]) -> None:
        new = [r.connection for r in records
               if r.connection and r.connection not in self._connections]
        if new:
            self._connections.extend(dict.fromkeys(new))
            self._picker.options = [ALL, *self._connections]

    def _render(self) -> None:
        text = "\n".join(self._lines) or "nothing recorded yet"
        self._rows.value = (
            '<pre style="margin:0;font-size:12px;line-height:1.35;white-space:pre">'
            f"{html.escape(visible(text))}</pre>")

    def close(self) -> None:
        """Stop following the tap and close the widget and its parts."""
        if not self._closed:
            self._closed = True
            self.tap.unsubscribe(self._on_record)
            for child in (self._hide, self._picker, self._rows, *self.children):
                child.close()
        super().close()

    def __repr__(self) -> str:
        return f"WireLogWidget({len(self._lines)} rows)"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        return {**bundle, "text/plain": "Run the cell to show the wire log"}

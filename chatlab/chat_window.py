"""The text box and Send button of a chat window, as one anywidget.

Why not an ipywidgets ``Text`` and ``Button``: the frontend holds a Text's
value update back until the kernel has answered the previous one, but sends
a click (or Enter) at once. On a slow link the kernel then reads a value
that lacks the last keys typed, and a message goes out cut short. Here the
frontend sends the text *with* the click or Enter, in one message
(``{"type": "send", "text": ...}``), so the kernel sends exactly what was
typed, however slow the link.

The entry knows nothing about chatting: it hands each text to the callbacks
given to :meth:`ChatEntry.on_send` (the :class:`~chatlab.widgets.ChatWidget`
forwards it to its client). The frontend shows text with ``value`` and
``textContent`` only, never as HTML.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import anywidget
import traitlets

__all__ = ["ChatEntry"]

# The frontend: an <input> and a <button>. The value typed is also kept in
# the model (for Python to read), but a send never relies on it having
# arrived: the text travels in the send message itself.
_ESM = r"""
function render({ model, el }) {
  const row = document.createElement("div");
  row.className = "chatlab-entry";
  const input = document.createElement("input");
  input.type = "text";
  input.className = "chatlab-input";
  input.dir = "auto"; // right-to-left text reads from the right as it is typed
  input.setAttribute("aria-label", "message");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chatlab-send";
  row.append(input, button);
  el.append(row);

  const show = () => {
    input.placeholder = model.get("placeholder");
    button.textContent = model.get("button_label");
    button.title = model.get("button_tooltip");
    input.disabled = button.disabled = model.get("disabled");
  };
  show();
  input.value = model.get("value");

  const keep = () => {
    model.set("value", input.value);
    model.save_changes();
  };
  const send = () => {
    if (input.disabled) return;
    model.send({ type: "send", text: input.value });
  };
  input.addEventListener("input", keep);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  button.addEventListener("click", send);

  const fromKernel = () => {
    if (input.value !== model.get("value")) input.value = model.get("value");
  };
  // The kernel has sent `text`: empty the box unless typing went on since.
  const onMessage = (message) => {
    if (message && message.type === "sent" && input.value === message.text) {
      input.value = "";
      keep();
    }
  };
  const shown = ["change:placeholder", "change:button_label", "change:button_tooltip",
                 "change:disabled"];
  for (const name of shown) model.on(name, show);
  model.on("change:value", fromKernel);
  model.on("msg:custom", onMessage);
  return () => {
    for (const name of shown) model.off(name, show);
    model.off("change:value", fromKernel);
    model.off("msg:custom", onMessage);
  };
}
export default { render };
"""

_CSS = """
.chatlab-entry { display: flex; gap: 6px; align-items: center; margin-top: 6px; }
.chatlab-entry .chatlab-input { flex: 1 1 auto; min-width: 40px; box-sizing: border-box;
  height: 28px; padding: 2px 8px; font: inherit; font-size: 13px;
  color: var(--jp-ui-font-color1, #222); background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 4px; }
.chatlab-entry .chatlab-input:focus { outline: none;
  border-color: var(--jp-brand-color1, #1976d2); }
.chatlab-entry .chatlab-send { flex: 0 0 auto; height: 28px; padding: 0 12px; font: inherit;
  font-size: 13px; color: #fff; background: var(--jp-brand-color1, #1976d2);
  border: none; border-radius: 4px; cursor: pointer; }
.chatlab-entry :disabled { opacity: 0.5; cursor: not-allowed; }
"""


class ChatEntry(anywidget.AnyWidget):
    """A text box and a Send button; Enter sends too.

    ``value`` is the text in the box (typing updates it, as the link allows;
    setting it from Python changes the box). A send from the frontend
    carries the text that was in the box at that moment, and each callback
    given to :meth:`on_send` is called with it. :meth:`click` does what the
    Send button does, with ``value`` as the text.
    """

    _esm = _ESM
    _css = _CSS

    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("Type a message and press Enter").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    button_label = traitlets.Unicode("Send").tag(sync=True)
    button_tooltip = traitlets.Unicode("send the message to everyone").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        with warnings.catch_warnings():
            # anywidget adds its traits with ipywidgets' add_traits(), which
            # in older ipywidgets releases (8.1.0, our floor) reads them in a
            # way traitlets deprecates: the warning would land in the notebook.
            warnings.filterwarnings("ignore", "Deprecated in traitlets 4.1", DeprecationWarning)
            super().__init__(**kwargs)
        self._send_callbacks: list[Callable[[str | None], Any]] = []
        self.on_msg(self._on_frontend_msg)

    def on_send(self, callback: Callable[[str | None], Any], remove: bool = False) -> None:
        """Call ``callback(text)`` for each send: ``text`` is what the
        frontend's box held, or None for "the box's ``value``" (a send from
        Python, or from a frontend that sent no text)."""
        if remove:
            self._send_callbacks.remove(callback)
        else:
            self._send_callbacks.append(callback)

    def click(self) -> None:
        """Send ``value``, as the Send button does."""
        self._sent(None)

    def sent(self, text: str) -> None:
        """Tell the frontend that ``text`` went out: it empties its box if
        the box still holds just that (typing may have gone on)."""
        self.send({"type": "sent", "text": text})

    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: list[Any]) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "send" and isinstance(content.get("text"), str):
            self._sent(content["text"])
        elif content.get("event") in ("submit", "click"):
            # What ipywidgets' own Text (Enter) and Button (click) send.
            self._sent(None)

    def _sent(self, text: str | None) -> None:
        for callback in list(self._send_callbacks):
            callback(text)

    def __repr__(self) -> str:
        return f"ChatEntry(value={self.value!r})"

"""ChatWidget in a real Jupyter kernel, driven by the comm messages the
frontend sends for typing, Enter and clicks. (tests/test_widgets.py drives
widgets in this process, the way those messages end up calling them.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


UNTIL_VALUE = """
import asyncio

async def until_value(widget, value, timeout=5.0):
    loop = asyncio.get_running_loop()
    arrived = loop.create_future()

    def seen(change):  # called in whichever thread set the value
        if change["new"] == value:
            loop.call_soon_threadsafe(lambda: arrived.done() or arrived.set_result(None))

    widget.observe(seen, "value")
    try:
        if widget.value != value:
            await asyncio.wait_for(arrived, timeout)
    finally:
        widget.unobserve(seen, "value")
"""


def test_the_frontends_messages_send_in_a_real_kernel():
    """A kernel receives typing, Enter and clicks as comm messages, which
    JupyterLab sends on a subshell (another thread, another loop) when the
    kernel has them; the sends must still run on the loop of the client."""
    jupyter_client = pytest.importorskip("jupyter_client")
    manager, kernel = jupyter_client.manager.start_new_kernel(kernel_name="python3")

    def run(code: str) -> str:
        msg_id = kernel.execute(code)
        out: list[str] = []
        while True:
            msg = kernel.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"]["text/plain"])
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)

    def control(msg_type: str) -> dict:
        request = kernel.session.msg(msg_type, {})
        kernel.control_channel.send(request)
        while True:
            reply = kernel.control_channel.get_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                return reply["content"]

    subshell = None
    if "kernel subshells" in kernel.kernel_info(reply=True)["content"].get(
            "supported_features", []):
        subshell = control("create_subshell_request")["subshell_id"]

    def frontend(comm_id: str, data: dict) -> None:
        msg = kernel.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        if subshell is not None:
            msg["header"]["subshell_id"] = subshell
        kernel.shell_channel.send(msg)

    def type_in(comm_id: str, text: str) -> None:
        frontend(comm_id, {"method": "update", "state": {"value": text}, "buffer_paths": []})
        # ipykernel may hand the next message, on this comm or another, to
        # another thread than this one, so the two can overlap; a person is
        # never that quick, and this test waits until the text has arrived.
        run(f"await until_value(box.text, {text!r})")

    try:
        run("import chatlab\n"
            "from chatlab.widgets import ChatWidget\n"
            "server = await chatlab.ChatServer().serve(name='kernel-test')\n"
            "ann, bob = chatlab.ChatClient(server.url), chatlab.ChatClient(server.url)\n"
            "await ann.connect(); await ann.add_user('ann')\n"
            "await bob.connect(); await bob.add_user('bob')\n"
            "box = ChatWidget(ann)")
        run(UNTIL_VALUE)
        assert run("box") == "ChatWidget('ann')"
        text_id, button_id = run("print(box.text.model_id, box.send_button.model_id)").split()

        type_in(text_id, "pressed Enter")
        frontend(text_id, {"method": "custom", "content": {"event": "submit"}})
        assert run("m = await bob.wait_for_message(text='pressed Enter'); await box.wait_idle()\n"
                   "print(m.user, repr(box.text.value))") == "ann ''\n"

        type_in(text_id, "clicked Send")
        frontend(button_id, {"method": "custom", "content": {"event": "click"}})
        assert run("m = await bob.wait_for_message(text='clicked Send'); await box.wait_idle()\n"
                   "print(m.user, repr(box.text.value), box.status == '')") == "ann '' True\n"
        run("await chatlab.shutdown()")
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)

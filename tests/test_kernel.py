"""chatlab.serve in a real Jupyter kernel: top-level await, a re-run start
cell, clean output, and a kernel that shuts down promptly."""

from __future__ import annotations

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e


START = """\
import socketio, chatlab
sio = socketio.AsyncServer(async_mode="aiohttp")

@sio.event
async def echo(sid, data=None):
    return data

server = await chatlab.serve(sio, name="lesson")
print("running:", server.running)"""


def run_notebook(*sources: str) -> list[nbformat.NotebookNode]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    return notebook.cells


def texts(cell: nbformat.NotebookNode) -> tuple[str, str]:
    """(stdout, everything else) of a cell's outputs."""
    out, other = "", ""
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            out += output.text
        else:
            other += str(output)
    return out, other


def test_a_server_runs_in_the_kernel_and_the_start_cell_can_be_rerun():
    cells = run_notebook(
        START,
        START,  # the learner runs the same cell again
        "print(sorted(chatlab.running_servers()), server.running)",
        """\
client = chatlab.RecordingClient("ann")
await client.connect(server.url)
print(await client.call("echo", "hello from the kernel", timeout=5))""",
        """\
await client.disconnect()
await chatlab.shutdown()
print(chatlab.running_servers(), server.running)""",
    )
    outputs = [texts(cell) for cell in cells]
    assert [out for out, _ in outputs] == [
        "running: True\n",
        "running: True\n",
        "['lesson'] True\n",
        "hello from the kernel\n",
        "{} False\n",
    ]
    assert all(other == "" for _, other in outputs), outputs  # nothing on stderr


def test_a_chat_runs_in_the_kernel_with_clients():
    cells = run_notebook(
        """\
import chatlab
chat = chatlab.ChatServer()
server = await chat.serve()
ann, bob = chatlab.ChatClient(server.url), chatlab.ChatClient(server.url)
for client, name in ((ann, "ann"), (bob, "bob")):
    await client.connect()
    await client.add_user(name)
await bob.send("hi ann")
print((await ann.wait_for_message(user="bob")).text, ann.users)""",
        "await chatlab.shutdown(); print(chatlab.running_servers())",
    )
    assert [texts(cell) for cell in cells] == [("hi ann ['ann', 'bob']\n", ""), ("{}\n", "")]


def test_the_kernel_shuts_down_cleanly_with_a_server_and_clients_still_running():
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    try:
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            START + "\nc = chatlab.ChatClient(server.url)\nawait c.connect()", timeout=30)
        assert reply["content"]["status"] == "ok"
        client.stop_channels()
        process = manager.provisioner.process
        manager.request_shutdown()
        # finish_shutdown kills the kernel only if it has not exited by then,
        # and a killed process has a negative return code.
        manager.finish_shutdown(waittime=20)
        assert process.wait(5) == 0
    finally:
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
            pytest.fail("the kernel did not exit on shutdown")


def test_a_handler_error_is_reported_under_the_cell_that_caused_it():
    cells = run_notebook(
        START + """

@sio.event
async def needs_data(sid, data):
    return data""",
        """\
client = chatlab.RecordingClient("ann")
await client.connect(server.url)
await client.emit("needs_data")
errors = await server.wait_for_errors(1)""",
        "print(len(server.errors))",
        "await client.shutdown(); await chatlab.shutdown()",
    )
    outputs = [texts(cell) for cell in cells]
    assert outputs[0] == ("running: True\n", "")
    stderr = [o for o in cells[1].outputs if o.get("name") == "stderr"]
    assert len(stderr) == 1 and stderr[0].text == (
        "chatlab server 'lesson': the handler for 'needs_data' raised TypeError: "
        "needs_data() missing 1 required positional argument: 'data' (the client sent "
        "'needs_data' with less data than the handler takes; give the data parameter a "
        "default, e.g. `async def needs_data(sid, data=None)`)\n")
    assert outputs[2] == ("1\n", "")  # reported once, in the cell where it happened


CHAT_WITH_CLIENTS = """\
import asyncio, socket, chatlab
before = set(asyncio.all_tasks())
fast = chatlab.Limits(events_per_second=10**6, burst=10**6)
chat = chatlab.ChatServer(limits=fast)
server = await chat.serve(name="kernel-chat")
ann, bob = chatlab.ChatClient(server.url), chatlab.ChatClient(server.url)
for client, name in ((ann, "ann"), (bob, "bob")):
    await client.connect()
    await client.add_user(name)
print("port", server.port)"""

BROADCAST_FOREVER = """\
print("broadcasting", flush=True)
while True:
    await ann.send("again and again")"""

AFTER_THE_INTERRUPT = """\
await bob.send("still here")
await ann.wait_for_message(text="still here")
print("chat works:", server.running)
await chatlab.shutdown()
def socket_io_task(task):  # not the kernel's own (it starts tasks per cell)
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and any(
        name in code.co_filename for name in ("chatlab", "socketio", "engineio", "aiohttp"))
left = {task for task in asyncio.all_tasks() - before if socket_io_task(task)}
if left:
    _, left = await asyncio.wait(left, timeout=5)
try:
    socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    port = "still open"
except ConnectionRefusedError:
    port = "closed"
print("servers:", chatlab.running_servers(), "port:", port, "tasks left:", len(left))"""


class Kernel:
    """A real kernel, driven cell by cell."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="python3")

    def __enter__(self) -> "Kernel":
        self.manager.start_kernel()
        self.connect()
        return self

    def connect(self) -> None:
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 30) -> tuple[str, dict]:
        """Run a cell; return its stdout and the execute reply's content."""
        out: list[str] = []

        def output(message: dict) -> None:
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                out.append(message["content"]["text"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=output)
        return "".join(out), reply["content"]

    def __exit__(self, *exc_info: object) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def test_interrupting_the_kernel_mid_broadcast_leaves_a_working_chat_and_a_clean_shutdown():
    with Kernel() as kernel:
        out, reply = kernel.run(CHAT_WITH_CLIENTS)
        assert reply["status"] == "ok", reply
        # stop_on_error=False: the interrupt must not abort the cells after it.
        msg_id = kernel.client.execute(BROADCAST_FOREVER, stop_on_error=False)
        # Interrupt once the cell is inside its loop (it says so first).
        while True:
            message = kernel.client.get_iopub_msg(timeout=30)
            if (message["parent_header"].get("msg_id") == msg_id
                    and message["msg_type"] == "stream"
                    and "broadcasting" in message["content"]["text"]):
                break
        kernel.manager.interrupt_kernel()
        reply = kernel.client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] in ("KeyboardInterrupt", "CancelledError")
        out, reply = kernel.run(AFTER_THE_INTERRUPT)
        assert reply["status"] == "ok", reply
        assert out == "chat works: True\nservers: {} port: closed tasks left: 0\n"


def test_restarting_the_kernel_frees_the_port_for_the_next_server():
    with Kernel() as kernel:
        out, reply = kernel.run(CHAT_WITH_CLIENTS)
        assert reply["status"] == "ok", reply
        port = int(out.split()[-1])
        kernel.client.stop_channels()
        kernel.manager.restart_kernel(now=False)
        kernel.connect()
        out, reply = kernel.run(
            "import chatlab\n"
            "chat = chatlab.ChatServer()\n"
            f"server = await chat.serve(name='again', port={port})\n"
            "print(server.running, chatlab.running_servers())\n"
            "await chatlab.shutdown()")
        assert reply["status"] == "ok", reply
        assert out == "True {'again': <RunningServer 'again' running>}\n"

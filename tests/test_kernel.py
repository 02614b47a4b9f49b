"""chatlab.serve in a real Jupyter kernel: top-level await, a re-run start
cell, clean output, and a kernel that shuts down promptly."""

from __future__ import annotations

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

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

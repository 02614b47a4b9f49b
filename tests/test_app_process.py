"""Apps run as real processes from a notebook: ready lines, output, failures,
clean stops (SIGTERM, then SIGKILL), no process outliving its starter; and
the lesson's two chat apps, on uvicorn and on aiohttp."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

import chatlab
from chatlab.app_process import AppFailed, free_port, running_apps, start_app, stop_all_apps

pytestmark = pytest.mark.integration

SOLUTION = Path(__file__).parent.parent / "notebooks" / "solutions" / "07-the-browser-side"


@pytest.fixture(autouse=True)
async def no_app_left():
    yield
    await stop_all_apps()
    assert running_apps() == {}


def script(tmp_path: Path, body: str, name: str = "app.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def until_gone(pid: int, timeout: float = 10.0) -> None:
    # Nothing tells this process when an unrelated one ends: look, with a deadline.
    deadline = asyncio.get_running_loop().time() + timeout
    while alive(pid):
        assert asyncio.get_running_loop().time() < deadline, f"process {pid} is still running"
        await asyncio.sleep(0.05)


SERVING = """
    import signal, sys, time
    print("starting")
    print("ready on", sys.argv[1:])
    signal.sigwait([signal.SIGTERM])
    print("stopping")
"""


async def test_it_waits_for_the_ready_line_and_keeps_the_output(tmp_path):
    app = await start_app([script(tmp_path, SERVING), "x"], ready=r"^ready on", name="t")
    assert app.ready_line == "ready on ['x']"
    assert list(app.output) == ["starting", "ready on ['x']"]
    assert app.running and running_apps() == {"t": app}
    assert await app.stop() == 0 or app.returncode == -signal.SIGTERM
    assert not app.killed and not app.running and running_apps() == {}
    assert await app.stop() == app.returncode  # again: nothing more to do


async def test_sigterm_lets_the_app_finish_cleanly(tmp_path):
    body = """
        import signal, sys
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        print("ready")
        signal.pause()
    """
    app = await start_app([script(tmp_path, body)], ready="ready")
    assert await app.stop() == 0 and not app.killed


async def test_an_app_that_ignores_sigterm_is_killed(tmp_path):
    body = """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready")
        while True:
            signal.pause()
    """
    app = await start_app([script(tmp_path, body)], ready="ready")
    assert await app.stop(timeout=0.5) == -signal.SIGKILL
    assert app.killed


async def test_an_app_that_ends_before_it_is_ready_shows_its_output(tmp_path):
    body = """
        print("loading the chat")
        raise SystemExit("port 8000 is taken")
    """
    with pytest.raises(AppFailed) as failed:
        await start_app([script(tmp_path, body)], ready="never", name="broken")
    message = str(failed.value)
    assert "the app 'broken'" in message and "exit code 1" in message
    assert "loading the chat" in message and "port 8000 is taken" in message
    assert running_apps() == {}


async def test_a_python_error_is_shown_with_its_traceback(tmp_path):
    with pytest.raises(AppFailed, match=r"(?s)NameError: name 'undefined' is not defined"):
        await start_app([script(tmp_path, "undefined\n")], ready="ready")


async def test_an_app_not_ready_in_time_is_stopped(tmp_path):
    body = """
        import signal
        print("still loading")
        signal.sigwait([signal.SIGTERM])
    """
    with pytest.raises(AppFailed, match=r"(?s)no line matching 'ready' within 0.5 s.*still loading"):
        await start_app([script(tmp_path, body)], ready="ready", timeout=0.5, name="slow")
    assert running_apps() == {}


async def test_starting_again_under_a_name_stops_the_old_app(tmp_path):
    first = await start_app([script(tmp_path, SERVING)], ready="ready", name="same")
    second = await start_app([script(tmp_path, SERVING)], ready="ready", name="same")
    assert not first.running and second.running and running_apps() == {"same": second}


async def test_chatlab_shutdown_stops_every_app(tmp_path):
    apps = [await start_app([script(tmp_path, SERVING)], ready="ready", name=f"a{i}")
            for i in range(2)]
    await chatlab.shutdown()
    assert running_apps() == {} and not any(app.running for app in apps)


async def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(AppFailed, match="can't open file"):
        await start_app(["no_such_app.py"], ready="ready", cwd=tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ends children with their parent")
@pytest.mark.parametrize("how", ["killed", "exits"])
async def test_an_app_never_outlives_the_process_that_started_it(tmp_path, how):
    app_file = script(tmp_path, SERVING, "app.py")
    starter = script(tmp_path, f"""
        import asyncio, os, signal
        from chatlab.app_process import start_app

        async def main():
            app = await start_app([{str(app_file)!r}], ready="ready")
            print("app", app.pid, flush=True)
            if {how!r} == "killed":
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind

        asyncio.run(main())
    """, "starter.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(starter), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(chatlab.__file__).parent.parent)})
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    pid = int(line.split()[1])
    await process.wait()
    await until_gone(pid)


@pytest.fixture
def chat_folder(tmp_path: Path) -> Path:
    (tmp_path / "page").mkdir()
    for name in ("index.html", "app.js", "show.js"):
        shutil.copy(SOLUTION / name, tmp_path / "page" / name)
    for name in ("asgi_app.py", "aiohttp_app.py"):
        shutil.copy(SOLUTION / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("args, ready", [
    (["-m", "uvicorn", "asgi_app:app"], "Uvicorn running on"),
    (["aiohttp_app.py"], "Running on"),
], ids=["uvicorn", "aiohttp"])
async def test_the_lessons_apps_serve_the_page_and_chat_then_stop_cleanly(chat_folder, args, ready):
    port = free_port()
    app = await start_app([*args, "--port", str(port)], ready=ready, cwd=chat_folder)
    url = f"http://127.0.0.1:{port}"
    assert url in app.ready_line
    async with aiohttp.ClientSession() as http:
        for path in ("/mine/", "/mine/show.js"):
            async with http.get(url + path) as response:
                assert response.status == 200
                assert await response.text() == (chat_folder / "page" / (path[6:] or "index.html")).read_text()
    ann, bob = chatlab.RecordingClient("ann"), chatlab.RecordingClient("bob")
    try:
        for client, name in ((ann, "Ann"), (bob, "Bob")):
            await client.connect(url)
            assert (await client.call("adduser", name, timeout=5))["ok"] is True
        assert await bob.call("message", "hello", timeout=5) == {"ok": True}
        await ann.wait_for("message")
        [(received,)] = ann.received("message")
        assert received == {"message": "hello", "user": "Bob", "id": bob.get_sid()}
        assert (await ann.call("message", "", timeout=5))["ok"] is False
    finally:
        await ann.shutdown()
        await bob.shutdown()
    await app.stop()
    assert not app.killed and app.returncode in (0, -signal.SIGTERM)


async def test_a_very_long_line_is_kept_in_pieces(tmp_path):
    body = """
        import signal
        print("x" * 200_000)
        print("ready")
        signal.sigwait([signal.SIGTERM])
    """
    app = await start_app([script(tmp_path, body)], ready="^ready$")
    assert "".join(list(app.output)[:-1]).count("x") == 200_000
    await app.stop()

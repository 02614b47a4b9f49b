"""`make lab`, the README's first command, opens the first lesson in
JupyterLab, for root as for anyone: run here as whoever runs the tests (in
CI, root), with LAB_OPTIONS for a port of our own and no browser, then
stopped."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
LESSON = "00-start-here.ipynb"  # JupyterLab serves the folder of the notebook it opens
STARTUP_TIMEOUT = 180  # `make lab` installs the kit first (quick once installed)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def read_until(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    """Read lines into ``seen`` until one contains ``text``; fails if the
    stream ends first (the process stopped)."""
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError("make lab stopped before JupyterLab was up:\n" + "".join(seen))
        seen.append(line)
        if text in line:
            return


async def answering(port: int, process: asyncio.subprocess.Process) -> None:
    """Wait until the port takes connections. JupyterLab prints its address
    just before it binds the port (once its event loop runs), and says
    nothing afterwards that we could wait on, so this asks the port."""
    while True:
        assert process.returncode is None, "make lab stopped"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)  # polling a port we cannot be notified by
            continue
        writer.close()
        await writer.wait_closed()
        return


async def drain(stream: asyncio.StreamReader, seen: list[str]) -> None:
    """Keep reading, so that JupyterLab never blocks on a full pipe."""
    while line := await stream.readline():
        seen.append(line.decode(errors="replace"))


async def stop(process: asyncio.subprocess.Process) -> None:
    """Stop make and JupyterLab: the whole process group."""
    if process.returncode is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=30)
    except asyncio.TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def test_make_lab_serves_the_first_lesson_for_whoever_runs_it(tmp_path: Path) -> None:
    port, token = free_port(), secrets.token_hex(16)
    options = " ".join([
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
    ])
    environ = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    process = await asyncio.create_subprocess_exec(
        "make", "--no-print-directory", "lab", f"LAB_OPTIONS={options}", cwd=ROOT, env=environ,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert process.stdout is not None
    seen: list[str] = []
    draining = None
    try:
        # JupyterLab prints its address once it listens.
        await asyncio.wait_for(read_until(process.stdout, f"http://127.0.0.1:{port}/", seen),
                               timeout=STARTUP_TIMEOUT)
        draining = asyncio.ensure_future(drain(process.stdout, seen))
        await asyncio.wait_for(answering(port, process), timeout=30)
        if os.getuid() == 0:
            assert any("--allow-root" in line for line in seen), "".join(seen)

        headers = {"Authorization": f"token {token}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(f"{base}/lab/tree/{LESSON}") as response:
                assert response.status == 200
                assert "JupyterLab" in await response.text()
            async with session.get(f"{base}/api/contents/{LESSON}") as response:
                assert response.status == 200
                lesson = await response.json()
        assert lesson["type"] == "notebook"
        assert lesson["content"]["cells"], "the lesson came back empty"
        assert process.returncode is None, "".join(seen)
    except BaseException:
        print("".join(seen))
        raise
    finally:
        await stop(process)
        if draining is not None:
            await asyncio.wait_for(draining, timeout=30)

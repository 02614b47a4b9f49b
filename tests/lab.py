"""A real JupyterLab in a subprocess, set up the way a JupyterHub (Binder
included) runs one: under the base URL ``/user/tester/``, with
``JUPYTERHUB_SERVICE_PREFIX`` set for it and its kernels, so that a server
started in a kernel is reached only through jupyter-server-proxy at
``/user/tester/proxy/<port>/``.

Everything it writes (runtime files, settings, workspaces, the notebooks it
runs) lives in a temporary directory: a test run never touches the user's
Jupyter set-up or the repository's notebooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = ["BASE_URL", "LAB_HOST", "JupyterLab", "LabNotebook", "chromium_for_lab",
           "copy_notebooks", "free_port", "lab_on_a_copy"]

BASE_URL = "/user/tester/"
# A name that is not localhost, for the browser to reach the Lab by (mapped
# to 127.0.0.1 with Chromium's --host-resolver-rules), as a hub's is.
LAB_HOST = "lab.test"

# Settings for a quiet Lab: no news or update checks whose notifications
# might cover what the tests click.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class PortTaken(RuntimeError):
    """The Lab could not listen on its port: something else took it."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """``jupyter lab`` on 127.0.0.1, serving the notebooks in ``root``.

    :param root: the directory the Lab serves (its ``root_dir``).
    :param home: a directory for its runtime files, settings and workspaces.
    :param token: the token every request must carry (``?token=`` or an
        ``Authorization: token ...`` header).
    """

    def __init__(self, root: Path, home: Path, *, token: str = "chatlab-test-token") -> None:
        self.root = root.resolve()
        self.home = home.resolve()
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "jupyter-lab.log"

    # -- addresses ----------------------------------------------------------

    def url(self, path: str = "", *, host: str = "127.0.0.1") -> str:
        """The absolute URL of ``path`` (relative to the base URL)."""
        return f"http://{host}:{self.port}{BASE_URL}{path.lstrip('/')}"

    def origin(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("JUPYTER", "JPY_"))
        }
        runtime, config, data = (self.home / name for name in ("runtime", "config", "data"))
        env.update(
            JUPYTER_RUNTIME_DIR=str(runtime),
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_DATA_DIR=str(data),
            IPYTHONDIR=str(self.home / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            # What a JupyterHub sets for the single-user server: its kernels
            # inherit it, and chatlab.links reads it there.
            JUPYTERHUB_SERVICE_PREFIX=BASE_URL,
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",  # else it moves to another port, silently
            f"--ServerApp.base_url={BASE_URL}",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            # The browser calls the Lab lab.test, as it would call a hub by
            # its name; without this the Lab answers 403 to a Host that is
            # not local (its guard against DNS rebinding).
            "--ServerApp.local_hostnames=localhost",
            f"--ServerApp.local_hostnames={LAB_HOST}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        ]

    def start(self, timeout: float = 60.0, attempts: int = 3) -> None:
        """Start the Lab and wait until its API answers. A port taken between
        choosing it and the Lab binding it means another try on another."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()

    def _start(self, timeout: float) -> None:
        for name in ("runtime", "config", "data", "ipython"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        settings = self.home / "config" / "lab" / "user-settings"
        for relative, values in USER_SETTINGS.items():
            path = settings / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), cwd=self.root,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its kernels too can be stopped as a group
        )
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(
            self.url("api/status"), headers={"Authorization": f"token {self.token}"})
        last: object = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.log_tail()
                error = PortTaken if "already in use" in log else RuntimeError
                raise error(f"jupyter lab exited with {self.process.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = response.status
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last = exc
            time.sleep(0.1)  # polling a process we cannot be notified by
        self.stop()
        raise TimeoutError(
            f"jupyter lab did not answer within {timeout:g} s ({last}):\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the Lab (and its kernels): SIGTERM, then SIGKILL if it hangs.
        Returns its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        # Anything the Lab started and left behind (a kernel) goes too.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> "JupyterLab":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def copy_notebooks(source: Path, target: Path) -> Path:
    """Copy the notebooks folder to ``target`` (which must not exist yet), so
    that running them in the Lab leaves the originals alone."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return target


@contextlib.contextmanager
def lab_on_a_copy(notebooks: Path, base: Path, keep_log_as: Path) -> Iterator[JupyterLab]:
    """A JupyterLab serving a copy of ``notebooks`` made under ``base``. Its
    log, which holds its kernels' too (what went wrong in a widget callback
    is reported there), is copied to ``keep_log_as`` when it stops."""
    server = JupyterLab(copy_notebooks(notebooks, base / "notebooks"), base / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        keep_log_as.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(server.log_path, keep_log_as)


# -- a notebook open in the Lab, driven through window.jupyterapp ----------------

# Installed in the page: the notebook panel that shows `path` (else null).
_PANEL = """window.chatlabPanel = (path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const widget of app.shell.widgets("main")) {
    if (widget.content && widget.context && widget.context.path === path) return widget;
  }
  return null;
};"""

# Ready: the session exists and its kernel is connected and idle. The
# toolbar's idle indicator shows before this, and Run All then runs nothing.
_KERNEL_READY = """(path) => {
  const panel = chatlabPanel(path);
  const session = panel && panel.sessionContext;
  const kernel = session && session.isReady && session.session && session.session.kernel;
  return !!(kernel && kernel.connectionStatus === "connected" && kernel.status === "idle");
}"""

# Done: the kernel is idle and each of the cells has an execution count and
# is not running; or one of them failed (returned with its traceback).
_CELLS_RAN = """([path, indices]) => {
  const panel = chatlabPanel(path);
  if (!panel) return false;
  const cells = panel.content.widgets;
  for (const i of indices) {
    for (const output of cells[i].model.outputs.toJSON()) {
      if (output.output_type === "error") {
        return {failed: i, error: `${output.ename}: ${output.evalue}`,
                traceback: (output.traceback || []).join("\\n")};
      }
    }
  }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== "idle") return false;
  // (The model, not the [*] prompt: cells out of view may not be rendered.)
  const ran = indices.every((i) => {
    const model = cells[i].model;
    return model.executionCount !== null && model.executionState !== "running";
  });
  return ran ? {failed: null} : false;
}"""


@contextlib.asynccontextmanager
async def chromium_for_lab() -> AsyncIterator["Browser"]:
    """Headless Chromium that reaches the Lab by its name, LAB_HOST (mapped
    to 127.0.0.1), as a hub's user reaches the hub."""
    from playwright.async_api import async_playwright

    import browser

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=browser.require_chromium(), headless=True,
            args=[*browser.CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAB_HOST} 127.0.0.1"])
        try:
            yield launched
        finally:
            await launched.close()


class LabNotebook:
    """A notebook open in a JupyterLab browser tab.

    :param page: the Playwright page the Lab runs in.
    :param path: the notebook's path, relative to the Lab's root.
    """

    def __init__(self, page: "Page", path: str) -> None:
        self.page = page
        self.path = path

    async def open(self, lab: JupyterLab, *, host: str = "127.0.0.1", timeout: float = 60.0) -> None:
        """Open the notebook in a fresh workspace (``?reset``) and wait until
        its kernel is connected and idle."""
        await self.page.add_init_script(_PANEL)
        await self.page.goto(lab.url(f"lab/tree/{self.path}?reset&token={lab.token}", host=host))
        await self.page.wait_for_function(
            _KERNEL_READY, arg=self.path, timeout=timeout * 1000)

    async def cells(self) -> list[dict[str, Any]]:
        """Each cell's ``type`` (code, markdown, raw) and ``source``."""
        return await self.page.evaluate(
            """(path) => chatlabPanel(path).content.widgets.map(
                (cell) => ({type: cell.model.type, source: cell.model.sharedModel.getSource()}))""",
            self.path)

    async def command(self, name: str, *, active_cell: int | None = None) -> None:
        """Start a Lab command on this notebook (not waiting for it to end):
        the notebook is made the current widget, and ``active_cell`` the
        active cell if given."""
        await self.page.evaluate(
            """([path, name, active]) => {
                const panel = chatlabPanel(path);
                window.jupyterapp.shell.activateById(panel.id);  // commands act on the current one
                if (active !== null) panel.content.activeCellIndex = active;
                void window.jupyterapp.commands.execute(name);
            }""",
            [self.path, name, active_cell])

    async def clear_outputs(self) -> None:
        """Clear every output and execution count (the notebook's stored
        outputs would otherwise look like a finished run)."""
        await self.command("notebook:clear-all-cell-outputs")
        await self.page.wait_for_function(
            """(path) => chatlabPanel(path).content.widgets.every(
                (cell) => cell.model.type !== "code" || cell.model.executionCount === null)""",
            arg=self.path)

    async def run(self, code_cells: list[int], *, command: str, active_cell: int | None = None,
                  timeout: float = 60.0) -> None:
        """Run ``command`` and wait until the ``code_cells`` (indices) have
        run; a cell that raised fails with its traceback."""
        await self.command(command, active_cell=active_cell)
        handle = await self.page.wait_for_function(
            _CELLS_RAN, arg=[self.path, code_cells], timeout=timeout * 1000)
        result = await handle.json_value()
        if result["failed"] is not None:
            raise AssertionError(
                f"cell {result['failed']} of {self.path} raised {result['error']}\n"
                f"{_strip_ansi(result['traceback'])}")

    async def outputs(self, index: int) -> list[dict[str, Any]]:
        """The outputs of cell ``index``, as in the .ipynb file."""
        return await self.page.evaluate(
            """([path, i]) => chatlabPanel(path).content.widgets[i].model.outputs.toJSON()""",
            [self.path, index])


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)

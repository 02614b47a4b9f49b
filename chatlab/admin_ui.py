"""Watch a server in the official Socket.IO Admin UI.

The Admin UI is the single-page app Node.js users open to see a Socket.IO
server's sockets, rooms and events live. python-socketio speaks its
protocol through ``AsyncServer.instrument()``; chatlab adds the page
itself, installed at set-up from npm's ``@socket.io/admin-ui`` package
(``make install``, pinned in chatlab/web/vendor) and served by the lesson's
own server at ``/admin-ui/``, so no internet and no second server is needed::

    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    admin = chatlab.AdminUI(sio)                # a random password
    admin.attach(app)                           # before serve(): adds /admin-ui/
    server = await chatlab.serve(sio, app=app)
    admin.link(server)                          # the link, username and password

(``admin = admin_ui(sio, app)`` makes and attaches it in one call); for the
chat, ``ChatServer(admin_ui=True)`` and then ``chat.admin_ui.link(server)``.

Off by default: a server without it has no page and no admin namespace.
On, it is always protected: with no ``password`` a strong one is made up,
and a wrong one is refused.

The page is pointed at the server that serves it (same origin, the
``socket.io`` path beside ``admin-ui/``, and the admin namespace), so the
learner only types the username and password. Because that path is worked
out from the page's own address, it also works behind a JupyterHub's
jupyter-server-proxy, at ``<prefix>proxy/<port>/admin-ui/``: the address
:meth:`AdminUI.link` gives there.

The admin namespace is ``/socketio-admin`` rather than python-socketio's
``/admin``, which a lesson may use for its own clients; the UI's form shows
it under "Advanced options".

python-socketio instruments more than the one server: it wraps methods of
engineio's socket class, for the whole process. So only one server at a
time is instrumented, from its start until its ``stop()``, which undoes it.
The UI's stylesheet links to fonts and icons on public CDNs; without the
internet it works with plain text in their place.
"""

from __future__ import annotations

import hmac
import html
import json
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

import socketio
from aiohttp import web

from .host import RunningServer
from .links import page_link

__all__ = ["ADMIN_NAMESPACE", "AdminLink", "AdminUI", "AdminUINotInstalled",
           "UI_DIR", "UI_PATH", "admin_ui"]

UI_DIR = (Path(__file__).parent / "web" / "vendor" / "node_modules" / "@socket.io"
          / "admin-ui" / "ui" / "dist")
UI_PATH = "/admin-ui/"
ADMIN_NAMESPACE = "/socketio-admin"
# The message the UI shows as its own "Invalid credentials".
INVALID = "invalid credentials"
SETTINGS_FILE = "chatlab-connection.js"

# The one AdminUI instrumenting a server now (see the module's docstring).
_active: "AdminUI | None" = None


class AdminUINotInstalled(FileNotFoundError):
    """The Admin UI's npm package is not installed in chatlab/web/vendor."""


class AdminLink:
    """The Admin UI's link with the credentials to sign in; shows as a
    clickable anchor in a notebook."""

    def __init__(self, url: str, username: str, password: str, namespace: str) -> None:
        self.url = url
        self.username = username
        self.password = password
        self.namespace = namespace

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (f'Open the Socket.IO Admin UI: <a href="{url}" target="_blank" '
                f'rel="noopener">{url}</a> (username <code>{html.escape(self.username)}'
                f'</code>, password <code>{html.escape(self.password)}</code>)')

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return (f"Open the Socket.IO Admin UI: {self.url}\n"
                f"username: {self.username}\npassword: {self.password}")


class AdminUI:
    """The Admin UI for one ``socketio.AsyncServer``.

    :param sio: the server to watch.
    :param username: the name to sign in with.
    :param password: the password to sign in with; a random one when not
        given (read it from ``password`` or :meth:`link`).
    :param namespace: the namespace the UI connects to.
    :param read_only: with True the UI only watches: it cannot make sockets
        join or leave rooms, emit, or disconnect them.
    :param mode: python-socketio's reporting mode, ``'development'`` (every
        socket and event) or ``'production'`` (counts only).
    """

    def __init__(self, sio: socketio.AsyncServer, *, username: str = "admin",
                 password: str | None = None, namespace: str = ADMIN_NAMESPACE,
                 read_only: bool = False, mode: str = "development") -> None:
        if not isinstance(sio, socketio.AsyncServer):
            raise TypeError(f"the Admin UI watches a socketio.AsyncServer, not {type(sio).__name__}")
        if not isinstance(username, str) or not username:
            raise ValueError("the username must be a non-empty string")
        if password is not None and (not isinstance(password, str) or not password):
            raise ValueError("the password must be a non-empty string, or None for a random one")
        if not namespace.startswith("/") or namespace == "/":
            raise ValueError(f"the admin namespace must be like '/socketio-admin', not {namespace!r}")
        if mode not in ("development", "production"):
            raise ValueError("mode is 'development' or 'production'")
        self.sio = sio
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.namespace = namespace
        self.read_only = read_only
        self.mode = mode
        self.instrumented: Any = None  # python-socketio's InstrumentedAsyncServer, while on

    def check(self, auth: Any) -> bool:
        """python-socketio's ``auth`` callable: let in only the right
        username and password; refuse anything else with a reason the UI
        shows."""
        if not isinstance(auth, dict) or not isinstance(auth.get("password"), str):
            # The UI reconnects on its own with a session id, which
            # python-socketio does not keep: ask for the credentials.
            raise socketio.exceptions.ConnectionRefusedError(
                "sign in with the username and password that chatlab printed")
        name = str(auth.get("username", "")).encode()
        password = auth["password"].encode()
        # Both compared every time, in constant time: no hint of which was wrong.
        good = hmac.compare_digest(name, self.username.encode())
        good &= hmac.compare_digest(password, self.password.encode())
        if not good:
            raise socketio.exceptions.ConnectionRefusedError(INVALID)
        return True

    def attach(self, app: web.Application) -> None:
        """Serve the UI at ``/admin-ui/`` on ``app`` and instrument the
        server while ``app`` runs. Call it before the server starts."""
        if not (UI_DIR / "index.html").is_file():
            raise AdminUINotInstalled(
                "the Socket.IO Admin UI is not installed: run `make install` "
                "(or `npm ci --prefix chatlab/web/vendor`) and try again")
        index = (UI_DIR / "index.html").read_text(encoding="utf-8")
        # Before the UI's own scripts, which read the settings at load.
        index = index.replace("<script", f'<script src="{SETTINGS_FILE}"></script><script', 1)
        settings = _settings_script(self.namespace)

        async def page(request: web.Request) -> web.Response:
            return web.Response(text=index, content_type="text/html",
                                headers={"Cache-Control": "no-store"})

        async def connection(request: web.Request) -> web.Response:
            return web.Response(text=settings, content_type="application/javascript",
                                headers={"Cache-Control": "no-store"})

        async def to_page(request: web.Request) -> web.Response:
            # Relative, so that it also holds behind a proxy's prefix.
            raise web.HTTPFound(UI_PATH.strip("/") + "/")

        app.router.add_get(UI_PATH.rstrip("/"), to_page)
        app.router.add_get(UI_PATH, page)
        app.router.add_get(UI_PATH + SETTINGS_FILE, connection)
        app.router.add_static(UI_PATH, UI_DIR)
        app.on_startup.append(self._instrument)
        app.on_cleanup.append(self._uninstrument)

    async def _instrument(self, app: web.Application) -> None:
        global _active
        if _active is not None and _active is not self:
            raise RuntimeError(
                "another server is already watched in the Admin UI; stop it first "
                "(python-socketio instruments one server per process)")
        self.instrumented = self.sio.instrument(
            auth=self.check, mode=self.mode, read_only=self.read_only,
            namespace=self.namespace)
        _active = self

    async def _uninstrument(self, app: web.Application) -> None:
        global _active
        if self.instrumented is not None:
            self.instrumented.uninstrument()
            self.instrumented = None
        if _active is self:
            _active = None

    def link(self, server: RunningServer,
             environ: Mapping[str, str] = os.environ) -> AdminLink:
        """The UI's link on this server (through the hub's proxy on a
        JupyterHub), with the username and password to sign in."""
        url = f"{page_link(server, environ).url}{UI_PATH.lstrip('/')}"
        return AdminLink(url, self.username, self.password, self.namespace)


def admin_ui(sio: socketio.AsyncServer, app: web.Application, *, username: str = "admin",
             password: str | None = None, namespace: str = ADMIN_NAMESPACE,
             read_only: bool = False, mode: str = "development") -> AdminUI:
    """Serve the Socket.IO Admin UI on ``app`` for ``sio`` (see
    :class:`AdminUI` for the options), before ``chatlab.serve(sio, app=app)``.
    Returns the :class:`AdminUI`; its ``link(server)`` gives the address,
    username and password."""
    admin = AdminUI(sio, username=username, password=password, namespace=namespace,
                    read_only=read_only, mode=mode)
    admin.attach(app)
    return admin


def _settings_script(namespace: str) -> str:
    # The UI keeps its connection form in localStorage: fill it in with the
    # server that serves the page, its socket.io path worked out from the
    # page's own address (so a proxy's prefix is kept), and the namespace.
    return f"""\
(function () {{
  var base = window.location.pathname.replace(/admin-ui\\/[^\\/]*$/, "");
  var settings = {{
    server_url: window.location.origin,
    path: base + "socket.io",
    namespace: {json.dumps(namespace)},
    ws_only: "false",
    parser: "default"
  }};
  try {{
    for (var key in settings) window.localStorage.setItem(key, settings[key]);
  }} catch (e) {{ /* no storage: the form starts empty */ }}
}})();
"""

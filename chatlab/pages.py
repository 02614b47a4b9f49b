"""Serve a folder of your own pages beside a Socket.IO server.

A learner writes a page (HTML, JavaScript, CSS) into a folder, and the
lesson's server serves that folder at :data:`PAGES_PATH` (``/mine/``), with
the kit's pinned Socket.IO browser client at
:data:`chatlab.chat_server.CLIENT_PATH`, so the page needs no internet.
Files are sent with ``Cache-Control: no-cache``: a reload shows an edit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from aiohttp import web

from .host import RunningServer
from .links import PageLink, page_link

__all__ = ["PAGES_PATH", "add_folder", "folder_app", "pages_link"]

PAGES_PATH = "/mine/"
NO_CACHE = {"Cache-Control": "no-cache"}


def _checked(folder: str | Path) -> Path:
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"there is no folder {str(folder)!r} to serve (from {os.getcwd()!r}); "
            f"create it first, e.g. with `%%writefile {Path(folder) / 'index.html'}`")
    return path


def add_folder(app: web.Application, folder: str | Path, *, at: str = PAGES_PATH) -> None:
    """Serve the files of ``folder`` from ``app`` under the path ``at``:
    ``<at>`` is its ``index.html`` and ``<at><name>`` each file. Nothing
    outside the folder is served (no ``..``, no links out of it)."""
    root = _checked(folder)
    if not (at.startswith("/") and at.endswith("/")):
        raise ValueError(f"the path to serve the folder at must start and end with '/', not {at!r}")

    async def file(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        path = (root / name).resolve()
        # Looked up at each request: files written after the start are served.
        if not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPNotFound(text=f"{name} is not in the folder served at {at}")
        return web.FileResponse(path, headers=NO_CACHE)

    async def slash(request: web.Request) -> web.StreamResponse:
        # Relative, so that it stays under a proxy's prefix: the page's own
        # relative links need the trailing slash.
        raise web.HTTPFound(at.rstrip("/").rsplit("/", 1)[-1] + "/")

    if at != "/":
        app.router.add_get(at.rstrip("/"), slash)
    app.router.add_get(at, file)
    app.router.add_get(at + "{name:.+}", file)


def folder_app(folder: str | Path, *, at: str = PAGES_PATH) -> web.Application:
    """An aiohttp app that serves ``folder`` at ``at`` and the Socket.IO
    browser client at ``CLIENT_PATH``, for ``chatlab.serve(sio, app=...)``."""
    from .chat_server import CLIENT_FILE, CLIENT_PATH

    async def client(request: web.Request) -> web.FileResponse:
        if not CLIENT_FILE.is_file():
            raise web.HTTPNotFound(text="the Socket.IO client is not installed here")
        return web.FileResponse(CLIENT_FILE)

    app = web.Application()
    app.router.add_get(CLIENT_PATH, client)
    add_folder(app, folder, at=at)
    return app


def pages_link(server: RunningServer, *, at: str = PAGES_PATH,
               environ: Mapping[str, str] = os.environ) -> PageLink:
    """The link to the folder's page, through the hub's proxy on a
    JupyterHub (see :func:`chatlab.links.page_link`)."""
    return PageLink(str(page_link(server, environ)).rstrip("/") + at)

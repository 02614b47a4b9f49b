"""The link to a chat server's page that works where the notebook runs.

Locally the browser reaches the server directly at ``http://127.0.0.1:<port>/``.
On a JupyterHub (Binder included) the browser cannot reach the kernel's
machine at all, only the hub; jupyter-server-proxy forwards
``<prefix>proxy/<port>/`` to the server, and the page (which only uses
relative URLs) connects its Socket.IO client through the same prefix.
"""

from __future__ import annotations

import html
import os
from typing import Mapping

from .host import RunningServer

__all__ = ["PageLink", "page_link"]


class PageLink:
    """A link that shows as a clickable anchor in a notebook."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return f'Open the chat page: <a href="{url}" target="_blank" rel="noopener">{url}</a>'

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"Open the chat page: {self.url}"


def page_link(server: RunningServer, environ: Mapping[str, str] = os.environ) -> PageLink:
    """The page's link for this server, through the hub's proxy when the
    kernel runs on a JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` is set)."""
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return PageLink(f"/{prefix.strip('/')}/proxy/{server.port}/".replace("//", "/"))
    return PageLink(f"{server.url}/")

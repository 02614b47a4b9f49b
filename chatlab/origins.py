"""Which browser origins may talk to a chat server (its CORS policy).

The model tutorial opened its server to every origin. The kit's default is
narrower: the page the server serves itself, and pages on this machine
(``http://localhost:<any port>`` and ``http://127.0.0.1:<any port>``), where
a learner's own HTML file or dev server lives. More origins can be added, and
``"*"`` still opens it to all, on purpose.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

__all__ = ["LOCAL_HOSTS", "origin_policy"]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

OriginCheck = Callable[[str, Mapping[str, str]], bool]


def _own_origins(environ: Mapping[str, str]) -> set[str]:
    """The origins a page served by this same server has: the host the
    request was addressed to and, behind a proxy that says so, the host it
    forwarded for. Either scheme: a proxy in front (a JupyterHub, Binder)
    may take https while the request reaches this server as plain http."""
    hosts = {environ.get("HTTP_HOST", "")}
    forwarded = environ.get("HTTP_X_FORWARDED_HOST", "")
    hosts.add(forwarded.split(",")[0].strip())
    return {f"{scheme}://{host}" for host in hosts if host for scheme in ("http", "https")}


def _is_local(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS


def origin_policy(extra: Iterable[str] = ()) -> OriginCheck | str:
    """The ``cors_allowed_origins`` value for ``socketio.AsyncServer``.

    :param extra: origins allowed besides the default ones, each exactly as a
        browser sends it (``https://example.org``, no trailing slash); ``"*"``
        allows every origin.
    """
    allowed = {origin.rstrip("/") for origin in extra}
    if "*" in allowed:
        return "*"

    def check(origin: str, environ: Mapping[str, str]) -> bool:
        return (
            origin in allowed
            or origin in _own_origins(environ)
            or _is_local(origin)
        )

    return check

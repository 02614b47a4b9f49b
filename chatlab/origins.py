"""Which browser origins may talk to a chat server (its CORS policy).

The model tutorial opened its server to every origin. The kit's default is
narrower: the page the server serves itself, and pages on this machine
(``http://localhost:<any port>`` and ``http://127.0.0.1:<any port>``), where
a learner's own HTML file or dev server lives. More origins can be added, and
``"*"`` still opens it to all, on purpose.

The page's own origin comes from the ``Host`` header, or from a proxy's
``X-Forwarded-Host`` when the proxy is a trusted one (see
:mod:`chatlab.hosts`): from anyone else, that header is not believed.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from .hosts import TrustedProxies, request_peer

__all__ = ["LOCAL_HOSTS", "origin_policy"]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

OriginCheck = Callable[[str, Mapping[str, Any]], bool]


def _own_origins(environ: Mapping[str, Any], proxies: TrustedProxies) -> set[str]:
    """The origins a page served by this same server has: the host the
    request was addressed to or, from a trusted proxy, the host it forwarded
    for. Either scheme: a proxy in front (a JupyterHub, Binder) may take
    https while the request reaches this server as plain http."""
    host = proxies.addressed_host(environ.get("HTTP_HOST"),
                                  environ.get("HTTP_X_FORWARDED_HOST"), request_peer(environ))
    return {f"{scheme}://{host}" for scheme in ("http", "https")} if host else set()


def _is_local(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS


def origin_policy(extra: Iterable[str] = (),
                  trusted_proxies: TrustedProxies | None = None) -> OriginCheck | str:
    """The ``cors_allowed_origins`` value for ``socketio.AsyncServer``.

    :param extra: origins allowed besides the default ones, each exactly as a
        browser sends it (``https://example.org``, no trailing slash); ``"*"``
        allows every origin.
    :param trusted_proxies: the proxies whose ``X-Forwarded-Host`` names the
        page's own host (none by default).
    """
    allowed = {origin.rstrip("/") for origin in extra}
    if "*" in allowed:
        return "*"
    proxies = trusted_proxies if trusted_proxies is not None else TrustedProxies()

    def check(origin: str, environ: Mapping[str, Any]) -> bool:
        return (
            origin in allowed
            or origin in _own_origins(environ, proxies)
            or _is_local(origin)
        )

    return check

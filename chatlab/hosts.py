"""Which host names a chat server answers to, and which proxies it believes.

A page on any web site can reach a server on the visitor's own machine by
DNS rebinding: the site points its own name (``rebind.evil.example``) at
127.0.0.1, and to the browser the chat server is then that site's own
origin, which CORS lets read and post. The ``Host`` header gives it away:
it carries the site's name. So, like Jupyter Server, the chat server answers
only requests addressed to one of its own names:

- ``localhost`` and the loopback addresses (``127.0.0.1``, ``[::1]``), on
  any port;
- the address it listens on, and an IP address that the connection arrived
  on (so one of this machine's own: pupils reaching ``chatlab serve --host
  0.0.0.0`` at ``http://192.168.1.10:5000/`` need nothing more). An IP
  address cannot be pointed elsewhere; a name can, so a name must be given;
- the names it is given (``ChatServer(allowed_hosts=[...])``, ``chatlab
  serve --allow-host NAME``); ``"*"`` allows every name, on purpose.

On a JupyterHub (Binder included) the default is ``"*"``: the browser
reaches a server in the kernel only through the hub, by the hub's name and
once logged in, and the hub's Jupyter server itself answers any host.

A proxy says with ``X-Forwarded-Host`` and ``X-Forwarded-For`` which host
the browser asked for and who the client is. Anybody can send those headers
(a rebinding page too), so they count only on a connection from a proxy
named as trusted (``trusted_proxies``), by its IP address.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from aiohttp import hdrs, web

__all__ = [
    "ANY_HOST",
    "AllowedHosts",
    "TRUSTED_PROXIES",
    "TrustedProxies",
    "client_address",
    "default_allowed_hosts",
    "refuse_foreign_hosts",
    "request_peer",
    "split_host",
]

ANY_HOST = "*"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def default_allowed_hosts(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The host names allowed when none are given: every name on a
    JupyterHub (``JUPYTERHUB_SERVICE_PREFIX`` is set), else none beyond this
    machine's own."""
    return (ANY_HOST,) if environ.get("JUPYTERHUB_SERVICE_PREFIX") else ()


def split_host(value: str) -> tuple[str, int | None]:
    """The name and port of a ``Host`` header (``"[::1]:80"`` gives
    ``("::1", 80)``), the name in lower case; ``ValueError`` if it is not one."""
    parts = urlsplit("//" + value)
    if not parts.hostname or parts.path or parts.query or parts.fragment \
            or "@" in parts.netloc:
        raise ValueError(f"{value!r} is not a host")
    return parts.hostname, parts.port


def _ip(text: str | None) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text or "")
    except ValueError:
        return None
    # A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _name_of(entry: str) -> str:
    """An allowed host as given (a name or an IP address, no port), in the
    form :func:`split_host` gives."""
    text = entry.strip()
    if "/" in text:
        raise ValueError(f"{entry!r} is not a host name: give the name alone, e.g. "
                         f"'classroom.example', not a URL")
    address = _ip(text) or _ip(text.strip("[]"))
    if address is not None:
        return str(address)
    name, port = split_host(text)  # raises ValueError on a malformed one
    if port is not None or text.endswith(":"):
        raise ValueError(f"{entry!r} has a port: give the name alone ({name!r}), "
                         f"which is allowed on every port")
    return str(_ip(name) or name)


class AllowedHosts:
    """The host names a server answers to (see the module's description).

    :param names: host names or IP addresses allowed besides this machine's
        own, without a port (each is allowed on every port); ``"*"`` allows
        every host.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.any = False
        self._names: set[str] = set()
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        """Allow one more host name or address (``"*"``: every one)."""
        if name.strip() == ANY_HOST:
            self.any = True
        else:
            self._names.add(_name_of(name))

    def add_listening_address(self, host: str) -> None:
        """Allow the name or address a server listens on, unless it is
        every interface (``0.0.0.0``, ``::``), which names no host."""
        address = _ip(host.strip("[]"))
        if host and (address is None or not address.is_unspecified):
            self.add(host)

    def allows(self, host: str, local_address: str | None = None) -> bool:
        """Whether to answer a request whose ``Host`` is ``host``, that
        arrived on the local IP address ``local_address``."""
        if self.any:
            return True
        try:
            name, _ = split_host(host)
        except ValueError:
            return False
        address = _ip(name)
        if address is None:
            return name == "localhost" or name in self._names
        return (address.is_loopback or address == _ip(local_address)
                or str(address) in self._names)

    def __repr__(self) -> str:
        names = [ANY_HOST] if self.any else sorted(self._names)
        return f"AllowedHosts({names!r})"


class TrustedProxies:
    """The proxies whose ``X-Forwarded-*`` headers are believed, by the IP
    address they connect from.

    :param addresses: IP addresses or networks (``"127.0.0.1"``,
        ``"10.0.0.0/8"``, ``"::1"``).
    """

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        networks = []
        for address in addresses:
            try:
                networks.append(ipaddress.ip_network(address.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{address!r} is not an IP address or network: name a trusted proxy "
                    f"by the address it connects from, e.g. 127.0.0.1 or 10.0.0.0/8"
                ) from None
        self._networks = tuple(networks)

    def trusts(self, peer: str | None) -> bool:
        """Whether the connection from ``peer`` comes from a trusted proxy."""
        address = _ip(peer)
        return address is not None and any(address in network for network in self._networks)

    def addressed_host(self, host: str | None, forwarded_host: str | None,
                       peer: str | None) -> str | None:
        """The host the browser asked for: the ``X-Forwarded-Host`` that a
        trusted proxy ``peer`` set (the last one: the nearest proxy's), else
        the ``Host`` header (None when there is none)."""
        if forwarded_host and self.trusts(peer):
            last = forwarded_host.split(",")[-1].strip()
            if last:
                return last
        return host or None

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address of the client: ``peer`` or, while the hop before is
        a trusted proxy, the one that proxy forwarded for (``X-Forwarded-For``,
        read from the right: what is left of a trusted proxy's entry was
        written by whoever sent the request to it). "" when unknown."""
        client = peer or ""
        hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
        while hops and self.trusts(client):
            hop = _forwarded_address(hops.pop())
            if hop is None:  # unreadable: the last address known is kept
                break
            client = hop
        return client

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(network) for network in self._networks]!r})"


# Where the chat's app keeps its TrustedProxies, for client_address().
TRUSTED_PROXIES = web.AppKey("chatlab_trusted_proxies", TrustedProxies)


def _forwarded_address(hop: str) -> str | None:
    """The IP address of one ``X-Forwarded-For`` entry, which some proxies
    write with a port (``1.2.3.4:5678``, ``[::1]:5678``)."""
    address = _ip(hop)
    if address is None:
        try:
            address = _ip(split_host(hop)[0])
        except ValueError:
            return None
    return str(address) if address is not None else None


def _header(request: web.BaseRequest, name: str) -> str | None:
    # Several headers of one name read as one list, as in a WSGI environ.
    values = request.headers.getall(name, [])
    return ",".join(values) if values else None


def _aiohttp_request(source: web.BaseRequest | Mapping[str, Any]) -> web.BaseRequest | None:
    if isinstance(source, web.BaseRequest):
        return source
    # A Socket.IO handler's environ: engineio's aiohttp driver keeps the
    # request under this key.
    request = source.get("aiohttp.request")
    return request if isinstance(request, web.BaseRequest) else None


def request_peer(source: web.BaseRequest | Mapping[str, Any]) -> str | None:
    """The IP address the TCP connection of a request (or of a Socket.IO
    ``environ``) comes from; None when unknown. (engineio's ``REMOTE_ADDR``
    is always 127.0.0.1.)"""
    request = _aiohttp_request(source)
    return request.remote if request is not None else None


def client_address(source: web.BaseRequest | Mapping[str, Any]) -> str:
    """The address of the client that sent a request to the chat server:
    the peer of its connection or, when that is a trusted proxy, the client
    it forwarded for. ``source`` is the aiohttp request, or the ``environ``
    a Socket.IO connect handler is given. "" when unknown."""
    request = _aiohttp_request(source)
    if request is None:
        return ""
    proxies = request.config_dict.get(TRUSTED_PROXIES) or TrustedProxies()
    return proxies.client(request.remote, _header(request, "X-Forwarded-For"))


def _local_address(request: web.BaseRequest) -> str | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


def _refusal(host: str) -> str:
    """What a request to a host name that is not allowed is told."""
    try:
        name = split_host(host)[0]
    except ValueError:
        name = host
    return (
        f"This chat server does not answer to the host name {name!r}. If you reached it "
        f"by that name on purpose, allow the name: chatlab serve --allow-host {name}, or "
        f"ChatServer(allowed_hosts=[{name!r}]). (Any web page can point a name of its "
        f"own at this machine; answering only known names keeps such pages out.)\n"
    )


def refuse_foreign_hosts(hosts: AllowedHosts, proxies: TrustedProxies) -> Any:
    """An aiohttp middleware answering 403 to a request addressed to a host
    that ``hosts`` does not allow (the forwarded host, behind ``proxies``)."""

    @web.middleware
    async def check_host(request: web.Request, handler: Any) -> web.StreamResponse:
        host = proxies.addressed_host(
            _header(request, hdrs.HOST), _header(request, "X-Forwarded-Host"), request.remote)
        # No Host at all is no browser (they always send one): nothing to check.
        if host is None or hosts.allows(host, _local_address(request)):
            return await handler(request)
        refused = web.Response(status=403, text=_refusal(host))
        refused.force_close()  # whatever body it sent is not read
        return refused

    return check_host

"""The finished chat as one object, in a kernel or standalone.

:class:`ChatServer` puts together the handlers (:mod:`chatlab.chat`), the
message store and delivery (:mod:`chatlab.delivery`), the wire-level
defences (:mod:`chatlab.hardening`), the allowed origins
(:mod:`chatlab.origins`) and host names (:mod:`chatlab.hosts`), the browser
page (``web/``), and, when asked, the speed-ups of :mod:`chatlab.fast`.
With ``redis=URL`` it is one node of a chat that several servers share
(:mod:`chatlab.cluster`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import socketio
from aiohttp import web

from . import hardening, outbox
from .admin_ui import AdminUI
from .chat import ChatNamespace
from .connections import ConnectionGuard, ConnectionLimits
from .delivery import Delivery
from .fast import FastPaths
from .host import RunningServer, running_servers, serve as serve_sio
from .hosts import (
    TRUSTED_PROXIES, AllowedHosts, TrustedProxies, default_allowed_hosts, refuse_foreign_hosts)
from .origins import origin_policy
from .pages import add_folder
from .store import DatabaseInUseError, MessageStore
from .validation import Limits

__all__ = ["ChatServer", "WEB_DIR", "CLIENT_FILE", "CLIENT_PATH"]

WEB_DIR = Path(__file__).parent / "web"
# The Socket.IO browser client, pinned in web/vendor/package.json and
# installed there by the set-up (``npm ci``; see the Makefile), served at
# CLIENT_PATH so that the page works without the internet. Without it that
# path answers 404, and the page loads the same file from the CDN instead.
CLIENT_FILE = WEB_DIR / "vendor" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
CLIENT_PATH = "/static/vendor/socket.io.min.js"


class ChatServer:
    """The chat, as one object that runs in a kernel or standalone.

    :param cors_origins: origins allowed besides the page this server serves
        and pages on localhost / 127.0.0.1 (``"*"`` allows all).
    :param allowed_hosts: host names (or IP addresses) the server answers to
        besides its own (localhost, loopback addresses, the address it
        listens on and the one a connection arrived on); a request to any
        other is refused (403), which keeps out pages that point a name of
        their own at this machine (DNS rebinding). ``["*"]`` answers every
        host. The default (None) is ``["*"]`` on a JupyterHub, where the
        browser reaches the server through the hub's proxy under the hub's
        name, and none elsewhere. See :mod:`chatlab.hosts`.
    :param trusted_proxies: IP addresses or networks of proxies whose
        ``X-Forwarded-Host`` and ``X-Forwarded-For`` headers are believed
        (none by default: from anyone else they are ignored).
    :param limits: the longest name, message and room name accepted, how
        fast each connection may send events, and the largest packet.
    :param connections: how long a connection may take to send its request
        and how many the server holds at once (see :mod:`chatlab.connections`).
    :param token: when given, a client must connect with ``auth={"token":
        token}``; others are refused with a ``ConnectionRefusedError``.
    :param db: where messages are stored: a SQLite file path, or
        ``":memory:"`` (the default) for a history that ends with the server.
    :param history: how many recent messages a new client is sent.
    :param fast: the speed-ups of :mod:`chatlab.fast` to use: ``True`` for
        all of them (as ``chatlab serve`` does), a :class:`FastPaths` for
        some, ``False`` (the default) for none.
    :param redis: a Redis server, ``redis://HOST:PORT/DB``, to run this
        server as one node of a chat that every server given the same URL
        shares (:mod:`chatlab.cluster`): messages, offsets and users live
        there, and ``db`` is not used. Room and direct messages go through
        python-socketio's ``AsyncRedisManager`` (with ``fast``, one whose
        sends to this node's connections are the fast fan-out's; the users
        list speed-up, which knows one server only, is left out).
    :param pages: a folder of your own pages, served at ``/mine/`` beside
        the chat's page (see :mod:`chatlab.pages`).
    :param admin_ui: True to watch the chat in the Socket.IO Admin UI at
        ``/admin-ui/``, signing in as ``admin`` with a random password, or
        the password to use: ``chat.admin_ui.link(server)`` shows both. Off
        by default (see :mod:`chatlab.admin_ui`).
    :param server_options: passed on to ``socketio.AsyncServer`` (a
        ``max_http_buffer_size`` here overrides ``limits.http_buffer_size``).

    ``users`` maps each joined connection's id to its name, in join order.
    Names are unique (ignoring case) among connected users, so a name always
    means one person; a second user asking for a taken name is refused.
    """

    def __init__(
        self,
        *,
        cors_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        limits: Limits = Limits(),
        connections: ConnectionLimits = ConnectionLimits(),
        token: str | None = None,
        db: str | Path = ":memory:",
        history: int = 50,
        fast: FastPaths | bool = False,
        redis: str | None = None,
        pages: str | Path | None = None,
        admin_ui: bool | str = False,
        **server_options: Any,
    ) -> None:
        self.pages = pages
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("the token must be a non-empty string (or None for no token)")
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ValueError("history must be a whole number of messages, 0 or more")
        for option, value in (("allowed_hosts", allowed_hosts),
                              ("trusted_proxies", trusted_proxies)):
            if isinstance(value, str):
                raise TypeError(f"{option} takes a list, e.g. {option}=[{value!r}]")
        self.allowed_hosts = AllowedHosts(
            default_allowed_hosts() if allowed_hosts is None else allowed_hosts)
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.fast = FastPaths() if fast is True else fast or None
        self.limits = limits
        self.connections = ConnectionGuard(connections)
        self.cluster = None
        if redis is not None:
            from .cluster import Cluster  # only a cluster needs redis-py
            self.cluster = Cluster(redis, kept=limits.kept,
                                   fanout=bool(self.fast and self.fast.fanout))
            server_options.setdefault("client_manager", self.cluster.manager)
        self.store = self.cluster.store if self.cluster else MessageStore(db, kept=limits.kept)
        server_options.setdefault("max_http_buffer_size", limits.http_buffer_size)
        manager = self.fast.client_manager() if self.fast else None
        if manager is not None:
            server_options.setdefault("client_manager", manager)
        if self.fast:
            server_options.setdefault("serializer", self.fast.serializer())
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=origin_policy(cors_origins, self.trusted_proxies),
            **server_options)
        hardening.close_on_unreadable_packets(self.sio)
        # A client that does not read is sent away, not queued for without end.
        outbox.install(self.sio, limits.outgoing_buffer)
        self.delivery = Delivery(self.sio, self.store, history, limits,  # type: ignore[arg-type]
                                 shared=self.cluster is not None)
        if self.cluster is not None:
            from .cluster import ClusterNamespace
            self.namespace: ChatNamespace = ClusterNamespace(
                self.delivery, self.cluster.users, limits=limits, token=token)
        else:
            announcer = self.fast.users_announcer(self.sio, self.names) if self.fast else None
            self.namespace = ChatNamespace(
                self.delivery, limits=limits, token=token,
                announce_users=announcer.changed if announcer is not None else None)
        self.sio.register_namespace(self.namespace)
        # Last, so that it sees each message first: refusals over the rate
        # limit cost next to nothing, and a flood closes its connection.
        hardening.gate_events(self.sio, self.namespace)
        if isinstance(admin_ui, str):
            self.admin_ui: AdminUI | None = AdminUI(self.sio, password=admin_ui)
        else:
            self.admin_ui = AdminUI(self.sio) if admin_ui else None

    @property
    def users(self) -> dict[str, str]:
        """Each joined connection's id and its user name, in join order."""
        return self.namespace.users

    @property
    def token(self) -> str | None:
        return self.namespace.token

    @property
    def history(self) -> int:
        return self.delivery.history

    def names(self) -> list[str]:
        """The names of the users now connected, in the order they joined."""
        return self.namespace.names()

    def rooms_of(self, sid: str) -> list[str]:
        """The chat rooms a connection is in, sorted."""
        return self.namespace.rooms_of(sid)

    def make_app(self) -> web.Application:
        """An aiohttp app that serves the chat page at ``/`` (Socket.IO is
        attached to it by :func:`chatlab.host.serve`)."""
        app = web.Application(middlewares=[
            self.connections.middleware,  # every request, even one refused, has arrived
            # Before the body checks: a page on a foreign host name learns nothing.
            refuse_foreign_hosts(self.allowed_hosts, self.trusted_proxies),
            hardening.check_request_bodies(self.sio, timeout=self.connections.limits.body_timeout),
        ])
        app[TRUSTED_PROXIES] = self.trusted_proxies  # for chatlab.hosts.client_address

        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(WEB_DIR / "index.html")

        async def client(request: web.Request) -> web.FileResponse:
            if not CLIENT_FILE.is_file():  # looked up now: installed or not, no restart needed
                raise web.HTTPNotFound(text="the Socket.IO client is not installed here")
            return web.FileResponse(CLIENT_FILE)

        async def close_store(app: web.Application) -> None:
            await self.store.close()
            if self.cluster is not None:
                await self.cluster.stop()

        app.router.add_get("/", index)
        app.router.add_get(CLIENT_PATH, client)  # before the static files, which it shadows
        app.router.add_static("/static/", WEB_DIR)
        app.on_cleanup.append(close_store)  # lets go of a database file on stop()
        if self.pages is not None:
            add_folder(app, self.pages)
        if self.admin_ui is not None:
            self.admin_ui.attach(app)
        if self.fast:
            self.fast.apply(self.sio, app)
        return app

    async def serve(self, *, name: str = "chat", host: str = "127.0.0.1", port: int = 0,
                    quiet: bool = True) -> RunningServer:
        """Start the chat and its page on the running loop (see
        :func:`chatlab.host.serve`); the page is at the returned ``url``."""
        self.allowed_hosts.add_listening_address(host)
        try:
            try:
                await self.delivery.open()
            except DatabaseInUseError:
                old = running_servers().get(name)
                if old is None:
                    raise
                # A re-run cell: the chat this one replaces (which serve_sio
                # would stop next) lets go of the database file first.
                await old.stop()
                await self.delivery.open()
            if self.cluster is not None:
                await self.cluster.start(self)
            return await serve_sio(self.sio, name=name, host=host, port=port,
                                   app=self.make_app(), quiet=quiet, listener=self.connections)
        except BaseException as exc:
            # Not serving (a port taken, Redis not there): let go of the
            # database file, and stop the cluster's heartbeat and feed.
            await self.store.close()
            if self.cluster is not None:
                await self.cluster.stop()
                self.cluster.explain(exc)
            raise

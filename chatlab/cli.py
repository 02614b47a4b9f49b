"""The command line: ``python -m chatlab serve`` runs the chat on its own.

The same chat server the notebooks start in the kernel, outside Jupyter, so
a browser (or the model tutorial's page) can join it at a fixed address.
It runs until Ctrl-C or SIGTERM, then disconnects everyone and stops.
With ``--redis URL`` it is one node of a chat that every ``chatlab serve
--redis`` given the same URL shares (:mod:`chatlab.cluster`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
from typing import Any, Callable, Coroutine, Mapping, Sequence, TypeVar

from .chat_server import ChatServer
from .connections import ConnectionLimits, raise_open_file_limit
from .host import PortInUseError
from .hosts import AllowedHosts, TrustedProxies
from .store import DatabaseInUseError
from .validation import Limits

__all__ = ["main", "run_standalone"]

T = TypeVar("T")

# Where `chatlab serve` also looks for the token: unlike --token, not shown
# to every user of the machine in the process list.
TOKEN_VARIABLE = "CHATLAB_TOKEN"

EXIT_OK = 0
EXIT_CANNOT_START = 2  # also argparse's code for a bad command line
EXIT_INTERRUPTED = 130


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatlab", description="Learn Socket.IO in Jupyter: the chatlab tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the chat server and its page",
        description="Run the chat server and its browser page until Ctrl-C.")
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; "
             "0.0.0.0 listens on every network interface, and other machines "
             "then open the page at this machine's IP address, e.g. "
             "http://192.168.1.10:5000/; to use its name, add --allow-host NAME)")
    serve.add_argument(
        "--port", type=_port, default=5000,
        help="port to listen on (default: 5000; 0 picks a free one)")
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="also allow browser pages from ORIGIN, e.g. https://example.org "
             "(repeat for several; '*' allows every origin). The chat's own "
             "page and pages on localhost are always allowed.")
    serve.add_argument(
        "--allow-host", action="append", type=_checked(AllowedHosts), metavar="NAME",
        help="also answer requests addressed to the host NAME, e.g. the "
             "machine's name for a classroom (repeat for several; '*' answers "
             "every name). By default only localhost, the loopback addresses, "
             "the IP address a request arrived on and --host are answered (any "
             "name on a JupyterHub); others are refused, which keeps out web "
             "pages that point a name of their own at this machine.")
    serve.add_argument(
        "--trusted-proxy", action="append", default=[], type=_checked(TrustedProxies),
        metavar="ADDR",
        help="believe the X-Forwarded-Host and X-Forwarded-For headers of a "
             "reverse proxy that connects from ADDR, an IP address or network "
             "(repeat for several); from anyone else they are ignored")
    serve.add_argument(
        "--token", metavar="TOKEN", type=_token,
        help="let in only clients that connect with this shared token "
             "(auth={'token': TOKEN}); the page asks for it. Every user of this "
             "machine can read it in the process list: prefer --token-file or "
             f"the {TOKEN_VARIABLE} environment variable")
    serve.add_argument(
        "--token-file", metavar="PATH",
        help="the same, with the token read from the first line of this file")
    serve.add_argument(
        "--rate-limit", metavar="N", type=_count(float), default=Limits.events_per_second,
        help=f"events a second each connection may send on average "
             f"(default: {Limits.events_per_second:g}; 0 for no limit)")
    serve.add_argument(
        "--burst", metavar="N", type=_count(int, least=1), default=Limits.burst,
        help=f"events a connection may send at once (default: {Limits.burst})")
    serve.add_argument(
        "--db", metavar="PATH", default=":memory:",
        help="keep the messages in this SQLite file, so the history survives a "
             "restart (default: in memory, gone when the server stops)")
    serve.add_argument(
        "--redis", metavar="URL", type=_redis_url,
        help="run as one node of a chat shared by every server given the same "
             "Redis, e.g. redis://127.0.0.1:6379/0: messages, offsets and users "
             "live there (--db is not used), and room and direct messages pass "
             "through it (default: this server alone)")
    serve.add_argument(
        "--max-connections", metavar="N", type=_count(int, least=1),
        help="hold at most N connections at once, and answer more with 503 "
             "(default: the open-file limit, raised to its hard limit at start, "
             "less 192 kept for the rest)")
    serve.add_argument(
        "--request-timeout", metavar="SECONDS", type=_count(float, least=0.001),
        default=ConnectionLimits.head_timeout,
        help=f"close a connection that takes longer than this to send a request's "
             f"head, or its body, or that sits idle this long between requests; "
             f"requests under way (a long poll, a websocket) are not affected "
             f"(default: {ConnectionLimits.head_timeout:g})")
    serve.add_argument(
        "--plain", action="store_true",
        help="run without the speed-ups of chatlab.fast (the chat as the lessons "
             "serve it: python-socketio's own broadcasts and writes)")
    return parser


def _count(kind: type, least: float = 0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= least:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is not a number of at least {least:g}")
        return value

    return parse


def _checked(kind: Callable[[list[str]], object]) -> Callable[[str], str]:
    """An argparse type that lets through a value ``kind([value])`` accepts."""
    def parse(text: str) -> str:
        try:
            kind([text])
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return parse


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Redis URL: give redis://HOST:PORT/DB")
    return text


def _token(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("the token must not be empty")
    return text


def _chosen_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The token given with --token, --token-file or the environment
    variable, if any; ValueError with a sentence when it cannot be used."""
    given = [("--token", args.token)] if args.token is not None else []
    if args.token_file is not None:
        given.append(("--token-file", _read_token_file(args.token_file)))
    if TOKEN_VARIABLE in environ:
        if not environ[TOKEN_VARIABLE]:
            raise ValueError(f"{TOKEN_VARIABLE} is set but empty: give it the token, "
                             f"or unset it to run without one")
        given.append((TOKEN_VARIABLE, environ[TOKEN_VARIABLE]))
    if len(given) > 1:
        raise ValueError(f"give the token one way only, not with both {given[0][0]} and "
                         f"{given[1][0]}")
    return given[0][1] if given else None


def _read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(64 * 1024 + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the token file {path!r} is not UTF-8 text") from None
    if len(text) > 64 * 1024:
        raise ValueError(f"the token file {path!r} is over 64 KiB: is it the right file?")
    lines = text.splitlines()
    token = lines[0] if lines else ""
    if not token:
        raise ValueError(f"the token file {path!r} is empty: put the token on its first line")
    if any(line.strip() for line in lines[1:]):
        raise ValueError(f"the token file {path!r} has more than one line: put the token "
                         f"alone on its first line")
    return token


async def _serve(
    host: str, port: int, origins: list[str], token: str | None, db: str, limits: Limits,
    fast: bool = True, hosts: list[str] | None = None, proxies: Sequence[str] = (),
    connections: ConnectionLimits = ConnectionLimits(), redis: str | None = None,
) -> int:
    if redis is not None and db != ":memory:":
        print("chatlab: give --db or --redis, not both: with --redis the messages "
              "are kept in Redis", file=sys.stderr)
        return EXIT_CANNOT_START
    chat = ChatServer(cors_origins=origins, token=token, db=db, limits=limits, fast=fast,
                      allowed_hosts=hosts, trusted_proxies=proxies, connections=connections,
                      redis=redis)
    try:
        # Opened first, so a bad path is a clear error before anyone joins.
        await chat.store.chat_id()
    except DatabaseInUseError as exc:  # another `chatlab serve --db` on the same file
        print(f"chatlab: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except sqlite3.Error as exc:
        print(f"chatlab: cannot use {db!r} as the message database: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except Exception as exc:  # redis-py's errors (redis is imported only with --redis)
        if chat.cluster is None:
            raise
        print(f"chatlab: cannot use Redis at {redis}: {exc}", file=sys.stderr)
        await chat.cluster.stop()
        return EXIT_CANNOT_START
    try:
        server = await chat.serve(host=host, port=port, name="standalone")
    except PortInUseError as exc:
        print(f"chatlab: {exc.strerror}", file=sys.stderr)
        return EXIT_CANNOT_START
    except OSError as exc:  # e.g. an address this machine does not have
        print(f"chatlab: cannot listen on {host} port {port}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_CANNOT_START

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    try:
        # Printed only once the signal handlers are in place, so whoever
        # reads this line may stop the server straight away.
        print(f"chatlab chat server on {server.url}/ (Ctrl-C to stop)", flush=True)
        await stopping.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await server.stop()
    return EXIT_OK


def run_standalone(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (``pip install
    chatlab[fast]``), else on asyncio's own loop. In the benchmark uvloop
    took about a third off the server's CPU per delivery. Only standalone:
    a notebook's loop is the kernel's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chatlab`` command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        token = _chosen_token(args, os.environ)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2, with the usage
    try:
        limits = Limits(events_per_second=args.rate_limit, burst=args.burst)
        connections = ConnectionLimits(head_timeout=args.request_timeout,
                                       body_timeout=args.request_timeout,
                                       max_connections=args.max_connections)
        # Each connection holds a file descriptor: take all the system allows.
        raise_open_file_limit()
        return run_standalone(_serve(args.host, args.port, args.cors_origin, token,
                                     args.db, limits, fast=not args.plain,
                                     hosts=args.allow_host, proxies=args.trusted_proxy,
                                     connections=connections, redis=args.redis))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        return EXIT_INTERRUPTED

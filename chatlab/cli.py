"""The command line: ``python -m chatlab serve`` runs the chat on its own.

The same chat server the notebooks start in the kernel, outside Jupyter, so
a browser (or the model tutorial's page) can join it at a fixed address.
It runs until Ctrl-C or SIGTERM, then disconnects everyone and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
from typing import Any, Callable, Coroutine, Sequence, TypeVar

from .chat_server import ChatServer
from .host import PortInUseError
from .validation import Limits

__all__ = ["main", "run_standalone"]

T = TypeVar("T")

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
             "0.0.0.0 listens on every network interface)")
    serve.add_argument(
        "--port", type=_port, default=5000,
        help="port to listen on (default: 5000; 0 picks a free one)")
    serve.add_argument(
        "--cors-origin", action="append", default=[], metavar="ORIGIN",
        help="also allow browser pages from ORIGIN, e.g. https://example.org "
             "(repeat for several; '*' allows every origin). The chat's own "
             "page and pages on localhost are always allowed.")
    serve.add_argument(
        "--token", metavar="TOKEN", type=_token,
        help="let in only clients that connect with this shared token "
             "(auth={'token': TOKEN}); the page asks for it")
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


def _token(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("the token must not be empty")
    return text


async def _serve(
    host: str, port: int, origins: list[str], token: str | None, db: str, limits: Limits,
    fast: bool = True,
) -> int:
    chat = ChatServer(cors_origins=origins, token=token, db=db, limits=limits, fast=fast)
    try:
        # Opened first, so a bad path is a clear error before anyone joins.
        await chat.store.chat_id()
    except sqlite3.Error as exc:
        print(f"chatlab: cannot use {db!r} as the message database: {exc}", file=sys.stderr)
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
    args = _parser().parse_args(argv)
    try:
        limits = Limits(events_per_second=args.rate_limit, burst=args.burst)
        return run_standalone(_serve(args.host, args.port, args.cors_origin, args.token,
                                     args.db, limits, fast=not args.plain))
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        return EXIT_INTERRUPTED

"""chatlab's chat server on its own, for the benchmark, with its rate limit set.

    python bench/chatlab_server.py --port 0 [--events-per-second N --burst N]
                                   [--profile FILE] [--log-level LEVEL]
                                   [--socketio-manager] [--websocket-compression]
                                   [--engineio-writer] [--engineio-reader]
                                   [--socketio-packets]
                                   [--users-each-time]
                                   [--asyncio-loop] [--redis URL | --db PATH]

The same as ``python -m chatlab serve --port 0 --rate-limit 0`` (same
``ChatServer`` with every fast path of ``chatlab.fast``, same ready line,
uvloop when installed, stops on SIGTERM/SIGINT), except that the rate limit
can be set to any value. By
default it never applies: the Node.js reference server has none, and the
benchmark's senders send as fast as their in-flight window allows.

Each of ``--socketio-manager``, ``--websocket-compression``, ``--log-level
INFO``, ``--engineio-writer``, ``--engineio-reader``,
``--socketio-packets`` and ``--users-each-time`` switches one of
chatlab's optimisations off (see docs/benchmarks.md, "Each change alone"),
and ``--plain`` all of the fast paths (``chatlab serve --plain``);
``--asyncio-loop`` runs on asyncio's own loop instead of uvloop.

``--db PATH`` keeps the messages in that SQLite file, as ``chatlab serve
--db PATH`` does (``bench/run.py``'s ``echo-1-db`` and ``echo-10-db`` give
each server a fresh one).

``--redis URL`` runs one node of a chat shared through that Redis, as
``chatlab serve --redis URL --rate-limit 0`` does (``bench/run.py``'s
cluster scenarios start two).

``--profile FILE`` runs the server under cProfile and writes the statistics
to FILE when it stops (SIGTERM or Ctrl-C; ``bench/run.py`` kills its servers
outright, so profile a server started by hand, e.g.
``python -m pstats FILE`` then ``sort tottime`` and ``stats 30``).

``--log-level LEVEL`` (for diagnosis only) sets the level of the loggers in
which the running server keeps python-socketio's and engineio's log lines
(WARNING unless set).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import signal

from chatlab import ChatServer, FastPaths, Limits
from chatlab.cli import run_standalone

# High enough never to refuse a benchmark sender (TokenBucket needs rate > 0).
UNLIMITED = 1_000_000_000


async def serve(port: int, events_per_second: float, burst: int,
                log_level: str | None = None, *, compression: bool = False,
                socketio_manager: bool = False, engineio_writer: bool = False,
                engineio_reader: bool = False,
                socketio_packets: bool = False, users_each_time: bool = False, plain: bool = False,
                redis: str | None = None, db: str = ":memory:") -> None:
    fast = False if plain else FastPaths(
        fanout=not socketio_manager, direct_writes=not engineio_writer,
        websocket_compression=compression, users_interval=0 if users_each_time else 0.05,
        # (named only when off, so that this runs with a checkout from before them)
        **({"inline_reads": False} if engineio_reader else {}),
        **({"packets": False} if socketio_packets else {}))
    chat = ChatServer(limits=Limits(events_per_second=events_per_second, burst=burst), fast=fast,
                      redis=redis, db=db)
    await chat.store.chat_id()  # opened first, as `chatlab serve` does
    server = await chat.serve(host="127.0.0.1", port=port, name="standalone")
    if log_level is not None:
        for logger in {server.sio.logger, server.sio.eio.logger}:
            logger.setLevel(log_level)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        print(f"chatlab chat server on {server.url}/ (Ctrl-C to stop)", flush=True)
        await stopping.wait()
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--events-per-second", type=float, default=UNLIMITED)
    parser.add_argument("--burst", type=int, default=UNLIMITED)
    parser.add_argument("--websocket-compression", action="store_true",
                        help="accept permessage-deflate (as chatlab did before it turned it off)")
    parser.add_argument("--socketio-manager", action="store_true",
                        help="python-socketio's own AsyncManager instead of chatlab's FanoutManager")
    parser.add_argument("--engineio-writer", action="store_true",
                        help="every packet through engineio's queue and writer task "
                             "(no chatlab.fast.direct_writes)")
    parser.add_argument("--engineio-reader", action="store_true",
                        help="every websocket message through engineio's reading loop "
                             "(no chatlab.fast.inline_reads)")
    parser.add_argument("--socketio-packets", action="store_true",
                        help="python-socketio's own packet class (no chatlab.fast.packets)")
    parser.add_argument("--users-each-time", action="store_true",
                        help="every users list to everyone at once, however many users "
                             "(FastPaths(users_interval=0))")
    parser.add_argument("--plain", action="store_true",
                        help="none of chatlab.fast's speed-ups (chatlab serve --plain)")
    parser.add_argument("--asyncio-loop", action="store_true",
                        help="asyncio's own event loop, not uvloop (as chatlab serve uses)")
    parser.add_argument("--redis", metavar="URL",
                        help="one node of a chat shared through this Redis "
                             "(redis://HOST:PORT/DB), as chatlab serve --redis runs it")
    parser.add_argument("--db", metavar="PATH", default=":memory:",
                        help="keep the messages in this SQLite file (chatlab serve --db)")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile statistics here")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="the server's log level (diagnosis only; see above)")
    args = parser.parse_args()
    running = serve(args.port, args.events_per_second, args.burst, args.log_level,
                    compression=args.websocket_compression,
                    socketio_manager=args.socketio_manager,
                    engineio_writer=args.engineio_writer,
                    engineio_reader=args.engineio_reader,
                    socketio_packets=args.socketio_packets,
                    users_each_time=args.users_each_time, plain=args.plain,
                    redis=args.redis, db=args.db)
    run = asyncio.run if args.asyncio_loop else run_standalone
    if args.profile is None:
        run(running)
        return
    profile = cProfile.Profile()
    try:
        profile.runcall(run, running)
    finally:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()

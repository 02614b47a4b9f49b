"""Hostile clients: what one bad client does to everyone else in the chat.

    .venv/bin/python bench/hostile.py             # the four scenarios, both servers (about 3 minutes)
    .venv/bin/python bench/hostile.py --quick     # a smoke run: short and small (under a minute)
    .venv/bin/python bench/run.py --hostile       # the same, from the benchmark's one command

Each scenario runs against chatlab's real command, ``python -m chatlab
serve --port 0`` (its default limits: 20 events a second per connection,
bursts of 40), and against the Node.js reference, ``tests/js/chat-server.mjs``
in its delivery mode (it stores every public message in memory and replays
from ``auth.serverOffset``, as chatlab does; it has no limits at all). Each
gets a fresh server per scenario, one after the other. The server's CPU time
and resident memory (``/proc/PID/stat``, ``VmRSS``) are sampled every 0.2 s
of the measured phase.

flood-reading, flood-nonreading
          A victim sends one message every 0.1 s for 15 s and times each
          from ``emit`` to its acknowledgement (sent on schedule, not after
          the previous answer, so a stall shows in every message it holds
          up), while one client floods ``message`` events as fast as TCP
          takes them: a flooder that reads (and discards) all the server
          sends it, then one that never reads its socket (a 4 KiB receive
          buffer). Both answer pings blindly (``3`` every second) and, when
          the server disconnects them, connect again under a new name and
          keep flooding; how often that happened is reported. A flooder
          learns of its disconnection only when its socket fails.
nonreaders
          10 clients connect and join, then never read again (4 KiB receive
          buffers, blind pongs every second), while 5 others chat for 30 s,
          each sending a 2,000-character message (the longest allowed) 20
          times a second (the rate limit): the most five well-behaved
          clients may send. The server's memory growth from just before
          the chatting starts, and the chatters' round trip.
replay    The chat is filled with 20,000 messages of 100 characters (on
          chatlab: through a server without a rate limit, into a database
          file, which a server with the default limits then serves). Then
          five clients connect at once with ``auth={chat, serverOffset: 0}``
          and read their replay; as soon as each has all of it (every
          message up to the ``last`` of its ``history``, or none came for
          10 s), it disconnects and replays again from 0. A victim times its
          messages as above for the 15 s of these replays.

Clients are Python processes of their own (one per role: victim, flooder,
non-readers, chatters, replayers), started from this file
(``hostile.py role NAME ...``): the well-behaved ones on aiohttp's websocket
client, the hostile ones on bare sockets with frames written by hand.

``--chatlab-tree DIR`` runs the chatlab server from another checkout (its
``chatlab`` package first on ``PYTHONPATH``, and DIR as working directory),
with this venv's Python: how the "before" figures of docs/benchmarks.md
were taken.

This is a measurement, not a test: it exits 0 whether or not the targets
are met (1 only if no scenario could run at all).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import math
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NODE_SERVER = ROOT / "tests" / "js" / "chat-server.mjs"
SERVERS = ("chatlab", "node")
WS_PATH = "/socket.io/?EIO=4&transport=websocket"
STEP_TIMEOUT = 20.0  # seconds for any one wait: a connection, a join, a result


# =================================================================== clients
#
# What runs in the client processes. Nothing here imports chatlab: the same
# clients measure any server that speaks the chat protocol.


class JoinFailed(Exception):
    """The server refused the connection or the name, or closed first."""


def _socketio_auth(auth: dict[str, Any] | None) -> str:
    return "40" + (json.dumps(auth, separators=(",", ":")) if auth else "")


# ------------------------------------------------- well-behaved: aiohttp


class Connection:
    """A Socket.IO client on aiohttp's websocket client that reads every
    frame and parses only what it needs: pings (answered), its connect
    answer, ``history``, ``private``, ``error``, acknowledgements, and, for
    ``on_message``, the raw ``message`` frames.

    :meth:`send` sends a ``message`` with an acknowledgement id and times
    it: :attr:`latencies` (seconds) gets one entry per answer.
    """

    def __init__(self, url: str, *, auth: dict[str, Any] | None = None,
                 on_message: Callable[[str], None] | None = None,
                 on_answer: Callable[[], None] | None = None) -> None:
        self.url = url.replace("http", "ws", 1) + WS_PATH
        self.auth = auth
        self.on_message = on_message
        self.on_answer = on_answer
        self.history: dict[str, Any] | None = None
        self.had_history = asyncio.Event()
        self.closed = asyncio.Event()
        self.latencies: list[float] = []
        self.refused = 0  # acknowledgements that were refusals
        self.errors = 0  # `error` events
        self._sent: dict[int, float] = {}
        self._next_id = 0
        loop = asyncio.get_running_loop()
        self._connected: asyncio.Future[None] = loop.create_future()
        self._welcomed: asyncio.Future[None] = loop.create_future()

    async def open(self, session: Any, name: str | None) -> None:
        """Connect, and join as ``name`` unless it is None."""
        self.ws = await session.ws_connect(self.url, autoping=True, compress=0,
                                           max_msg_size=0, timeout=STEP_TIMEOUT)
        self._reader = asyncio.create_task(self._read())
        await self.ws.send_str(_socketio_auth(self.auth))
        await asyncio.wait_for(asyncio.shield(self._connected), STEP_TIMEOUT)
        if name is not None:
            await self.ws.send_str("42" + json.dumps(["adduser", name], separators=(",", ":")))
            await asyncio.wait_for(asyncio.shield(self._welcomed), STEP_TIMEOUT)

    @property
    def unanswered(self) -> int:
        return len(self._sent)

    async def send(self, text: str) -> None:
        ack = self._next_id
        self._next_id += 1
        frame = f"42{ack}" + json.dumps(["message", text], separators=(",", ":"))
        self._sent[ack] = time.perf_counter()
        await self.ws.send_str(frame)

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        await self._reader

    async def _read(self) -> None:
        import aiohttp

        try:
            async for msg in self.ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._frame(msg.data)
        except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self.closed.set()
            for future in (self._connected, self._welcomed):
                if not future.done():
                    future.set_exception(JoinFailed("the server closed the connection"))
                    future.exception()  # retrieved: nobody may be waiting

    def _frame(self, data: str) -> None:
        if data.startswith("42"):
            if data.startswith('42["message"'):
                if self.on_message is not None:
                    self.on_message(data)
            elif data.startswith('42["history"'):
                self.history = json.loads(data[2:])[1]
                self.had_history.set()
            elif data.startswith('42["private"'):
                if not self._welcomed.done():
                    self._welcomed.set_result(None)
            elif data.startswith('42["error"'):
                self.errors += 1
                if not self._welcomed.done():
                    self._welcomed.set_exception(JoinFailed(f"refused: {data[2:300]}"))
        elif data.startswith("43"):
            end = 2
            while end < len(data) and data[end].isdigit():
                end += 1
            sent = self._sent.pop(int(data[2:end]), None)
            if sent is not None:
                self.latencies.append(time.perf_counter() - sent)
                if '"reason"' in data:
                    self.refused += 1
                if self.on_answer is not None:
                    self.on_answer()
        elif data == "2":
            asyncio.ensure_future(self.ws.send_str("3"))
        elif data.startswith("40"):
            if not self._connected.done():
                self._connected.set_result(None)
        elif data.startswith("44"):
            if not self._connected.done():
                self._connected.set_exception(JoinFailed(f"connection refused: {data[2:300]}"))


# ------------------------------------------------------ hostile: bare sockets


def ws_frame(text: str | bytes) -> bytes:
    """A client's text frame. The mask key is 0 (allowed, and the payload
    then goes unchanged), so a flood can be built once and sent again."""
    payload = text.encode() if isinstance(text, str) else text
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


PONG = ws_frame("3")


class RawClient:
    """Socket.IO over a bare TCP socket: the websocket handshake and frames
    by hand, so the client decides when (and whether) it reads.

    :meth:`connect` reads until it has joined (or, with no name, until it
    is connected); after that, nothing reads the socket unless the caller
    does.
    """

    def __init__(self, url: str, *, rcvbuf: int | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rcvbuf = rcvbuf
        self.buffer = b""
        self.sock: socket.socket | None = None

    def connect(self, name: str | None, auth: dict[str, Any] | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock = sock
        try:
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.settimeout(STEP_TIMEOUT)
            sock.connect((self.host, self.port))
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET {WS_PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            while b"\r\n\r\n" not in self.buffer:
                self._fill()
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                raise JoinFailed(f"no websocket: {head[:200]!r}")
            self._until(lambda f: f.startswith("0{"))
            sock.sendall(ws_frame(_socketio_auth(auth)))
            frame = self._until(lambda f: f.startswith(("40", "44")))
            if frame.startswith("44"):
                raise JoinFailed(f"connection refused: {frame[2:300]}")
            if name is not None:
                sock.sendall(ws_frame("42" + json.dumps(["adduser", name])))
                frame = self._until(lambda f: f.startswith(('42["private"', '42["error"')))
                if frame.startswith('42["error"'):
                    raise JoinFailed(f"refused: {frame[2:300]}")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise JoinFailed("the server closed the connection")
        self.buffer += data

    def _until(self, wanted: Callable[[str], bool]) -> str:
        while True:
            frame = self._frame()
            if frame == "2":
                assert self.sock is not None
                self.sock.sendall(PONG)
            elif frame is not None and wanted(frame):
                return frame

    def _frame(self) -> str | None:
        while len(self.buffer) < 2:
            self._fill()
        opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        start = 2
        if size == 126:
            start = 4
        elif size == 127:
            start = 10
        while len(self.buffer) < start:
            self._fill()
        if size >= 126:
            size = int.from_bytes(self.buffer[2:start], "big")
        while len(self.buffer) < start + size:
            self._fill()
        payload, self.buffer = self.buffer[start:start + size], self.buffer[start + size:]
        if opcode == 0x8:
            raise JoinFailed("the server closed the websocket")
        return payload.decode(errors="replace") if opcode == 0x1 else None


# --------------------------------------------------------------- the roles


def _say(**line: Any) -> None:
    print(json.dumps(line), flush=True)


def _stdin_watch(on_line: Callable[[str | None], None]) -> None:
    """Give each line of stdin, then None at its end, to ``on_line`` (from
    a thread): the orchestrator's "go", and its way of saying stop."""
    def watch() -> None:
        for line in sys.stdin:
            on_line(line.strip())
        on_line(None)
    threading.Thread(target=watch, daemon=True).start()


async def _commands() -> asyncio.Queue[str | None]:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_watch(lambda line: loop.call_soon_threadsafe(lines.put_nowait, line))
    return lines


async def _go(lines: asyncio.Queue[str | None]) -> None:
    while (line := await lines.get()) != "go":
        if line is None:
            raise SystemExit(0)


def _text(size: int, label: str) -> str:
    # A message of exactly ``size`` characters (at least the label).
    filler = " the quick brown fox jumps over the lazy dog" * (size // 44 + 1)
    return (label + filler)[:max(size, len(label))]


async def role_chatters(url: str, n: int, rate: float, size: int, duration: float,
                        grace: float, prefix: str) -> dict[str, Any]:
    """n clients join, say ready, and on "go" each sends a message of
    ``size`` characters ``rate`` times a second (on a fixed schedule) for
    ``duration`` s; then up to ``grace`` s for the last answers."""
    import aiohttp

    lines = await _commands()
    async with aiohttp.ClientSession() as session:
        clients = [Connection(url) for _ in range(n)]
        for i, client in enumerate(clients):
            await client.open(session, f"{prefix}{i}" if n > 1 else prefix)
        _say(ready=True)
        await _go(lines)
        start = time.perf_counter()
        sent = [0] * n

        async def chat(i: int, client: Connection) -> None:
            # Spread over the interval, so that the n clients do not all send at once.
            due = start + (i / n) / rate
            while due < start + duration and not client.closed.is_set():
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await client.send(_text(size, f"{prefix}{i} #{sent[i]}"))
                sent[i] += 1
                due += 1 / rate

        await asyncio.gather(*(chat(i, c) for i, c in enumerate(clients)))
        until = time.perf_counter() + grace
        while any(c.unanswered and not c.closed.is_set() for c in clients) \
                and time.perf_counter() < until:
            await asyncio.sleep(0.05)
        result = {
            "sent": sum(sent),
            "latencies_ms": [round(x * 1000, 3) for c in clients for x in c.latencies],
            "unanswered": sum(c.unanswered for c in clients),
            "refused": sum(c.refused for c in clients),
            "disconnected": sum(c.closed.is_set() for c in clients),
            "seconds": time.perf_counter() - start,
        }
        for client in clients:
            await client.close()
    return result


async def role_fill(url: str, count: int, size: int) -> dict[str, Any]:
    """One client stores ``count`` messages (100 waiting for their
    answer at a time); says the chat id and the newest offset."""
    import aiohttp

    window = asyncio.Semaphore(100)
    done = asyncio.Event()
    answered = 0

    def answered_one() -> None:
        nonlocal answered
        answered += 1
        window.release()
        if answered == count:
            done.set()

    async with aiohttp.ClientSession() as session:
        client = Connection(url, on_answer=answered_one)
        await client.open(session, "filler")
        start = time.perf_counter()
        for i in range(count):
            await window.acquire()
            if client.closed.is_set():
                raise JoinFailed("the server closed the filler's connection")
            await client.send(_text(size, f"fill {i}"))
        await asyncio.wait_for(done.wait(), STEP_TIMEOUT * 3)
        seconds = time.perf_counter() - start
        await client.close()
        check = Connection(url)
        await check.open(session, None)
        await asyncio.wait_for(check.had_history.wait(), STEP_TIMEOUT)
        history = check.history or {}
        await check.close()
    return {"chat": history.get("chat"), "last": history.get("last"), "seconds": seconds,
            "refused": client.refused}


OFFSET = re.compile(r'"offset":\s*(\d+)')
# Seconds a replaying client waits for the next replayed message before it
# takes the replay as ended (a server may send fewer than it missed).
REPLAY_PATIENCE = 10.0


async def role_replayers(url: str, n: int, chat: str, read: bool) -> dict[str, Any]:
    """On "go", n clients connect with ``auth={chat, serverOffset: 0}``.
    Reading: each reads its replay until it has every message up to the
    ``last`` of its ``history`` (or none came for ``REPLAY_PATIENCE`` s),
    disconnects and replays again, until told to stop. Not reading: each
    connects once and never reads again."""
    import aiohttp

    lines = await _commands()
    stats = {"replays_started": 0, "replays_complete": 0, "messages": 0, "failed": 0,
             "first_replay_ms": None, "history_after": None, "history_last": None}
    stop = asyncio.Event()
    _say(ready=True)
    await _go(lines)
    start = time.perf_counter()

    async def replay(session: Any) -> None:
        while not stop.is_set():
            got = 0
            progress = asyncio.Event()

            def on_message(frame: str) -> None:
                # A replayed message: at most the newest offset when it connected.
                nonlocal got
                match = OFFSET.findall(frame)
                if match and client.history and int(match[-1]) <= client.history["last"]:
                    got += 1
                    progress.set()

            client = Connection(url, auth={"chat": chat, "serverOffset": 0}, on_message=on_message)
            t0 = time.perf_counter()
            try:
                await client.open(session, None)
                await asyncio.wait_for(client.had_history.wait(), STEP_TIMEOUT)
            except (JoinFailed, OSError, asyncio.TimeoutError, aiohttp.ClientError):
                stats["failed"] += 1
                await asyncio.sleep(0.1)
                continue
            history = client.history or {}
            stats["replays_started"] += 1
            stats["history_after"], stats["history_last"] = history.get("after"), history.get("last")
            expected = history.get("last", 0) - history.get("after", 0)
            while got < expected and not stop.is_set() and not client.closed.is_set():
                progress.clear()
                try:
                    await asyncio.wait_for(progress.wait(), REPLAY_PATIENCE)
                except asyncio.TimeoutError:
                    break  # none came for a long while: the server sends no more
            if got >= expected:
                stats["replays_complete"] += 1
                if stats["first_replay_ms"] is None:
                    stats["first_replay_ms"] = (time.perf_counter() - t0) * 1000
            stats["messages"] += got
            await client.close()

    async def hold() -> None:
        client = RawClient(url, rcvbuf=4096)
        try:
            await asyncio.to_thread(client.connect, None, {"chat": chat, "serverOffset": 0})
        except (JoinFailed, OSError):
            stats["failed"] += 1
            return
        stats["replays_started"] += 1
        await stop.wait()
        client.close()

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(replay(session) if read else hold()) for _ in range(n)]
        while await lines.get() is not None:
            pass
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), STEP_TIMEOUT)
    stats["seconds"] = time.perf_counter() - start
    return stats


def role_flooder(url: str, read: bool, event: str) -> dict[str, Any]:
    """Join, say flooding, and send ``event`` frames as fast as TCP takes
    them until stdin ends; reading (and discarding) all the server sends,
    or never reading. Blind pongs every second. When the server
    disconnects it, connect again under a new name and keep flooding."""
    stop = threading.Event()
    _stdin_watch(lambda line: stop.set() if line is None else None)
    frame = ws_frame("42" + json.dumps([event, "flood"], separators=(",", ":")))
    burst = memoryview(frame * max(1, 65536 // len(frame)))
    with_pong = memoryview(PONG + bytes(burst))
    stats = {"connections": 0, "disconnected": 0, "failed_joins": 0, "bytes": 0,
             "frame_bytes": len(frame)}
    first = True
    start = time.perf_counter()
    while not stop.is_set():
        client = RawClient(url, rcvbuf=None if read else 4096)
        try:
            client.connect(f"flood{stats['connections']}")
        except (JoinFailed, OSError) as exc:
            stats["failed_joins"] += 1
            stats.setdefault("first_failure", str(exc)[:200])
            stop.wait(0.1)
            continue
        stats["connections"] += 1
        if first:
            _say(flooding=True)
            first = False
        sock = client.sock
        assert sock is not None
        if read:
            def drain(sock: socket.socket = sock) -> None:
                try:
                    while sock.recv(1 << 20):
                        pass
                except OSError:
                    pass
            threading.Thread(target=drain, daemon=True).start()
        sock.settimeout(0.5)
        pending, pos, pong_at = burst, 0, time.monotonic() + 1
        try:
            while not stop.is_set():
                try:
                    sent = sock.send(pending[pos:])
                except socket.timeout:
                    continue  # the server is not reading: still connected
                pos += sent
                stats["bytes"] += sent
                if pos == len(pending):
                    pos = 0
                    # The pong goes between two whole frames.
                    pending = burst
                    if time.monotonic() >= pong_at:
                        pending, pong_at = with_pong, time.monotonic() + 1
        except OSError:
            stats["disconnected"] += 1
        client.close()
    stats["seconds"] = time.perf_counter() - start
    stats["frames"] = stats["bytes"] // len(frame)
    return stats


def role_nonreaders(url: str, n: int) -> dict[str, Any]:
    """n clients join (reading until they have), say ready, then never
    read again; each sends a blind pong every second until stdin ends. A
    pong that cannot be written means the server dropped that client."""
    stop = threading.Event()
    _stdin_watch(lambda line: stop.set() if line is None else None)
    clients = []
    for i in range(n):
        client = RawClient(url, rcvbuf=4096)
        client.connect(f"quiet{i}")
        clients.append(client)
    _say(ready=True)
    alive = set(range(n))
    dropped_at: list[float] = []
    start = time.perf_counter()
    while not stop.wait(1.0):
        for i in sorted(alive):
            sock = clients[i].sock
            assert sock is not None
            try:
                sent = sock.send(PONG, socket.MSG_DONTWAIT)
                if sent < len(PONG):
                    sock.settimeout(STEP_TIMEOUT)
                    sock.sendall(PONG[sent:])
            except BlockingIOError:
                pass  # the server is not reading either: still connected
            except OSError:
                alive.discard(i)
                dropped_at.append(round(time.perf_counter() - start, 1))
    for client in clients:
        client.close()
    return {"clients": n, "dropped": n - len(alive), "dropped_after_s": dropped_at}


def run_role(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hostile.py role")
    parser.add_argument("name", choices=["chatters", "fill", "replayers", "flooder", "nonreaders"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--grace", type=float, default=10)
    parser.add_argument("--prefix", default="victim")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--chat", default="")
    parser.add_argument("--read", choices=["yes", "no"], default="yes")
    parser.add_argument("--event", default="message")
    args = parser.parse_args(argv)
    if urlsplit(args.url).hostname != "127.0.0.1":
        parser.error("only 127.0.0.1 is allowed")
    read = args.read == "yes"
    try:
        if args.name == "chatters":
            result = asyncio.run(role_chatters(args.url, args.n, args.rate, args.size,
                                               args.duration, args.grace, args.prefix))
        elif args.name == "fill":
            result = asyncio.run(role_fill(args.url, args.count, args.size))
        elif args.name == "replayers":
            result = asyncio.run(role_replayers(args.url, args.n, args.chat, read))
        elif args.name == "flooder":
            result = role_flooder(args.url, read, args.event)
        else:
            result = role_nonreaders(args.url, args.n)
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
        _say(error=f"{args.name}: {type(exc).__name__}: {exc}")
        return 1
    _say(result=result)
    return 0


# ============================================================== orchestrator


class Role:
    """A client process of this file, told "go" and stop over its stdin;
    it answers with JSON lines on stdout."""

    def __init__(self, name: str, url: str, *args: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "role", name, "--url", url, *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                pass
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.stderr) < 5000:
                self.stderr += line

    def expect(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.name}: no {key!r} in {timeout:g} s") from None
            if line is None:
                raise RuntimeError(f"{self.name} exited ({self.proc.wait()}): "
                                   f"{self.stderr.strip()[-1000:]}")
            if "error" in line:
                raise RuntimeError(line["error"])
            if key in line:
                return line[key]

    def tell(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = STEP_TIMEOUT) -> Any:
        """Stop it (stdin closed) and return its result."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        return self.expect("result", timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=10)


class Sampler:
    """The server's CPU time and resident memory, every 0.2 s from
    :meth:`start` to :meth:`stop` (from /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> tuple[float, float, int]:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        return time.monotonic(), cpu, rss

    def _run(self) -> None:
        while True:
            try:
                self.samples.append(self.read())
            except (OSError, ValueError, AttributeError):
                return  # the server has gone
            if self._stop.wait(0.2):
                return

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.samples.append(self.read())
        except (OSError, ValueError, AttributeError):
            pass
        if len(self.samples) < 2:
            return {}
        (t0, cpu0, rss0), (t1, cpu1, rss1) = self.samples[0], self.samples[-1]
        return {"cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_start_mb": rss0 / 1024,
                "rss_end_mb": rss1 / 1024,
                "rss_growth_mb": (rss1 - rss0) / 1024,
                "rss_peak_growth_mb": (max(s[2] for s in self.samples) - rss0) / 1024,
                "seconds": t1 - t0}


@dataclass
class Plan:
    """The sizes of one run (full or quick)."""

    victim_s: float = 15
    nonreaders_s: float = 30
    nonreaders: int = 10
    chatters: int = 5
    chatter_rate: float = 20  # chatlab's rate limit: the most they may send
    chatter_size: int = 2000
    stored: int = 20_000
    stored_size: int = 100
    replayers: int = 5
    replayers_read: bool = True

    @classmethod
    def quick(cls) -> "Plan":
        return cls(victim_s=3, nonreaders_s=5, stored=2_000)


@dataclass
class Servers:
    """How to start each server."""

    python: str
    node: str
    chatlab_tree: Path
    db_dir: Path
    made: list[Path] = field(default_factory=list)

    def start(self, kind: str, *, rate_limit: bool = True, db: Path | None = None) -> Any:
        from run import Server  # bench/ is on sys.path

        if kind == "node":
            # Its delivery mode: stored messages, history and replay.
            return Server("node", [self.node, str(NODE_SERVER), "0"])
        command = [self.python, "-m", "chatlab", "serve", "--port", "0"]
        if not rate_limit:
            command += ["--rate-limit", "0"]
        if db is not None:
            command += ["--db", str(db)]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(
            filter(None, [str(self.chatlab_tree), os.environ.get("PYTHONPATH")]))}
        return Server("chatlab", command, cwd=self.chatlab_tree, env=env)

    def new_db(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="chatlab-hostile-", dir=self.db_dir)) / "chat.db"
        self.made.append(path.parent)
        return path

    def cleanup(self) -> None:
        for directory in self.made:
            shutil.rmtree(directory, ignore_errors=True)


def _victim(url: str, plan: Plan) -> Role:
    return Role("chatters", url, "--n", "1", "--rate", "10", "--size", "40",
                "--duration", str(plan.victim_s), "--prefix", "victim")


def scenario_flood(servers: Servers, kind: str, plan: Plan, read: bool) -> dict[str, Any]:
    server = servers.start(kind)
    roles: list[Role] = []
    try:
        victim = _victim(server.url, plan)
        roles.append(victim)
        victim.expect("ready", STEP_TIMEOUT)
        flooder = Role("flooder", server.url, "--read", "yes" if read else "no")
        roles.append(flooder)
        flooder.expect("flooding", STEP_TIMEOUT)
        sampler = Sampler(server.pid).start()
        victim.tell("go")
        result = {"victim": victim.expect("result", plan.victim_s + 60)}
        result["server"] = sampler.stop()
        result["flooder"] = flooder.finish()
        return result
    finally:
        for role in roles:
            role.kill()
        server.stop()


def scenario_nonreaders(servers: Servers, kind: str, plan: Plan) -> dict[str, Any]:
    server = servers.start(kind)
    roles: list[Role] = []
    try:
        quiet = Role("nonreaders", server.url, "--n", str(plan.nonreaders))
        roles.append(quiet)
        quiet.expect("ready", STEP_TIMEOUT * 2)
        chatters = Role("chatters", server.url, "--n", str(plan.chatters),
                        "--rate", str(plan.chatter_rate), "--size", str(plan.chatter_size),
                        "--duration", str(plan.nonreaders_s), "--grace", "5", "--prefix", "chatter")
        roles.append(chatters)
        chatters.expect("ready", STEP_TIMEOUT * 2)
        sampler = Sampler(server.pid).start()
        chatters.tell("go")
        result = {"chatters": chatters.expect("result", plan.nonreaders_s + 60)}
        result["server"] = sampler.stop()
        result["nonreaders"] = quiet.finish()
        return result
    finally:
        for role in roles:
            role.kill()
        server.stop()


def scenario_replay(servers: Servers, kind: str, plan: Plan) -> dict[str, Any]:
    fill_args = ("--count", str(plan.stored), "--size", str(plan.stored_size))
    db = None
    t0 = time.monotonic()
    if kind == "chatlab":
        # Filled without a rate limit, then served as `chatlab serve --db` is.
        db = servers.new_db()
        filling = servers.start(kind, rate_limit=False, db=db)
        try:
            filler = Role("fill", filling.url, *fill_args)
            filled = filler.expect("result", STEP_TIMEOUT * 6)
        finally:
            filling.stop()
    server = servers.start(kind, db=db)
    roles: list[Role] = []
    try:
        if kind == "node":
            filler = Role("fill", server.url, *fill_args)
            filled = filler.expect("result", STEP_TIMEOUT * 6)
        fill_s = time.monotonic() - t0
        victim = _victim(server.url, plan)
        roles.append(victim)
        victim.expect("ready", STEP_TIMEOUT)
        replayers = Role("replayers", server.url, "--n", str(plan.replayers),
                         "--chat", filled["chat"], "--read", "yes" if plan.replayers_read else "no")
        roles.append(replayers)
        replayers.expect("ready", STEP_TIMEOUT)
        sampler = Sampler(server.pid).start()
        replayers.tell("go")
        victim.tell("go")
        result = {"victim": victim.expect("result", plan.victim_s + 60)}
        result["server"] = sampler.stop()
        result["replayers"] = replayers.finish(STEP_TIMEOUT * 2)
        result["stored"] = filled
        result["fill_s"] = fill_s
        return result
    finally:
        for role in roles:
            role.kill()
        server.stop()


# ------------------------------------------------------------ the figures


def percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def round_trip(result: dict[str, Any]) -> dict[str, Any]:
    """p50, p95 and max in ms; a message never answered counts as slower
    than any answered one (infinite)."""
    ordered = sorted(result["latencies_ms"]) + [math.inf] * result["unanswered"]
    return {"p50": percentile(ordered, 0.5), "p95": percentile(ordered, 0.95),
            "max": ordered[-1] if ordered else None}


@dataclass(frozen=True)
class Row:
    label: str
    get: Callable[[dict[str, Any]], float | None]
    fmt: str = "{:.1f}"
    target: str = ""
    met: Callable[[float], bool] | None = None


def _path(*keys: str) -> Callable[[dict[str, Any]], float | None]:
    def get(result: dict[str, Any]) -> float | None:
        value: Any = result
        for key in keys:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return float(value)
    return get


def _rt(who: str, q: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda r: round_trip(r[who])[q] if who in r else None


def _victim_rows(prefix: str) -> list[Row]:
    return [
        Row(f"{prefix}: victim round trip p50 ms", _rt("victim", "p50")),
        Row(f"{prefix}: victim round trip p95 ms", _rt("victim", "p95"), target="< 50 ms",
            met=lambda v: v < 50),
        Row(f"{prefix}: victim round trip max ms", _rt("victim", "max")),
        Row(f"{prefix}: victim's messages unanswered", _path("victim", "unanswered"), "{:.0f}"),
    ]


def _server_rows(prefix: str) -> list[Row]:
    return [
        Row(f"{prefix}: server CPU % (100 = a core)", _path("server", "cpu_percent"), "{:.0f}"),
        Row(f"{prefix}: server RSS growth MB", _path("server", "rss_growth_mb")),
    ]


def _flood_rows(prefix: str) -> list[Row]:
    return [
        *_victim_rows(prefix), *_server_rows(prefix),
        Row(f"{prefix}: flooder disconnected (times)", _path("flooder", "disconnected"), "{:.0f}"),
        Row(f"{prefix}: flooder's joins refused", _path("flooder", "failed_joins"), "{:.0f}"),
    ]


ROWS: dict[str, list[Row]] = {
    "flood-reading": _flood_rows("flood, flooder reads"),
    "flood-nonreading": _flood_rows("flood, flooder never reads"),
    "nonreaders": [
        Row("10 non-readers: server RSS growth MB", _path("server", "rss_growth_mb"),
            target="< 20 MB in 30 s", met=lambda v: v < 20),
        Row("10 non-readers: server RSS peak growth MB", _path("server", "rss_peak_growth_mb")),
        Row("10 non-readers: server CPU % (100 = a core)", _path("server", "cpu_percent"), "{:.0f}"),
        Row("10 non-readers: chatters' round trip p95 ms", _rt("chatters", "p95")),
        Row("10 non-readers: chatters' messages unanswered", _path("chatters", "unanswered"),
            "{:.0f}"),
        Row("10 non-readers: chatters' messages refused", _path("chatters", "refused"), "{:.0f}"),
        Row("10 non-readers: dropped by the server", _path("nonreaders", "dropped"), "{:.0f}"),
    ],
    "replay": [
        *_victim_rows("replays"),
        *_server_rows("replays"),
        Row("replays: replays started", _path("replayers", "replays_started"), "{:.0f}"),
        Row("replays: replays complete", _path("replayers", "replays_complete"), "{:.0f}"),
        Row("replays: messages replayed", _path("replayers", "messages"), "{:,.0f}"),
        Row("replays: first replay, s", lambda r: None if r.get("replayers", {}).get(
            "first_replay_ms") is None else r["replayers"]["first_replay_ms"] / 1000, "{:.1f}"),
    ],
}
SCENARIOS = tuple(ROWS)


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if len(ordered) % 2 else \
        (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2


def report(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    from run import table  # bench/ is on sys.path

    rows = []
    for scenario, figures in ROWS.items():
        if not any(kind_scenario == scenario for kind_scenario, _ in results):
            continue
        for row in figures:
            cells = []
            for kind in SERVERS:
                values = []
                for result in results.get((scenario, kind), []):
                    if "error" not in result:
                        value = row.get(result)
                        if value is not None:
                            values.append(value)
                cells.append(median(values))
            chat = cells[0]
            met = "" if row.met is None or chat is None else ("yes" if row.met(chat) else "no")
            rows.append([row.label, *(_cell(v, row.fmt) for v in cells), row.target, met])
    return table(rows, ["figure (median of rounds)", "chatlab", "node", "target (chatlab)", "met"])


def _cell(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "unanswered"
    return fmt.format(value)


def summary(scenario: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"][:300]
    parts = []
    for who in ("victim", "chatters"):
        if who in result:
            rt = round_trip(result[who])
            parts.append(f"{who} p50/p95/max " + "/".join(
                _cell(rt[q], "{:.1f}") for q in ("p50", "p95", "max")) + " ms")
    for who in ("victim", "chatters"):
        for what in ("refused", "disconnected"):
            if result.get(who, {}).get(what):
                parts.append(f"{who} {what}: {result[who][what]}")
    server = result.get("server", {})
    if server:
        parts.append(f"server CPU {server['cpu_percent']:.0f} %, RSS "
                     f"{server['rss_start_mb']:.0f} -> {server['rss_end_mb']:.0f} MB")
    if "flooder" in result:
        f = result["flooder"]
        parts.append(f"flooder disconnected {f['disconnected']}x"
                     + (f", {f['failed_joins']} joins refused" if f["failed_joins"] else ""))
    if "nonreaders" in result:
        parts.append(f"non-readers dropped: {result['nonreaders']['dropped']}")
    if "replayers" in result:
        r = result["replayers"]
        parts.append(f"replays {r['replays_complete']}/{r['replays_started']}, "
                     f"{r['messages']:,} messages (fill {result['fill_s']:.0f} s)")
    return "; ".join(parts)


# ----------------------------------------------------------------- the run


def run_scenarios(servers: Servers, plan: Plan, wanted: list[str], rounds: int,
                  log: Callable[[str], None] = print) -> dict[tuple[str, str], list[dict[str, Any]]]:
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_number in range(1, rounds + 1):
        for scenario in wanted:
            for kind in SERVERS:
                t0 = time.monotonic()
                load = _loadavg()
                try:
                    if scenario == "flood-reading":
                        result = scenario_flood(servers, kind, plan, read=True)
                    elif scenario == "flood-nonreading":
                        result = scenario_flood(servers, kind, plan, read=False)
                    elif scenario == "nonreaders":
                        result = scenario_nonreaders(servers, kind, plan)
                    else:
                        result = scenario_replay(servers, kind, plan)
                except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                result["loadavg"] = [load, _loadavg()]
                results.setdefault((scenario, kind), []).append(result)
                log(f"  round {round_number} {scenario:16} {kind:8} "
                    f"{time.monotonic() - t0:5.1f} s  {summary(scenario, result)} "
                    f"(load {load.split()[0]})")
    return results


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The hostile scenarios' own options (also bench/run.py's)."""
    parser.add_argument("--hostile-scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of: " + ", ".join(SCENARIOS))
    parser.add_argument("--chatlab-tree", type=Path, default=ROOT,
                        help="run `python -m chatlab serve` from this checkout (first on "
                             "PYTHONPATH, and as working directory), e.g. a git worktree of "
                             "an older commit (default: this one)")
    parser.add_argument("--replayers-read", choices=["yes", "no"], default="yes",
                        help="the replay scenario's five clients read their replays and "
                             "replay again (yes, the default), or connect once and never "
                             "read (no)")


def run_hostile(args: argparse.Namespace, node: str, rounds: int, quick: bool,
                log: Callable[[str], None] = print) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Run the scenarios named in ``args`` (see :func:`add_arguments`)."""
    wanted = args.hostile_scenarios.split(",")
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"hostile.py: unknown scenario(s): {', '.join(sorted(unknown))}")
    plan = Plan.quick() if quick else Plan()
    plan.replayers_read = args.replayers_read == "yes"
    shm = Path("/dev/shm")
    servers = Servers(python=sys.executable, node=node,
                      chatlab_tree=args.chatlab_tree.resolve(),
                      db_dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir()))
    if not (servers.chatlab_tree / "chatlab" / "__init__.py").is_file():
        raise SystemExit(f"hostile.py: no chatlab package in {servers.chatlab_tree}")
    try:
        return run_scenarios(servers, plan, wanted, rounds, log)
    finally:
        servers.cleanup()


def tree_commit(tree: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "chatlab"], cwd=tree,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return commit + (" + uncommitted changes to chatlab/" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["role"]:
        return run_role(argv[1:])
    parser = argparse.ArgumentParser(
        description="What one hostile client does to the others: chatlab and the Node.js "
                    "reference, side by side.")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short and small")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every raw result to this file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        print("hostile.py: Node.js (node and npm) is needed", file=sys.stderr)
        return 1
    from run import ensure_npm_packages  # bench/ is on sys.path
    ensure_npm_packages(npm)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    print(f"chatlab hostile clients, {started:%Y-%m-%d %H:%M} UTC, {args.rounds} round(s)"
          f"{' (quick)' if args.quick else ''}, load average {_loadavg()}, "
          f"{os.cpu_count()} CPUs")
    print(f"  chatlab server: python -m chatlab serve --port 0, from {args.chatlab_tree.resolve()} "
          f"(commit {tree_commit(args.chatlab_tree)}); Node.js: {NODE_SERVER.relative_to(ROOT)} 0")
    results = run_hostile(args, node, args.rounds, args.quick)
    print()
    print(report(results))
    print(f"\n{(time.monotonic() - t0) / 60:.1f} minutes; load average at the end {_loadavg()}")
    if args.json:
        args.json.write_text(json.dumps({
            "started": started.isoformat(), "args": {k: str(v) for k, v in vars(args).items()},
            "runs": [{"scenario": s, "server": k, "results": r} for (s, k), r in results.items()],
        }, indent=1, default=str))
    return 1 if results and all("error" in r for runs in results.values() for r in runs) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())

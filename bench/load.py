"""Load benchmark: 1,000 chat clients in one process against one chatlab server.

Run from the repository root (it prints figures; it is not a timed test)::

    .venv/bin/python bench/load.py                    # 1,000 clients, 10,000 messages, both modes
    .venv/bin/python bench/load.py --clients 50 --messages 500 --mode in-process

Modes
-----
``standalone``
    The server is ``python -m chatlab serve --port 0``, a process of its own
    (the URL is read from the first line it prints), stopped with SIGTERM at
    the end. Its memory is read from ``/proc/<pid>/status``.
``in-process``
    ``chatlab.ChatServer(fast=True).serve()`` on the same asyncio loop as the clients,
    as in a notebook kernel: server and 1,000 clients share one core, and the
    server's own tables (connections, rate buckets, rooms) can be read.

Both use the server's default :class:`chatlab.Limits` and the fast paths of
``chatlab serve``, so the two modes measure the same server.

Traffic shape, and why
----------------------
Broadcasting 10,000 messages to 1,000 clients would be 10 million
deliveries, far more than one Python process takes in minutes. So:

* clients ``u0 … u999`` join chat rooms of 10 (``join``) and the 10,000
  messages are room messages (``roommessage``), 10 per client, each
  delivered to the 10 members of the sender's room (the sender included,
  as the server does): 100,000 deliveries;
* then 20 public ``message`` broadcasts, from 20 different clients, go to
  every connection (1,000 clients + the observer): 20,020 deliveries, so the
  public path (stored, given an offset, sent to everyone live) is exercised.

Each client sends at most 13 events (``adduser``, ``join``, 10 room
messages, 1 public one), inside the server's burst of 40, so nobody is
refused for going too fast. Bigger runs are paced by each client's own copy
of the server's token bucket (:class:`Pacer`).

Joining and leaving cost far more than the messages: every ``adduser`` and
every disconnect sends the whole users list to every connection, so 1,000
clients joining one after the other receive n(n+1)/2 = about 500,000
``users`` events (and as many again when they leave), each a list of up to
1,000 names: about a million frames and 2 × 2 GB of JSON in all, which is
most of the run's time. The server queues them for each connection without
limit, so joins and leaves go in a window (``--window``, 10): client k
connects only once the observer (connected first, it sees every list) has
seen client k - 10 join, and likewise for leaving. Without it the queues
grew to ~900 MiB in-process, and the server dropped connections whose
pongs waited behind them. The window bounds them only loosely: the
observer is served ahead of the others (when client k leaves, the others
have typically read a fifth of the lists the observer has), so the users
events the clients read while leaving are far fewer than were sent: the
rest were still queued for a client when it left.

The clients
-----------
``--client lean`` (the default) is a ``socketio.AsyncClient`` whose
engineio client handles each incoming message in its read loop (stock
engineio starts a task per message) and which counts ``users`` events
without decoding them (the observer and the checker do decode them). It
still speaks through python-socketio (handshake, namespaces, acks). With
1,000 clients in one process, the stock client (``--client stock``) makes
the client side, not the server, the bottleneck. ``chatlab.ChatClient``
logs every event, each of the 500,000 users lists included: not used.
Like browsers, the clients offer per-message deflate (the server may
decline it); ``--no-compress`` makes them not offer it.

Accounting
----------
Every message text is unique: ``<run marker> <kind><sender>.<seq>``. Each
receiving client checks each message it gets: one that does not carry this
run's marker is ignored (history of an earlier run replayed on connect);
one it has had before is a duplicate; one whose sender's sequence number
went back is out of order (each sender waits for the acknowledgement of one
message before sending the next, so the order is defined); one meant for
another room is a stray. After each phase every client must have exactly
the messages meant for it. All clients join before the first message of the
run is sent, so no history replayed to them can hold one; the client that
joins last (the *checker*) counts the run's public messages it was replayed,
for information. Payload keys beyond ``message``/``room`` are not looked at.

No sleeps stand in for synchronisation: the script waits on events set when
a count reaches what is expected, with a timeout that says what is missing.
(The only sleep is the pacer's, to stay under the rate limit.)

Figures
-------
Each time is wall time, with the CPU time this process (and a standalone
server) used meanwhile: on a shared machine wall time also counts other
people's work (the load average is printed). Figures: time to connect +
``adduser`` every client and to ``join`` the rooms; messages per second
acknowledged; deliveries expected and delivered, and delivery throughput;
users events received; time for everyone to leave; the users list at the
end (the observer's view, the late checker's, in-process the server's own);
and, before the clients join and after they have left (the observer
connected both times): server RSS, asyncio tasks, Python's allocated blocks
and objects, and in-process the server's connections, rate buckets, rooms
and engineio socket objects.

Leftovers are told from leaks by waiting for them, not by sleeping: engineio
keeps each closed connection's ping task alive for up to its ping interval
(25 s), and its service task holds closed sockets for up to its ping
timeout (20 s); the script waits for those tasks to end and (in-process)
for those sockets to be freed, through weak references, and only then
compares. ``--rounds 3`` repeats join, talk and leave on the same server:
memory that grows from round to round would be a leak. (From the second
round on, each new connection is also replayed the stored public messages,
up to 50, so joining costs a little more.)

Exit code 1, with a line saying what went wrong, if any delivery is
missing, duplicated, out of order or stray, if the server refused anything
or dropped a connection, a client could not join, the users list is not
empty at the end, or tasks, connections or sockets are left over.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import resource
import signal
import sys
import time
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import aiohttp
import engineio
import socketio
from engineio.async_socket import AsyncSocket

import chatlab

ROOT = Path(__file__).resolve().parent.parent
LIMITS = chatlab.Limits()  # what both servers enforce; standalone cannot change it
PING_INTERVAL = 25  # engineio's default, which chatlab keeps

OBSERVER = "observer"
CHECKER = "checker"


# -- the plan: who sends what to whom ------------------------------------------


@dataclass(frozen=True)
class Plan:
    clients: int
    messages: int
    public: int
    room_size: int
    concurrency: int
    window: int
    timeout: float
    client: str
    rounds: int
    compress: bool

    def name(self, index: int) -> str:
        return f"u{index}"

    def room(self, index: int) -> str:
        return f"r{index // self.room_size}"

    def room_sends(self, index: int) -> int:
        """How many room messages client ``index`` sends (spread evenly)."""
        base, extra = divmod(self.messages, self.clients)
        return base + (index < extra)

    def public_sends(self, index: int) -> int:
        base, extra = divmod(self.public, self.clients)
        return base + (index < extra)

    def room_totals(self) -> dict[str, int]:
        """The room messages each room carries."""
        totals: Counter[str] = Counter()
        for index in range(self.clients):
            totals[self.room(index)] += self.room_sends(index)
        return dict(totals)


def message_text(marker: str, kind: str, sender: int, seq: int) -> str:
    return f"{marker} {kind}{sender}.{seq}"


TEXT = re.compile(r"(?P<marker>\S+) (?P<kind>[rp])(?P<sender>\d+)\.(?P<seq>\d+)\Z")


# -- waiting without sleeping ------------------------------------------------------


class Tally:
    """Deliveries counted across all clients; ``done`` is set once the count
    reaches what the current phase expects."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.delivered = 0
        self.expected = 0
        self.users_events = 0
        self.done = asyncio.Event()

    def expect(self, expected: int) -> None:
        self.delivered = 0
        self.expected = expected
        self.done.clear()
        if expected == 0:
            self.done.set()

    def count(self) -> None:
        self.delivered += 1
        if self.delivered >= self.expected:
            self.done.set()


class Watch:
    """A value that changes, and waits for a condition on it."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self._changed = asyncio.Event()

    def set(self, value: Any) -> None:
        self.value = value
        self._changed.set()

    async def wait_until(self, predicate: Callable[[Any], bool], timeout: float) -> bool:
        """True once ``predicate(value)`` holds, False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        while not predicate(self.value):
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return predicate(self.value)
        return True


class Pacer:
    """Keeps one client under the server's rate limit: a copy of its token
    bucket at 90% of the rate, so the server never refuses an event as too
    fast. This is pacing, not synchronisation."""

    def __init__(self, limits: chatlab.Limits) -> None:
        self.rate = limits.events_per_second * 0.9
        self.burst = max(1, limits.burst - 2)  # spare tokens for clock skew
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def ready(self) -> None:
        self._refill()
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self._refill()
        self.tokens -= 1


# -- the clients -----------------------------------------------------------------


class InlineEngineIO(engineio.AsyncClient):
    """engineio's client starts a task for every message it receives; this
    one handles each in its read loop, in arrival order. Safe here because
    no handler of ours waits for a later message."""

    async def _receive_packet(self, pkt: engineio.packet.Packet) -> None:
        if pkt.packet_type == engineio.packet.MESSAGE:
            await self._trigger_event("message", pkt.data, run_async=False)
        else:
            await super()._receive_packet(pkt)


USERS_EVENT = '2["users",'  # how a users event starts, on the default namespace


class LeanClient(socketio.AsyncClient):
    """A python-socketio client that counts users events without decoding
    them (1,000 lists of up to 1,000 names would cost more than the chat)."""

    def __init__(self, on_users: Callable[[], None] | None, **options: Any) -> None:
        super().__init__(**options)
        self.on_users = on_users

    def _engineio_client_class(self) -> type:
        return InlineEngineIO

    async def _handle_eio_message(self, data: Any) -> None:
        if self.on_users is not None and isinstance(data, str) \
                and data.startswith(USERS_EVENT):
            self.on_users()
            return
        await super()._handle_eio_message(data)


class LoadClient:
    """One chat user, accounting for each message it receives."""

    def __init__(self, name: str, room: str | None, tally: Tally, plan: Plan,
                 http: aiohttp.ClientSession, *, watch_users: bool = False,
                 counted: bool = True) -> None:
        self.name = name
        self.room = room
        self.tally = tally
        self.counted = counted  # False: the late checker, whose messages are replays
        self.pacer = Pacer(LIMITS)
        options: dict[str, Any] = dict(
            reconnection=False, handle_sigint=False, http_session=http)
        if not plan.compress:
            options["websocket_extra_options"] = {"compress": 0}
        if plan.client == "lean":
            self.sio: socketio.AsyncClient = LeanClient(
                None if watch_users else self._count_users, **options)
        else:
            self.sio = socketio.AsyncClient(**options)
        self.users = Watch([])
        self.reset()
        self.errors: list[Any] = []
        self.leaving = False
        self.dropped: str | None = None  # why the connection ended, if not by us
        self.sio.on("message", handler=self._on_message)
        self.sio.on("error", handler=self._on_error)
        self.sio.on("disconnect", handler=self._on_disconnect)
        self.sio.on("users", handler=self.users.set if watch_users else self._count_users)

    def reset(self) -> None:
        self.seen: set[str] = set()
        self.last_seq: dict[tuple[str, int], int] = {}
        self.got = {"r": 0, "p": 0}
        self.duplicates = 0
        self.out_of_order = 0
        self.strays = 0

    def _count_users(self, *args: Any) -> None:
        self.tally.users_events += 1

    def _on_error(self, data: Any = None, *rest: Any) -> None:
        self.errors.append(data)

    def _on_disconnect(self, reason: Any = None, *rest: Any) -> None:
        if not self.leaving:
            self.dropped = str(reason)

    def _on_message(self, data: Any = None, *rest: Any) -> None:
        # Extra arguments and keys are ignored: the protocol may grow.
        text = data.get("message") if isinstance(data, dict) else None
        match = TEXT.match(text) if isinstance(text, str) else None
        if match is None or match["marker"] != self.tally.marker:
            return  # another run's message, e.g. replayed history
        if text in self.seen:
            self.duplicates += 1
            return
        self.seen.add(text)
        kind, sender, seq = match["kind"], int(match["sender"]), int(match["seq"])
        if seq < self.last_seq.get((kind, sender), -1):
            self.out_of_order += 1
        self.last_seq[(kind, sender)] = seq
        if kind == "r" and data.get("room") != self.room:
            self.strays += 1
            return
        self.got[kind] += 1
        if self.counted:
            self.tally.count()

    async def connect(self, url: str, timeout: float) -> None:
        await self.sio.connect(url, transports=["websocket"], wait_timeout=timeout)

    async def call(self, event: str, data: Any, timeout: float) -> dict[str, Any]:
        """Send ``event`` within the rate limit and return the server's
        acknowledgement; raise ``RuntimeError`` if it refused."""
        await self.pacer.ready()
        reply = await self.sio.call(event, data, timeout=timeout)
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            raise RuntimeError(f"{self.name}: the server refused {event!r}: {reply!r}")
        return reply

    async def close(self) -> None:
        self.leaving = True
        await self.sio.disconnect()


def client_session() -> aiohttp.ClientSession:
    # One HTTP session for every client, without aiohttp's default limit of
    # 100 connections (websockets beyond it would wait for a free one).
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


# -- measuring ---------------------------------------------------------------------


def vm_kib(pid: int, key: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/<pid>/status, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float | None:
    """CPU seconds another process has used (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kinds(tasks: Iterable[asyncio.Task[Any]]) -> Counter[str]:
    """How many tasks run each coroutine function."""
    return Counter(task.get_coro().__qualname__ for task in tasks)


def describe_tasks(tasks: Iterable[asyncio.Task[Any]]) -> str:
    return describe_counts(kinds(tasks))


def describe_counts(names: Counter[str]) -> str:
    """How many tasks, and the two commonest coroutines among them."""
    if not names:
        return "0"
    common = ", ".join(f"{count} {name}" for name, count in names.most_common(2))
    return f"{sum(names.values())} ({common})"


def show_users(names: list[str]) -> str:
    if len(names) <= 3:
        return repr(names)
    return f"{len(names)} names: {', '.join(names[:3])}, …"


@dataclass
class Snapshot:
    """What is alive at one moment; compared before and after the load."""

    rss_kib: int | None
    tasks: set[asyncio.Task[Any]]
    blocks: int
    objects: int
    server: dict[str, int] = field(default_factory=dict)


def snapshot(pid: int, chat: chatlab.ChatServer | None) -> Snapshot:
    gc.collect()
    server = {}
    if chat is not None:
        # In-process the server's own tables can be read: each should be
        # back to what it was before the load.
        server = {
            "connections (engineio sockets)": len(chat.sio.eio.sockets),
            "rate buckets": len(getattr(chat, "_buckets", {})),
            "socketio rooms in '/'": len(chat.sio.manager.rooms.get("/", {})),
            "engineio AsyncSocket objects": sum(
                1 for obj in gc.get_objects() if isinstance(obj, AsyncSocket)),
        }
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    return Snapshot(vm_kib(pid, "VmRSS"), tasks, sys.getallocatedblocks(),
                    len(gc.get_objects()), server)


async def bounded(concurrency: int, items: Iterable[Any],
                  work: Callable[[Any], Awaitable[Any]]) -> list[Any]:
    """``work(item)`` for every item, at most ``concurrency`` at a time;
    exceptions are returned, not raised."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> Any:
        async with gate:
            return await work(item)

    return await asyncio.gather(*(one(item) for item in items), return_exceptions=True)


def failures_in(results: list[Any]) -> list[BaseException]:
    return [r for r in results if isinstance(r, BaseException)]


class Report:
    """The figures of one mode, in print order, and what went wrong."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.rows: dict[str, str] = {}
        self.problems: list[str] = []

    def add(self, label: str, value: Any) -> None:
        self.rows[label] = str(value)
        self.say(f"{label}: {value}")  # as it happens, for a run that never ends

    def fail(self, problem: str) -> None:
        self.problems.append(problem)
        print(f"[{self.mode}] PROBLEM: {problem}", file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        print(f"[{self.mode}] {text}", file=sys.stderr, flush=True)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


class Clock:
    """Wall time, and the CPU time of this process and of a standalone
    server: which side was busy."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid if server_pid != os.getpid() else None
        self.start = time.monotonic()
        self.cpu = cpu_seconds()
        self.server_cpu = process_cpu(self.server_pid) if self.server_pid else None

    def seconds(self) -> float:
        return time.monotonic() - self.start

    def __str__(self) -> str:
        text = f"{self.seconds():.1f} s (CPU: here {cpu_seconds() - self.cpu:.1f} s"
        if self.server_pid is not None and self.server_cpu is not None:
            now = process_cpu(self.server_pid)
            if now is not None:
                text += f", server {now - self.server_cpu:.1f} s"
        return text + ")"


# -- one round: 1,000 clients join, talk and leave -------------------------------


class Round:
    """The clients of one round, against the server at ``url``, with the
    ``observer`` (connected throughout) watching the users list."""

    def __init__(self, plan: Plan, url: str, chat: chatlab.ChatServer | None, pid: int,
                 observer: LoadClient, report: Report, http: aiohttp.ClientSession,
                 prefix: str) -> None:
        self.plan = plan
        self.url = url
        self.chat = chat
        self.pid = pid
        self.observer = observer
        self.report = report
        self.prefix = prefix
        self.tally = Tally(uuid.uuid4().hex[:12])
        observer.tally = self.tally
        observer.reset()
        self.clients = [LoadClient(plan.name(i), plan.room(i), self.tally, plan, http)
                        for i in range(plan.clients)]

    def add(self, label: str, value: Any) -> None:
        self.report.add(self.prefix + label, value)

    async def run(self) -> None:
        try:
            if await self.join_all():
                await self.join_rooms()
                await self.send_room_messages()
                await self.send_public_messages()
        finally:
            await self.leave_all()
        self.check_clients()

    async def join_all(self) -> bool:
        """Connect and ``adduser`` every client, in a window (see the top)."""
        plan, report = self.plan, self.report
        everyone = plan.clients + 1  # and the observer
        listed = self.observer.users

        async def join(index: int) -> None:
            # The observer lists itself and every client that has joined.
            if not await listed.wait_until(
                    lambda u: len(u) >= index - plan.window + 1, plan.timeout):
                raise TimeoutError(f"the observer never saw {plan.name(index - plan.window)}"
                                   f" join (it lists {len(listed.value)})")
            client = self.clients[index]
            await client.connect(self.url, plan.timeout)
            await client.call("adduser", client.name, plan.timeout)

        report.say(f"{self.prefix}connecting {plan.clients} clients, "
                   f"{plan.concurrency} at a time")
        clock = Clock(self.pid)
        failed = failures_in(await bounded(plan.concurrency, range(plan.clients), join))
        if failed:
            report.fail(f"{len(failed)} of {plan.clients} clients could not join, "
                        f"e.g. {failed[0]!r}")
            return False
        if not await listed.wait_until(lambda u: len(u) == everyone, plan.timeout):
            report.fail(f"the observer saw {len(listed.value)} users, not {everyone}")
        self.add("connect + adduser, all clients",
                 f"{clock}, {rate(plan.clients, clock.seconds())}")
        self.add("users events read by the clients while joining",
                 f"{self.tally.users_events:,}")
        self.add("users listed at the peak (observer)", len(listed.value))
        self.add(f"server RSS with {plan.clients} joined", mib(vm_kib(self.pid, "VmRSS")))
        return True

    async def join_rooms(self) -> None:
        plan = self.plan
        clock = Clock(self.pid)
        failed = failures_in(await bounded(
            plan.clients, self.clients, lambda c: c.call("join", c.room, plan.timeout)))
        rooms = len(plan.room_totals())
        self.add(f"join rooms of {plan.room_size} ({rooms} rooms)", clock)
        if failed:
            self.report.fail(f"{len(failed)} clients could not join their room, "
                             f"e.g. {failed[0]!r}")

    async def send_phase(self, label: str, kind: str, expected: int, sent: int,
                         send: Callable[[int, LoadClient], Awaitable[None]]) -> None:
        """Every client sends its share at once (one message after the
        other, each acknowledged); wait until every delivery has arrived."""
        plan, report = self.plan, self.report
        self.tally.expect(expected)
        report.say(f"{self.prefix}{label}: {sent} messages, {expected} deliveries expected")
        clock = Clock(self.pid)
        failed = failures_in(await asyncio.gather(
            *(send(i, c) for i, c in enumerate(self.clients)), return_exceptions=True))
        acked = clock.seconds()
        if failed:
            report.fail(f"{label}: {len(failed)} senders failed, e.g. {failed[0]!r}")
        try:
            await asyncio.wait_for(self.tally.done.wait(), plan.timeout)
        except asyncio.TimeoutError:
            report.fail(f"{label}: only {self.tally.delivered} of {expected} deliveries "
                        f"arrived within {plan.timeout:g} s; {self.short(kind)}")
        self.add(f"{label}: sent (acknowledged)", f"{sent} in {acked:.1f} s, {rate(sent, acked)}")
        self.add(f"{label}: deliveries expected / delivered",
                 f"{expected:,} / {self.tally.delivered:,}")
        self.add(f"{label}: all delivered after",
                 f"{clock}, {rate(self.tally.delivered, clock.seconds())}")
        if self.tally.delivered != expected:
            report.fail(f"{label}: {expected} deliveries expected, {self.tally.delivered} counted")

    async def send_room_messages(self) -> None:
        plan, totals = self.plan, self.plan.room_totals()
        expected = sum(totals[plan.room(i)] for i in range(plan.clients))

        async def send(index: int, client: LoadClient) -> None:
            for seq in range(plan.room_sends(index)):
                text = message_text(self.tally.marker, "r", index, seq)
                await client.call("roommessage", {"room": client.room, "message": text},
                                  plan.timeout)

        await self.send_phase("room messages", "r", expected, plan.messages, send)

    async def send_public_messages(self) -> None:
        plan = self.plan
        expected = plan.public * (plan.clients + 1)  # everyone, the observer too

        async def send(index: int, client: LoadClient) -> None:
            for seq in range(plan.public_sends(index)):
                text = message_text(self.tally.marker, "p", index, seq)
                await client.call("message", text, plan.timeout)

        await self.send_phase("public messages", "p", expected, plan.public, send)

    async def leave_all(self) -> None:
        """Disconnect everyone, in a window as for joining, then wait until
        the observer's users list is only itself."""
        plan, report = self.plan, self.report
        listed = self.observer.users
        joined = [c for c in self.clients if c.sio.connected]
        report.say(f"{self.prefix}disconnecting {len(joined)} clients")
        first = len(listed.value)
        self.tally.users_events = 0

        async def leave(index: int) -> None:
            if not await listed.wait_until(
                    lambda u: len(u) <= first - index + plan.window, plan.timeout):
                raise TimeoutError(f"the observer never saw {index - plan.window} "
                                   f"clients leave (it lists {len(listed.value)})")
            await asyncio.wait_for(joined[index].close(), plan.timeout)

        clock = Clock(self.pid)
        failed = failures_in(await bounded(plan.concurrency, range(len(joined)), leave))
        if failed:
            report.fail(f"{len(failed)} clients failed to disconnect, e.g. {failed[0]!r}")
        alone = await listed.wait_until(lambda u: u == [OBSERVER], plan.timeout)
        self.add("disconnect all, until the observer is alone", clock)
        # Fewer than sent: what was still queued for a client when it left
        # is never read (the observer runs well ahead of the others).
        self.add("users events read by the clients while leaving",
                 f"{self.tally.users_events:,}")
        self.add("users list at the end, observer's view", show_users(listed.value))
        if not alone:
            report.fail(f"{len(listed.value) - 1} users still listed after everyone left: "
                        f"{show_users(listed.value)}")
        if self.chat is not None:
            names = self.chat.names()
            self.add("users list at the end, server's view", show_users(names))
            if names != [OBSERVER]:
                report.fail(f"the server still lists {show_users(names)}")

    def receivers(self) -> list[LoadClient]:
        return [*self.clients, self.observer]

    def wanted(self, client: LoadClient) -> dict[str, int]:
        in_room = self.plan.room_totals().get(client.room, 0) if client.room else 0
        return {"r": in_room, "p": self.plan.public}

    def short(self, kind: str) -> str:
        """Which clients lack messages of ``kind`` (``r`` or ``p``)."""
        short = [f"{c.name} has {c.got[kind]} of {self.wanted(c)[kind]}"
                 for c in self.receivers() if c.got[kind] < self.wanted(c)[kind]]
        return f"{len(short)} clients short, e.g. " + ", ".join(short[:5])

    def check_clients(self) -> None:
        """Each client got exactly its messages: none missing, twice, out of
        order, or meant for another room; and no refusals."""
        report, receivers = self.report, self.receivers()
        wrong = [c for c in receivers if c.got != self.wanted(c)]
        duplicates = sum(c.duplicates for c in receivers)
        disorder = sum(c.out_of_order for c in receivers)
        strays = sum(c.strays for c in receivers)
        errors = [e for c in receivers for e in c.errors]
        dropped = Counter(c.dropped for c in receivers if c.dropped is not None)
        self.add("connections dropped, not closed by the client",
                 ", ".join(f"{n} ({why})" for why, n in dropped.items()) or "0")
        if dropped:
            report.fail(f"{sum(dropped.values())} connections were dropped: {dict(dropped)}")
        self.add("clients without exactly their messages", len(wrong))
        self.add("duplicates / out of order / strays", f"{duplicates} / {disorder} / {strays}")
        self.add("server refusals (error events)", len(errors))
        if wrong:
            c = wrong[0]
            report.fail(f"{len(wrong)} clients did not get exactly their messages, "
                        f"e.g. {c.name}: {c.got}, expected {self.wanted(c)}")
        if duplicates or disorder or strays:
            report.fail(f"{duplicates} duplicates, {disorder} out of order, {strays} strays")
        if errors:
            report.fail(f"the server sent {len(errors)} errors, e.g. {errors[0]!r}")


# -- one mode: observer, rounds, leftovers ----------------------------------------


async def load(plan: Plan, url: str, pid: int, chat: chatlab.ChatServer | None,
               report: Report) -> None:
    """The rounds against one server, with what is alive before and after."""
    async with client_session() as http:
        observer = LoadClient(OBSERVER, None, Tally(""), plan, http, watch_users=True)
        await observer.connect(url, plan.timeout)
        await observer.call("adduser", OBSERVER, plan.timeout)
        # aiohttp's websocket keeps what the handshake agreed (0: no deflate).
        ws = getattr(observer.sio.eio, "ws", None)
        report.add("per-message deflate agreed with the server",
                   "yes" if getattr(ws, "compress", 0) else "no")
        before = snapshot(pid, chat)
        marker = ""
        for number in range(1, plan.rounds + 1):
            prefix = f"round {number}: " if plan.rounds > 1 else ""
            this = Round(plan, url, chat, pid, observer, report, http, prefix)
            marker = this.tally.marker
            await this.run()
            del this  # its 1,000 clients, so that what is still alive is the server's
            await settle(before, chat, report, prefix)
            after = snapshot(pid, chat)
            compare(before, after, chat, report, prefix)
        await observer.close()
        await check_empty(plan, url, report, http, marker)


async def settle(before: Snapshot, chat: chatlab.ChatServer | None, report: Report,
                 prefix: str) -> None:
    """Wait for the tasks the load left behind to end by themselves.

    engineio gives each connection a ping task that sleeps out the ping
    interval (25 s) before it looks whether the connection has closed, and
    it keeps the connection's socket object until then. So right after
    everyone left, up to one task and socket per client is still alive:
    counted, then waited for (not cancelled), so that whatever is left
    afterwards is a leak, not a timer. Tasks are compared by what they run,
    as the observer's own short-lived tasks come and go meanwhile."""
    def others() -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks() - {asyncio.current_task()}

    def extra() -> Counter[str]:
        return kinds(others()) - kinds(before.tasks)

    def candidates() -> set[asyncio.Task[Any]]:
        wanted = extra()
        return {task for task in others() - before.tasks
                if task.get_coro().__qualname__ in wanted}

    report.add(prefix + "asyncio tasks more than before, right after everyone left",
               describe_counts(extra()))
    interval = chat.sio.eio.ping_interval if chat is not None else PING_INTERVAL
    start = time.monotonic()
    deadline = start + interval + 10
    while extra() and time.monotonic() < deadline:
        await asyncio.wait(candidates(), timeout=deadline - time.monotonic(),
                           return_when=asyncio.FIRST_COMPLETED)
    left = extra()
    report.add(prefix + "... tasks left after waiting for them to end",
               f"{describe_counts(left)} (waited {time.monotonic() - start:.1f} s)")
    if left:
        report.fail(f"{sum(left.values())} tasks outlived the ping interval: "
                    f"{describe_counts(left)}")
    if chat is not None:
        await settle_sockets(chat, report, prefix)


async def settle_sockets(chat: chatlab.ChatServer, report: Report, prefix: str) -> None:
    """Wait for the closed connections' socket objects to be freed.

    engineio's service task walks a copy of the socket table, one socket
    every ping_timeout / n seconds, so a closed socket can stay referenced
    for up to ping_timeout (20 s) after its tasks ended. Waited for through
    weak references (each one's callback counts it freed), not by sleeping."""
    gc.collect()
    closed = [obj for obj in gc.get_objects() if isinstance(obj, AsyncSocket) and obj.closed]
    freed = asyncio.Event()
    alive = len(closed)

    def gone(_: Any) -> None:
        nonlocal alive
        alive -= 1
        if alive == 0:
            freed.set()

    refs = [weakref.ref(obj, gone) for obj in closed]
    del closed
    start = time.monotonic()
    if alive:
        try:
            await asyncio.wait_for(freed.wait(), chat.sio.eio.ping_timeout + 10)
        except asyncio.TimeoutError:
            gc.collect()  # last chance for any caught in reference cycles
    report.add(prefix + "closed engineio sockets still referenced, then",
               f"{len(refs)}, then {alive} (waited {time.monotonic() - start:.1f} s)")


def compare(before: Snapshot, after: Snapshot, chat: chatlab.ChatServer | None,
            report: Report, prefix: str) -> None:
    def add(label: str, old: Any, new: Any) -> None:
        report.add(f"{prefix}{label} before / after", f"{old} / {new}")

    add("server RSS" if chat is None else "RSS (server and clients)",
        mib(before.rss_kib), mib(after.rss_kib))
    where = "this process" if chat is not None else "client process"
    add(f"asyncio tasks ({where})", len(before.tasks), len(after.tasks))
    add(f"allocated blocks ({where})", f"{before.blocks:,}", f"{after.blocks:,}")
    add(f"gc objects ({where})", f"{before.objects:,}", f"{after.objects:,}")
    for label, old in before.server.items():
        add(f"server {label}", old, after.server[label])
        if after.server[label] > old:
            report.fail(f"server {label}: {old} before the load, {after.server[label]} after")
    if len(after.tasks) > len(before.tasks):
        report.fail(f"{len(after.tasks) - len(before.tasks)} more asyncio tasks than before")


async def check_empty(plan: Plan, url: str, report: Report, http: aiohttp.ClientSession,
                      marker: str) -> None:
    """A client joining last must see only itself listed; it also counts
    the last round's public messages (``marker``) it is sent as history."""
    checker = LoadClient(CHECKER, None, Tally(marker), plan, http,
                         watch_users=True, counted=False)
    await checker.connect(url, plan.timeout)
    await checker.call("adduser", CHECKER, plan.timeout)
    alone = await checker.users.wait_until(lambda u: u == [CHECKER], plan.timeout)
    report.add("users list at the end, late checker's view", show_users(checker.users.value))
    if not alone:
        report.fail(f"a client joining after everyone left sees {show_users(checker.users.value)}")
    report.add("last round's public messages replayed to the checker",
               f"{checker.got['p']} of {plan.public}")
    await checker.close()


# -- the two modes -----------------------------------------------------------------


async def run_in_process(plan: Plan) -> Report:
    report = Report("in-process")
    chat = chatlab.ChatServer(fast=True)
    server = await chat.serve(name="bench-load")
    try:
        await load(plan, server.url, os.getpid(), chat, report)
    finally:
        await server.stop()
    report.add("users after the server stopped", show_users(chat.names()))
    report.add("asyncio tasks after the server stopped",
               describe_tasks(asyncio.all_tasks() - {asyncio.current_task()}))
    report.add("RSS peak of this process (server and clients)",
               mib(vm_kib(os.getpid(), "VmHWM")))
    if server.errors:
        report.fail(f"the server's handlers raised {len(server.errors)} errors, "
                    f"e.g. {server.errors[0]}")
    return report


async def start_standalone(timeout: float) -> tuple[asyncio.subprocess.Process, str]:
    """``python -m chatlab serve --port 0``; its first line names the URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatlab", "serve", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout)).decode()
    found = re.search(r"(http://\S+?)/? ", line)
    if found is None:
        process.terminate()
        await process.wait()
        raise RuntimeError(f"chatlab serve printed {line!r}, not its URL")
    return process, found[1]


async def run_standalone(plan: Plan) -> Report:
    report = Report("standalone")
    process, url = await start_standalone(plan.timeout)
    try:
        await load(plan, url, process.pid, None, report)
        report.add("server RSS peak (VmHWM)", mib(vm_kib(process.pid, "VmHWM")))
        report.add("server CPU time in all", f"{process_cpu(process.pid) or 0:.1f} s")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), plan.timeout)
    report.add("server exit code after SIGTERM", code)
    report.add("RSS peak of the client process (since it started)",
               mib(vm_kib(os.getpid(), "VmHWM")))
    if code != 0:
        report.fail(f"the server exited with {code} after SIGTERM")
    return report


# -- the command line ----------------------------------------------------------------


def print_table(reports: list[Report], plan: Plan) -> None:
    labels = list(dict.fromkeys(label for r in reports for label in r.rows))
    width = max(len(label) for label in labels)
    columns = [max(len(r.mode), *(len(v) for v in r.rows.values())) for r in reports]
    deflate = "deflate offered" if plan.compress else "deflate not offered"
    print(f"\n{plan.clients} clients ({plan.client}, {deflate}), rooms of {plan.room_size}, "
          f"{plan.messages} room messages, {plan.public} public messages, "
          f"{plan.rounds} round(s); load average {load_average()}\n")
    print(" | ".join([" " * width] + [r.mode.ljust(w) for r, w in zip(reports, columns)]))
    print("-+-".join(["-" * width] + ["-" * w for w in columns]))
    for label in labels:
        cells = [r.rows.get(label, "").ljust(w) for r, w in zip(reports, columns)]
        print(" | ".join([label.ljust(width)] + cells).rstrip())


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f} (1 min, {os.cpu_count()} CPUs)"


def parse(argv: list[str] | None = None) -> tuple[Plan, list[str]]:
    parser = argparse.ArgumentParser(
        description="1,000 chat clients in one process against one chatlab server "
                    "(see the docstring of bench/load.py).")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10_000,
                        help="room messages in all (default 10,000)")
    parser.add_argument("--public", type=int, default=20,
                        help="public broadcasts, each to every client (default 20)")
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50,
                        help="clients connecting at once (default 50)")
    parser.add_argument("--window", type=int, default=10,
                        help="joins (or leaves) the observer may not have seen yet "
                             "when the next client starts (default 10)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds any one wait may take (default 120)")
    parser.add_argument("--client", choices=("lean", "stock"), default="lean",
                        help="lean: socketio.AsyncClient handling messages inline and "
                             "counting users events undecoded (default); stock: as shipped")
    parser.add_argument("--rounds", type=int, default=1,
                        help="join, talk and leave this many times on the same server, "
                             "to see whether memory grows (default 1)")
    parser.add_argument("--no-compress", dest="compress", action="store_false",
                        help="do not offer per-message deflate (browsers do)")
    parser.add_argument("--mode", choices=("standalone", "in-process", "both"), default="both")
    args = parser.parse_args(argv)
    if min(args.clients, args.room_size, args.concurrency, args.window, args.rounds) < 1:
        parser.error("--clients, --room-size, --concurrency, --window and --rounds "
                     "must be at least 1")
    if args.messages < 0 or args.public < 0:
        parser.error("--messages and --public cannot be negative")
    plan = Plan(args.clients, args.messages, args.public, args.room_size,
                args.concurrency, args.window, args.timeout, args.client, args.rounds,
                args.compress)
    # In-process first: its process-wide figures then start from a process
    # that has not yet run 1,000 clients.
    modes = ["in-process", "standalone"] if args.mode == "both" else [args.mode]
    return plan, modes


async def main(plan: Plan, modes: list[str]) -> int:
    reports = []
    for mode in modes:
        clock, before = Clock(), load_average()
        report = await (run_in_process(plan) if mode == "in-process" else run_standalone(plan))
        report.add("wall time of this mode", clock)
        report.add("machine load average, start / end", f"{before} / {load_average()}")
        reports.append(report)
    print_table(reports, plan)
    problems = [f"{r.mode}: {p}" for r in reports for p in r.problems]
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print("\nOK: every delivery accounted for, users list empty at the end, nothing left over.")
    return 0


if __name__ == "__main__":
    # engineio's client logs each connection it drops; they are counted
    # (see LoadClient._on_disconnect) instead of printed a thousand times.
    logging.getLogger("engineio.client").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(*parse())))

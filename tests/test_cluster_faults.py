"""Faults in a running cluster, end to end: three ``chatlab serve --redis``
nodes (processes) behind a real nginx configured from deploy/nginx.conf, one
real redis-server, and chat clients connected through nginx from several
loopback addresses (so the hash spreads them over the nodes): two
ChatClients per node and the official Node.js client (on the node that
dies), each sending all the time, a message id with every message, and
waiting for the acknowledgements.

Phase one: a node is killed with SIGKILL while they send. Its clients
reconnect through nginx, which takes them to a surviving node; they send
again what was not acknowledged and catch up from their last offset.
Afterwards every acknowledged message is in every client's history exactly
once, at its offset, in offset order with no gaps, and the dead node's users
leave every list (within the heartbeat bound, docs/scaling.md). Until then
the dead node's users still hold their names, so the moved clients' first
rejoin is refused, and ChatClient asks again until the name is free.

Phase two: Redis is restarted (empty, as without persistence): a new history
starts, which every client is told of; the clients send on, and the same
holds for the new history."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest

from chatlab import ChatClient, ChatRefused
from chatlab.waiting import WaitTimeout
from nginx_support import NODE_HEADER, Nginx, Node, require_nginx, start_nginx, start_node
from redis_support import RedisServer

pytestmark = pytest.mark.e2e

NODE_FLAGS = ("--trusted-proxy", "127.0.0.1")
HANDSHAKE = "socket.io/?EIO=4&transport=polling"
SOURCES = [f"127.0.0.{n}" for n in range(2, 40)]
PER_NODE = 2  # clients on each node at the start
PACE = 0.1  # seconds between a client's messages (the rate limit is 20 a second)
SEND_TIMEOUT = 20.0  # a message waits this long for its acknowledgement
ACK_TIMEOUT = 1.0  # the client sends again if unacknowledged this long
SETTLE = 25.0  # seconds for everyone to catch up / for ghosts to go (ttl + beat = 8 s)


JS = Path(__file__).parent / "js"  # where the official client is installed
NODE_CLIENT = """\
// The official Node.js Socket.IO client as one more chat user in the fault
// test: sends with message ids and retries (the tutorial's way), rejoins
// after reconnecting, and reports what came off the wire. Commands on stdin:
// "send PHASE", "stop" (answers "stopped"), "report CHAT LAST" (waits until
// it has offset LAST of history CHAT, prints the JSON report and exits).
import { io } from "socket.io-client";
import readline from "node:readline";

const [url, source, name] = process.argv.slice(1);
let chat = null, serverOffset = 0, joined = false, connects = 0;
const wire = [], acked = [], refused = [];
const waiters = [];
const changed = () => { for (const w of waiters.splice(0)) w(); };
const until = (predicate) => new Promise((resolve) => {
  const check = () => (predicate() ? resolve() : waiters.push(check));
  check();
});
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const socket = io(url, {
  transports: ["websocket"], localAddress: source,
  reconnectionDelay: 200, reconnectionDelayMax: 1000,
  auth: (cb) => cb(chat === null ? {} : { chat, serverOffset }),
});
socket.on("connect", async () => {
  connects += 1;
  joined = false;
  while (socket.connected && !joined) {  // the name may be held by a dead node's ghost
    try {
      const reply = await socket.timeout(2000).emitWithAck("adduser", name);
      if (reply && reply.ok) { joined = true; changed(); return; }
    } catch (_) { /* no answer: again */ }
    await pause(200);
  }
});
socket.on("disconnect", () => { joined = false; changed(); });
socket.on("history", (data) => {
  chat = data.chat;
  serverOffset = data.after;
  wire.push(["history", data.chat]);
  changed();
});
socket.on("message", (data) => {
  if (typeof data.offset !== "number") return;
  wire.push([chat, data.offset, data.message]);
  if (data.offset > serverOffset) serverOffset = data.offset;
  changed();
});

let sending = null, phase = null, stopping = false;
async function keepSending() {
  for (let n = 0; !stopping; n++) {
    const text = `${name} ${phase} ${n}`, id = `${name}-${phase}-${n}`;
    for (;;) {  // the same id until answered: stored once however often it goes
      await until(() => joined);
      let reply;
      try {
        reply = await socket.timeout(1000).emitWithAck("message", text, id);
      } catch (_) { continue; }  // lost on the way (a dead node): again
      if (reply && reply.ok) { acked.push([text, reply.offset]); break; }
      if (reply && typeof reply.retryAfter === "number") {
        await pause(reply.retryAfter * 1000);
        continue;
      }
      refused.push(text); break;
    }
    await pause(100);
  }
}
readline.createInterface({ input: process.stdin }).on("line", async (line) => {
  const [command, ...args] = line.trim().split(" ");
  if (command === "send") { phase = args[0]; stopping = false; sending = keepSending(); }
  if (command === "stop") { stopping = true; await sending; console.log("stopped"); }
  if (command === "report") {
    const [wanted, last] = [args[0], Number(args[1])];
    await until(() => joined && chat === wanted && serverOffset >= last);
    console.log(JSON.stringify({ wire, acked, refused, connects }));
    socket.disconnect();
    process.exit(0);
  }
});
"""


class NodeSender:
    """The official Node.js client (NODE_CLIENT) as one more user, driven
    over its stdin."""

    def __init__(self, process: asyncio.subprocess.Process, name: str, source: str) -> None:
        self.process, self.name, self.source = process, name, source
        self.report: dict[str, Any] = {}

    @classmethod
    async def start(cls, url: str, source: str, name: str) -> "NodeSender":
        if shutil.which("node") is None or not (JS / "node_modules" / "socket.io-client").is_dir():
            pytest.fail("Node.js and `npm ci --prefix tests/js` are needed (make test does both)")
        process = await asyncio.create_subprocess_exec(
            "node", "--input-type=module", "-e", NODE_CLIENT, url, source, name, cwd=JS,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        return cls(process, name, source)

    async def command(self, line: str, timeout: float = SETTLE) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        if line.startswith("send"):
            return ""
        answer = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not answer:
            error = await self.process.stderr.read() if self.process.stderr else b""
            pytest.fail(f"the Node.js client ended on {line!r}: {error.decode()}")
        return answer.decode()

    async def finish(self, chat: str, last: int) -> dict[str, Any]:
        self.report = json.loads(await self.command(f"report {chat} {last}"))
        await asyncio.wait_for(self.process.wait(), 10)
        return self.report

    def history(self, chat: str) -> list[tuple[int, str]]:
        return [(entry[1], entry[2]) for entry in self.report["wire"]
                if entry[0] == chat and len(entry) == 3]

    def acked(self, phase: str) -> dict[str, int]:
        return {text: offset for text, offset in self.report["acked"] if f" {phase} " in text}

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@dataclass
class Sender:
    """One client and what it sent."""

    client: ChatClient
    http: aiohttp.ClientSession
    name: str
    source: str
    node: str  # where nginx put it first
    sent: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # text -> offset
    refused: list[str] = field(default_factory=list)
    unacked: list[str] = field(default_factory=list)  # timed out
    rejoins: int = 0
    rejoined_at: float | None = None  # when the client last got its name back
    wire: list = field(default_factory=list)  # every event received (the log keeps 1,000)

    def __post_init__(self) -> None:
        self.client.log.subscribe(
            lambda entry: self.wire.append(entry) if entry.direction == "in" else None)

    @property
    def connects(self) -> int:
        return sum(1 for entry in self.wire if entry.event == "connect")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    require_nginx()  # before starting anything
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(redis: RedisServer, tmp_path) -> Iterator[tuple[list[Node], Nginx]]:
    nodes: list[Node] = []
    proxy = None
    try:
        for _ in range(3):
            nodes.append(start_node(*NODE_FLAGS, "--redis", redis.url))
        proxy = start_nginx([node.address for node in nodes], tmp_path / "nginx")
        yield nodes, proxy
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.stop()


def session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                                 timeout=aiohttp.ClientTimeout(total=10))


async def node_of(proxy: Nginx, source: str) -> str:
    """The node nginx sends ``source``'s requests to."""
    async with session(source) as http:
        async with http.get(proxy.url + HANDSHAKE) as response:
            assert response.status == 200
            return response.headers[NODE_HEADER]


@pytest.fixture
async def senders(cluster) -> AsyncIterator[list[Sender]]:
    """PER_NODE clients on each node, through nginx, joined."""
    nodes, proxy = cluster
    placed: dict[str, list[str]] = defaultdict(list)
    for source in SOURCES:
        node = await node_of(proxy, source)
        if len(placed[node]) < PER_NODE:
            placed[node].append(source)
        if len(placed) == len(nodes) and all(len(s) == PER_NODE for s in placed.values()):
            break
    else:
        pytest.fail(f"the hash did not spread {len(SOURCES)} addresses over 3 nodes: {placed}")
    made: list[Sender] = []
    try:
        for node, sources in placed.items():
            for source in sources:
                http = session(source)
                client = ChatClient(proxy.url, ack_timeout=ACK_TIMEOUT, http_session=http,
                                    reconnection_delay=0.2, reconnection_delay_max=1.0)
                name = f"u{source.rsplit('.', 1)[1]}"
                made.append(Sender(client, http, name, source, node))
                await client.connect()
                await client.add_user(name)
        yield made
    finally:
        for sender in made:
            await sender.client.disconnect()
            await sender.http.close()


async def keep_sending(sender: Sender, stop: asyncio.Event, phase: str) -> None:
    n = 0
    while not stop.is_set():
        text = f"{sender.name} {phase} {n}"
        n += 1
        sender.sent += 1
        try:
            offset = await sender.client.send(text, timeout=SEND_TIMEOUT)
        except ChatRefused:
            sender.refused.append(text)  # e.g. Redis down, or an old history: never stored
        except WaitTimeout:
            sender.unacked.append(text)
        else:
            sender.acked[text] = offset
        await asyncio.sleep(PACE)


async def note_rejoins(sender: Sender) -> None:
    """Count the client's rejoins (each time it has its name again after
    losing its connection), and note when the last one was."""
    client = sender.client
    while True:
        await client.wait_until(lambda: client.name is None, timeout=3600, what="a lost name")
        await client.wait_until(lambda: client.name is not None, timeout=3600,
                                what="the name back")
        sender.rejoins += 1
        sender.rejoined_at = time.monotonic()


def histories(sender: Sender) -> dict[str, list[tuple[int, str]]]:
    """(offset, text) of each public message as it came off the wire,
    repeats included, per history (chat id)."""
    chat = None
    seen: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for entry in sender.wire:
        if not entry.data or not isinstance(entry.data[0], dict):
            continue
        data = entry.data[0]
        if entry.event == "history":
            chat = data.get("chat")
        elif entry.event == "message" and "offset" in data:
            seen[chat].append((data["offset"], data["message"]))
    return seen


def describe(sender: Sender) -> str:
    client = sender.client
    return (f"{sender.name}: {client.state}, name {client.name}, chat {client.chat}, "
            f"offset {client.last_offset}, pending {client.pending[:3]}, "
            f"errors {client.errors[-3:]}, "
            f"last events {[(e.event, e.data) for e in sender.wire[-4:]]}")


async def settle(senders: list[Sender], last: int) -> None:
    for sender in senders:
        client = sender.client
        try:
            await client.wait_until(
                lambda: client.connected and client.name is not None and not client.pending
                and (client.last_offset or 0) >= last, timeout=SETTLE,
                what=f"{sender.name} joined, with nothing pending, at offset {last}")
        except WaitTimeout:
            acked = sum(len(s.acked) for s in senders)
            pytest.fail(f"not settled at offset {last} ({acked} acknowledged):\n"
                        + "\n".join(map(describe, senders)))


def check_history(wires: dict[str, list[tuple[int, str]]], acked: dict[str, int],
                  complete: bool) -> int:
    """Every acknowledged message in every client's history (``wires``:
    each client's (offset, text) of one chat, as received) once, at its
    offset; offsets 1..N in order, each text once. With ``complete`` (no
    send timed out) every offset is an acknowledged message. Returns N."""
    assert acked, "nothing was acknowledged"
    last = max(acked.values())
    for name, wire in wires.items():
        offsets = [offset for offset, _ in wire]
        assert offsets == list(range(1, len(offsets) + 1)), (
            f"{name}: offsets not 1..N once each, in order: {offsets}")
        assert len(offsets) >= last
        texts = [text for _, text in wire]
        assert len(set(texts)) == len(texts), f"{name}: a message stored twice"
        at = dict(wire)
        missing = {text: offset for text, offset in acked.items() if at.get(offset) != text}
        assert not missing, f"{name}: acknowledged but not in its history: {missing}"
    offsets = sorted(acked.values())
    assert len(set(offsets)) == len(offsets), "two acknowledged messages share an offset"
    if complete:
        # Nothing stored without its sender hearing so (a message stored
        # twice, or stored while refused, would leave an offset over).
        assert offsets == list(range(1, last + 1))
    return last


async def run_phase(senders: list[Sender], js: NodeSender, phase: str, fault,
                    seconds: float) -> dict[str, int]:
    """Everyone sends for ``seconds`` with ``fault()`` awaited in the middle;
    then the senders stop and wait for their last acknowledgements, and the
    first sends one more, after all of them (the Node.js client's
    acknowledgements are known only from its report)."""
    await js.command(f"send {phase}")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(keep_sending(s, stop, phase)) for s in senders]
    watchers = [asyncio.create_task(note_rejoins(s)) for s in senders]
    before = {s.name: set(s.acked) for s in senders}
    if fault is None:
        await asyncio.sleep(seconds)
    else:
        await asyncio.sleep(seconds / 2)  # sending meanwhile: the load the fault meets
        await fault()
        await asyncio.sleep(seconds / 2)
    stop.set()
    await asyncio.gather(*tasks, js.command("stop"))
    text = f"{senders[0].name} {phase} end"
    senders[0].acked[text] = await senders[0].client.send(text, timeout=SEND_TIMEOUT)
    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    for s in senders:
        assert set(s.acked) > before[s.name], f"{s.name} had nothing acknowledged in {phase}"
    return {text: offset for s in senders for text, offset in s.acked.items()
            if text not in before[s.name]}


async def test_a_killed_node_and_a_restarted_redis_lose_nothing(cluster, redis, senders):
    nodes, proxy = cluster
    started = time.monotonic()
    chat = senders[0].client.chat
    assert chat and all(s.client.chat == chat for s in senders)
    victim = next(node for node in nodes if node.address == senders[0].node)
    moved = [s for s in senders if s.node == victim.address]
    # The official Node.js client on the node that dies, too.
    used = {s.source for s in senders}
    for source in SOURCES:
        if source not in used and await node_of(proxy, source) == victim.address:
            break
    else:
        pytest.fail("no address left that hashes to the node to kill")
    js = await NodeSender.start(proxy.url, source, "js")
    try:
        await run_test(proxy, redis, senders, js, chat, victim, moved, started)
    finally:
        await js.kill()


async def run_test(proxy: Nginx, redis: RedisServer, senders: list[Sender], js: NodeSender,
                   chat: str, victim: Node, moved: list[Sender], started: float) -> None:
    names = sorted([s.name for s in senders] + [js.name])
    for s in senders:
        await s.client.wait_for_users(names=names)

    # -- phase one: SIGKILL a node while everyone sends ----------------------
    killed_at = 0.0

    async def kill() -> None:
        nonlocal killed_at
        victim.stop(signal.SIGKILL)
        killed_at = time.monotonic()

    acked = await run_phase(senders, js, "kill", kill, 6.0)
    await settle(senders, max(acked.values()))
    for s in moved:
        assert s.connects >= 2, f"{s.name} did not reconnect"
        assert await node_of(proxy, s.source) != victim.address
    # How: the dead node refused a connection, nginx left it out (max_fails=1)
    # and passed the request to the next node (proxy_next_upstream's default).
    assert f"upstream: \"http://{victim.address}/" in proxy.error_log()
    assert "upstream server temporarily disabled" in proxy.error_log()
    # No ghosts: the dead node's connections leave the lists (every name is
    # back, each once, from the surviving nodes).
    for s in senders:
        await s.client.wait_until(lambda c=s.client: sorted(c.users) == names, timeout=SETTLE,
                                  what=f"{s.name}'s users list without ghosts")

    # The dead node's users held their names until its heartbeat expired
    # (docs/scaling.md: within ttl + beat = 8 s): their clients' rejoins were
    # refused and asked again (every 2 s at most) until they had them.
    assert all(s.rejoins >= 1 for s in moved), [describe(s) for s in moved]
    assert not [e for s in senders for e in s.client.errors
                if "could not rejoin" in str(e.get("reason"))]
    names_back = max(s.rejoined_at for s in moved) - killed_at
    assert names_back < 8.0 + 2.0 + 1.0, f"names back only {names_back:.1f} s after the kill"

    # -- phase two: Redis restarts empty: a new history ----------------------
    # Between the phases, so that each acknowledgement belongs to one known
    # history (it carries no chat id; a message acknowledged just before
    # Redis went down but not yet read by the feeds is lost with it, as
    # docs/scaling.md says). The clients send again at once, while the nodes
    # are still finding the new Redis: refused ("send it again") until then.
    redis.restart()
    acked_two = await run_phase(senders, js, "redis", None, 4.0)
    await asyncio.gather(*(s.client.wait_until(lambda c=s.client: c.chat not in (None, chat),
                                               timeout=SETTLE, what="the new history")
                           for s in senders))
    new_chat = senders[0].client.chat
    assert all(s.client.chat == new_chat for s in senders)
    await settle(senders, max(acked_two.values()))
    for s in senders:
        await s.client.wait_until(lambda c=s.client: sorted(c.users) == names, timeout=SETTLE,
                                  what=f"{s.name}'s users list after Redis restarted (it was "
                                  f"{s.client.users} when the wait began)")
    report = await js.finish(new_chat, max(acked_two.values()))
    complete = not any(s.unacked for s in senders)
    acked.update(js.acked("kill"))
    acked_two.update(js.acked("redis"))
    wires = {s.name: histories(s)[chat] for s in senders} | {js.name: js.history(chat)}
    last_one = check_history(wires, acked, complete)
    wires = {s.name: histories(s)[new_chat] for s in senders} | {js.name: js.history(new_chat)}
    last_two = check_history(wires, acked_two, complete)
    assert report["connects"] >= 2, "the Node.js client did not reconnect"
    # The Node.js client leaves (it reported): no one else.
    for s in senders:
        await s.client.wait_until(lambda c=s.client: sorted(c.users) == sorted(
            n for n in names if n != js.name), timeout=SETTLE, what="js gone from the list")

    sent = sum(s.sent for s in senders) + len(report["acked"]) + len(report["refused"])
    refused = sum(len(s.refused) for s in senders) + len(report["refused"])
    unacked = sum(len(s.unacked) for s in senders)
    reconnections = sum(s.connects - 1 for s in senders) + report["connects"] - 1
    delivered = sum(len(m) for s in senders for m in histories(s).values()) + sum(
        1 for entry in report["wire"] if len(entry) == 3)
    print(f"\nfaults: {len(senders)} + 1 (Node.js) clients, sent {sent}, acknowledged "
          f"{len(acked)} + {len(acked_two)}, refused {refused}, timed out {unacked}, "
          f"delivered {delivered} (offsets {last_one} + {last_two}), reconnections "
          f"{reconnections}, rejoins {sum(s.rejoins for s in senders)}, "
          f"names back {names_back:.1f} s after the kill, {time.monotonic() - started:.1f} s")

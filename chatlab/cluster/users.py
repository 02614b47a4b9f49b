"""The users of every node, and names unique across them.

Each node keeps its own connections' names (``ChatNamespace.users``) and
also writes them to Redis, under the chat's prefix ``P``:

- ``P:users``: a hash from ``"NODE SID"`` to the name as typed;
- ``P:joined``: the same members, scored in join order (``P:joins`` counts);
- ``P:names``: a hash from each name's :func:`~chatlab.validation.name_key`
  to its ``"NODE SID"``: a name is claimed by one Lua script that refuses
  it while a live node's user holds it, so two nodes cannot both give it out;
- ``P:node:NODE``: the node's heartbeat, set every ``beat`` seconds to
  expire after ``ttl``.

The users list is every member of ``P:joined``, in join order. A change
(join, leave, a dead node swept) is published on the channel ``P:users``;
every node then reads the list afresh and sends it to its own clients.
One read and send at a time per node, and changes that come meanwhile
make one more, so the last list each client gets is the newest, and a
crowd joining at once costs each node a few lists, not one per join;
from ``crowd`` users on, at most one per ``interval`` seconds.

A node that dies (SIGKILL, a lost machine) stops beating; its heartbeat
key expires at most ``ttl`` after its last beat, and every node sweeps
each ``beat`` for members of nodes without one (removing them, and
announcing the change). So a dead node's users leave every list within
``ttl + beat`` seconds (8 s by default), and meanwhile their names can be
taken at once: a claim does not respect a dead node's. A node that stops
cleanly removes its users at once.

When Redis comes back empty (restarted with no persistence), or this
node's heartbeat expired (its event loop stalled past ``ttl``), the next
heartbeat finds its key gone (``SET ... GET``): the node claims its
connected users' names again, in the order they joined here, and tells
every node. So the list is whole again within ``beat`` seconds of Redis
answering. A name another node gave out meanwhile (a user who joined
first after the restart) is not taken back: the earlier user keeps it on
its own node but is missing from the list (logged). While Redis is down,
names cannot be claimed (``adduser`` is refused) and the list is not
updated.

Direct messages find their recipient through ``P:names`` and reach it on
whichever node it is through the Redis client manager.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
import socketio
from redis.exceptions import RedisError

from ..chat import ChatNamespace
from ..delivery import Delivery
from ..validation import Limits, name_key
from .feed import end
from .store import Unreachable

__all__ = ["ClusterNamespace", "ClusterUsers"]

logger = logging.getLogger("chatlab.cluster")

# KEYS: names, users, joined, joins. ARGV: name key, member, name, node key prefix.
CLAIM = """
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] then
  local node = string.match(owner, '^(%S+) ')
  if redis.call('EXISTS', ARGV[4] .. node) == 1
     and redis.call('HEXISTS', KEYS[2], owner) == 1 then
    return 0
  end
  redis.call('HDEL', KEYS[2], owner)
  redis.call('ZREM', KEYS[3], owner)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[4]), ARGV[2])
return 1
"""

# KEYS: names, users, joined. ARGV: name key, member.
RELEASE = """
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
"""

# KEYS: names, users, joined. ARGV: node key prefix. Returns how many went.
SWEEP = """
local alive = {}
local function live(member)
  local node = string.match(member, '^(%S+) ')
  if alive[node] == nil then alive[node] = redis.call('EXISTS', ARGV[1] .. node) end
  return alive[node] == 1
end
local gone = 0
for _, member in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not live(member) then
    redis.call('HDEL', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
    gone = gone + 1
  end
end
local names = redis.call('HGETALL', KEYS[1])
for i = 1, #names, 2 do
  if not live(names[i + 1]) then redis.call('HDEL', KEYS[1], names[i]) end
end
return gone
"""

# KEYS: joined, users. Returns the names in join order.
LIST = """
local names = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local name = redis.call('HGET', KEYS[2], member)
  if name then names[#names + 1] = name end
end
return names
"""


class ClusterUsers:
    """This node's part of the cluster-wide users list (see the module).

    :param client: a ``redis.asyncio.Redis`` with ``decode_responses=True``.
    :param node: this node's id (no spaces).
    :param beat: seconds between heartbeats and sweeps.
    :param ttl: seconds a node counts as alive after its last heartbeat.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, node: str, *,
                 beat: float = 2.0, ttl: float = 6.0, crowd: int = 100,
                 interval: float = 0.05) -> None:
        if not 0 < beat < ttl:
            raise ValueError("the heartbeat must be more often than the ttl")
        self.redis = client
        self.node = node
        self.beat = beat
        self.ttl = ttl
        self.crowd = crowd
        self.interval = interval
        self.channel = f"{prefix}:users"
        self.node_prefix = f"{prefix}:node:"
        self._keys = [f"{prefix}:{name}" for name in ("names", "users", "joined", "joins")]
        self._claim = client.register_script(CLAIM)
        self._release = client.register_script(RELEASE)
        self._sweep = client.register_script(SWEEP)
        self._list = client.register_script(LIST)
        self._names: list[str] = []
        self._mine: dict[str, str] = {}  # sid -> name key, of this node's joined users
        self._sending = False  # a read and send of the list is under way
        self._due = False  # a change came since that read began
        self._idle = asyncio.Event()  # no list being read or sent, none due
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.sio: socketio.AsyncServer | None = None
        self.namespace: ChatNamespace | None = None

    def member(self, sid: str) -> str:
        return f"{self.node} {sid}"

    def names(self) -> list[str]:
        """The names of the users of every node, in the order they joined
        (as last read from Redis)."""
        return list(self._names)

    async def start(self, sio: socketio.AsyncServer, namespace: ChatNamespace) -> None:
        self.sio, self.namespace = sio, namespace
        await self._heartbeat()
        await self._refresh()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beating()), loop.create_task(self._listening())]

    async def stop(self) -> None:
        """Stop beating; this node's users leave the list at once."""
        if self.sio is None:
            return  # never started
        for task in self._tasks:
            await end(task)
        self._tasks = []
        try:
            for sid in list(self._mine):
                await self._release_sid(sid)
            await self.redis.delete(self.node_prefix + self.node)
            await self.redis.publish(self.channel, self.node)
        except RedisError as exc:
            logger.warning("chatlab: could not remove this node's users (%s): "
                           "they go within %g s", exc, self.ttl + self.beat)

    async def claim(self, sid: str, name: str) -> bool:
        """Take ``name`` for the connection ``sid`` of this node: False if a
        user of a live node has it (or one whose name looks the same)."""
        key = name_key(name)
        names, users, joined, joins = self._keys
        try:
            taken = await self._claim(keys=[names, users, joined, joins],
                                      args=[key, self.member(sid), name, self.node_prefix])
        except RedisError:
            raise Unreachable() from None
        if taken:
            self._mine[sid] = key
        return bool(taken)

    async def find(self, name: str) -> tuple[str, str] | None:
        """The connection id of the user called ``name`` (or whose name looks
        the same) on any node, and the name as that user typed it."""
        names, users, _, _ = self._keys
        try:
            member = await self.redis.hget(names, name_key(name))
            found = None if member is None else await self.redis.hget(users, member)
        except RedisError:
            raise Unreachable() from None
        if member is None or found is None:
            return None
        return member.split(" ", 1)[1], found

    async def changed(self, sid: str) -> None:
        """The connection ``sid`` of this node joined or left: tell every
        node, and send the list to this node's clients."""
        assert self.namespace is not None
        if sid not in self.namespace.users and sid in self._mine:
            await self._release_sid(sid)
        await self.redis.publish(self.channel, self.node)
        await self._send()

    async def release(self, sid: str) -> None:
        """Let go of the name of this node's connection ``sid``, if it has one."""
        if sid in self._mine:
            await self._release_sid(sid)

    async def _release_sid(self, sid: str) -> None:
        key = self._mine.pop(sid)
        names, users, joined, _ = self._keys
        await self._release(keys=[names, users, joined], args=[key, self.member(sid)])

    async def _refresh(self) -> None:
        joined, users = self._keys[2], self._keys[1]
        self._names = await self._list(keys=[joined, users])

    async def _send(self) -> None:
        """Read the list and send it to this node's clients: at once, or,
        if a send is under way, once more after it."""
        assert self.sio is not None
        self._due = True
        if self._sending:
            return
        self._sending = True
        self._idle.clear()
        try:
            while self._due:
                self._due = False
                await self._refresh()
                await self.sio.emit("users", self.names(), ignore_queue=True)
                if len(self._names) >= self.crowd:
                    await asyncio.sleep(self.interval)  # a crowd: the next list waits
        finally:
            self._sending = False
            self._idle.set()

    async def sent(self) -> None:
        """Wait until this node has sent its clients the newest list."""
        await self._idle.wait()

    async def _heartbeat(self) -> bool:
        """Say this node is alive; True if it was not (or Redis forgot)."""
        before = await self.redis.set(self.node_prefix + self.node, "alive",
                                      px=int(self.ttl * 1000), get=True)
        return before is None

    async def _claim_again(self) -> None:
        """Claim this node's users' names again (see the module)."""
        assert self.namespace is not None
        names, users, joined, joins = self._keys
        for sid, key in list(self._mine.items()):
            name = self.namespace.users.get(sid)
            if name is None:
                continue
            if not await self._claim(keys=[names, users, joined, joins],
                                     args=[key, self.member(sid), name, self.node_prefix]):
                logger.warning("chatlab: %r was given to another user while this node's "
                               "heartbeat was lost; it is missing from the list", name)

    async def _beating(self) -> None:
        names, users, joined, _ = self._keys
        while True:
            try:
                forgotten = await self._heartbeat()
                if forgotten:
                    await self._claim_again()
                if await self._sweep(keys=[names, users, joined], args=[self.node_prefix]) \
                        or forgotten:
                    await self.redis.publish(self.channel, self.node)
                    await self._send()
            except RedisError as exc:
                logger.warning("chatlab: heartbeat failed (%s)", exc)
            await asyncio.sleep(self.beat)

    async def _listening(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._send()  # changes missed while not listening
                while True:
                    # A short wait at a time: redis-py's reads time out (5 s).
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("data") != self.node:
                        await self._send()
            except RedisError as exc:
                logger.warning("chatlab: users channel lost (%s); listening again", exc)
                await asyncio.sleep(self.beat)
            finally:
                await pubsub.aclose()


class ClusterNamespace(ChatNamespace):
    """The chat's handlers on one node of a cluster: names are claimed, and
    recipients looked up, across all nodes (see the module)."""

    def __init__(self, delivery: Delivery, directory: ClusterUsers, *,
                 limits: Limits = Limits(), token: str | None = None) -> None:
        super().__init__(delivery, limits=limits, token=token, announce_users=directory.changed)
        self.directory = directory
        self._claiming: set[str] = set()

    async def claim_name(self, sid: str, name: str) -> bool:
        if sid in self._claiming:
            return False  # an adduser already under way on this connection
        self._claiming.add(sid)
        try:
            if not await self.directory.claim(sid, name):
                return False
            if not self.server.manager.is_connected(sid, "/"):
                # It left while the claim was on its way: nothing will release it.
                await self.directory.release(sid)
                return False
            return True
        finally:
            self._claiming.discard(sid)

    async def find_user(self, name: str) -> tuple[str, str] | None:
        return await self.directory.find(name)

    def names(self) -> list[str]:
        return self.directory.names()

"""One chat across several servers ("nodes") that share one Redis.

``ChatServer(redis="redis://HOST:PORT/DB")`` (``chatlab serve --redis
URL``) runs one node. What each promise of the single server rests on:

- public messages: one offset each, cluster-wide, with no gap, and a
  message id stored once whichever node it reaches: one Lua script in
  Redis (:mod:`chatlab.cluster.store`);
- every client on every node gets them once each, in offset order, and a
  client that comes back to any node gets what it missed: each node's feed
  reads the Redis Stream in order (:mod:`chatlab.cluster.feed`), and replay
  reads the same store;
- room and direct messages reach recipients on any node: the server's
  client manager is python-socketio's ``AsyncRedisManager``, which passes
  each emit to every node over Redis pub/sub (with ``fast``, each node
  sends to its own connections as ``FanoutManager`` does, without a task
  per recipient);
- the users list shows the users of every node, and a name is taken once
  cluster-wide; a node that dies leaves no ghosts:
  :mod:`chatlab.cluster.users`.

While Redis is down, clients stay connected to their nodes, but what they
send is refused with an ``error`` saying Redis cannot be reached. When it
comes back, nodes reconnect by themselves; if it comes back empty (no
persistence), the history before is gone: the feeds start a new one and
tell their clients with a fresh ``history`` (:mod:`chatlab.cluster.feed`),
and the heartbeats claim the connected users' names again
(:mod:`chatlab.cluster.users`).

Every key starts with ``prefix`` (``chatlab`` by default), so a Redis
database can hold several chats. Nothing else in chatlab needs Redis.
:class:`LocalRedis` runs a throwaway redis-server for a lesson or a test
(:mod:`chatlab.cluster.local_redis`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
import socketio

from .._compat import stop_pubsub_manager
from ..fast.fanout import FanoutRedisManager
from .feed import Feed
from .local_redis import LocalRedis, RedisServerNotFound
from .store import RedisStore
from .users import ClusterNamespace, ClusterUsers

if TYPE_CHECKING:
    from ..chat_server import ChatServer

__all__ = ["Cluster", "ClusterNamespace", "ClusterUsers", "Feed", "LocalRedis",
           "RedisServerNotFound", "RedisStore"]


class Cluster:
    """What makes one ChatServer a node of a chat shared through Redis.

    :param url: the Redis server, ``redis://HOST:PORT/DB``.
    :param kept: how many public messages are kept.
    :param prefix: the start of every key and channel of this chat.
    :param beat: how often this node says it is alive (seconds).
    :param ttl: how long it counts as alive after its last beat.
    :param fanout: send to this node's connections without a task for each
        (:class:`chatlab.fast.fanout.FanoutRedisManager`).
    """

    def __init__(self, url: str, *, kept: int = 10_000, prefix: str = "chatlab",
                 beat: float = 2.0, ttl: float = 6.0, fanout: bool = False) -> None:
        self.url = url
        self.prefix = prefix
        self.node = uuid.uuid4().hex[:12]
        self.redis = aioredis.Redis.from_url(url, decode_responses=True)
        self.store = RedisStore(self.redis, prefix, kept=kept)
        self.users = ClusterUsers(self.redis, prefix, self.node, beat=beat, ttl=ttl)
        manager = FanoutRedisManager if fanout else socketio.AsyncRedisManager
        self.manager = manager(url, channel=f"{prefix}:socketio")
        self.feed: Feed | None = None
        self.stopped = False  # for good: its Redis connections are closed

    async def start(self, chat: "ChatServer") -> None:
        """Start the feed and the heartbeat (once ``chat.delivery`` is open)."""
        if self.feed is None:
            self.feed = Feed(self.store, chat.delivery)
            self.feed.start()
            await self.users.start(chat.sio, chat.namespace)

    def explain(self, error: BaseException) -> None:
        """Raise a ``ConnectionError`` naming this chat's Redis if ``error``
        came from not reaching it (redis-py's own names only the address)."""
        if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
            raise ConnectionError(
                f"cannot reach the chat's Redis at {self.url} ({error}); is redis-server "
                f"running there? (see docs/scaling.md)") from error

    async def stop(self) -> None:
        """Stop this node's part: its users leave every list at once."""
        if self.stopped:
            return
        self.stopped = True
        if self.feed is not None:
            await self.feed.stop()
            self.feed = None
        await self.users.stop()
        await stop_pubsub_manager(self.manager)
        await self.redis.aclose()


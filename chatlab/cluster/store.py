"""The messages of a chat that several servers share, in Redis.

The same interface as :class:`chatlab.store.MessageStore`, so that
:class:`chatlab.delivery.Delivery` uses either. Three keys hold a chat,
under a prefix (``chatlab`` by default):

- ``PREFIX:chat``: the chat's id, made by the first node that starts;
- ``PREFIX:offset``: the last offset handed out (INCR);
- ``PREFIX:messages``: a Redis Stream, one entry per message, whose entry
  id is ``OFFSET-0``: the stream's order is the offsets' order, and each
  node's feed (:mod:`chatlab.cluster.feed`) reads it from where it is. The
  entry has one field, ``m``: the JSON array ``[user, sender, text,
  message id]`` (one field, not four: every node parses every entry, and
  that cost is per field);
- ``PREFIX:ids``: a hash from each message id to its offset.

:meth:`RedisStore.add` is one Lua script, so Redis runs it whole, with no
other command in between: look the message id up (a resend, perhaps to
another node, returns the first one), take the next offset, append the
entry, note its id, and let the oldest go beyond ``kept``. Offsets are
therefore 1, 2, 3, ... cluster-wide with no gap, and a message id is
stored once, whichever node gets it, for as long as its message is kept.

A node sends the scripts of the messages it is given in the order they
came, on one connection, those that came meanwhile together (one pipeline,
one round trip): so one sender's messages get offsets in the order it sent
them (spread over a pool's connections, two could swap), and a busy node
pays one round trip for many messages.

Redis down, and Redis restarted. While Redis cannot be reached, a message
sent to any node is refused with an ``error`` saying so (its sender can
send it again later under the same message id): nothing is stored, so no
client gets it. What a restart loses depends on Redis's own persistence
(AOF or RDB snapshots): without it, every message, the offsets and the
chat id. The script is given the chat id this node has (``current``) and
refuses a message when ``PREFIX:chat`` is gone or another: offsets of the
old history are never mixed with a new one. Each node's feed sees the
change at its next read (:meth:`RedisStore.read` reads the chat id with
the messages) and starts the new history: the first node to ask makes its
id, offsets start again at 1 (see :mod:`chatlab.cluster.feed`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

from ..store import StoredMessage
from ..validation import Refused

__all__ = ["HistoryLost", "RedisStore", "Unreachable"]


class Unreachable(Refused):
    """Redis cannot be reached: the message was not stored."""

    def __init__(self) -> None:
        super().__init__("the chat's store (Redis) cannot be reached, so this was not "
                         "done; try again in a moment")


class HistoryLost(Refused):
    """Redis lost the chat's history (it restarted with nothing saved)."""

    def __init__(self) -> None:
        super().__init__("the chat's history was lost (its Redis restarted) and a new one "
                         "is starting, so the message was not sent; send it again in a moment")

# KEYS: offset, messages, ids, chat. ARGV: user, sender, text, message id
# ("" for none), kept, chat id ("" for any). Returns {1, offset} for a new
# message (its sender has the rest), {0, offset, entry} for a message id
# stored before, or {-1} when the chat id is not ARGV[6] (a new history).
ADD = """
if ARGV[6] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[6] then
  return {-1}
end
local mid = ARGV[4]
if mid ~= '' then
  local old = redis.call('HGET', KEYS[3], mid)
  if old then
    local entry = redis.call('XRANGE', KEYS[2], old .. '-0', old .. '-0')[1]
    if entry then
      return {0, tonumber(old), entry[2][2]}
    end
  end
end
local offset = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], offset .. '-0', 'm', cjson.encode({ARGV[1], ARGV[2], ARGV[3], mid}))
if mid ~= '' then redis.call('HSET', KEYS[3], mid, offset) end
local kept = tonumber(ARGV[5])
local over = redis.call('XLEN', KEYS[2]) - kept
if over > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', over)) do
    local gone = cjson.decode(entry[2][2])[4]
    if gone ~= '' then redis.call('HDEL', KEYS[3], gone) end
    redis.call('XDEL', KEYS[2], entry[1])
  end
end
return {1, offset}
"""


def _message(entry_id: str, fields: dict[str, str]) -> StoredMessage:
    user, sender, text, _ = json.loads(fields["m"])
    return StoredMessage(int(entry_id.split("-", 1)[0]), user, sender, text)


class RedisStore:
    """Public chat messages in Redis, shared by every node of a chat.

    :param client: a ``redis.asyncio.Redis`` made with ``decode_responses=True``.
    :param prefix: the chat's keys start with ``prefix + ":"``.
    :param kept: how many messages are kept (the oldest go first).
    """

    shared = True  # other servers add to it too

    def __init__(self, client: aioredis.Redis, prefix: str = "chatlab", *,
                 kept: int = 10_000) -> None:
        if isinstance(kept, bool) or not isinstance(kept, int) or kept < 1:
            raise ValueError("kept must be a whole number of messages, 1 or more")
        self.redis = client
        self.prefix = prefix
        self.kept = kept
        self.current: str | None = None  # the chat id this node has
        self.keys = {name: f"{prefix}:{name}" for name in ("chat", "offset", "messages", "ids")}
        self._add_keys = [self.keys[name] for name in ("offset", "messages", "ids", "chat")]
        self._script: str | None = None  # the sha of ADD, loaded in this Redis
        # Messages waiting for the next pipeline: their script's arguments,
        # and where their answer goes.
        self._waiting: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def chat_id(self) -> str:
        """This history's id (made by the first node that asked)."""
        await self.redis.set(self.keys["chat"], uuid.uuid4().hex, nx=True)
        self.current = await self.redis.get(self.keys["chat"])
        self._script = await self.redis.script_load(ADD)
        return self.current

    async def add(self, user: str, sender: str, text: str,
                  message_id: str | None = None) -> tuple[StoredMessage, bool]:
        """Store a message; return it with its offset, and whether it is new
        (False: ``message_id`` was stored before, and that message returns).

        :raises Unreachable: Redis cannot be reached.
        :raises HistoryLost: the history this node has is gone (see the module).
        """
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(
            ([user, sender, text, message_id or "", self.kept, self.current or ""], answer))
        if self._sending is None or self._sending.done():
            self._sending = asyncio.ensure_future(self._send())
        new, *rest = await answer
        if new == -1:
            raise HistoryLost()
        if new == 1:
            return StoredMessage(int(rest[0]), user, sender, text), True
        offset, entry = rest
        first_user, first_sender, first_text, _ = json.loads(entry)
        return StoredMessage(int(offset), first_user, first_sender, first_text), False

    async def _send(self) -> None:
        """Run the waiting messages' scripts, in order, a pipeline at a
        time, until none is waiting; answer each."""
        reloaded = False
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                if self._script is None:
                    self._script = await self.redis.script_load(ADD)
                pipe = self.redis.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.evalsha(self._script, len(self._add_keys), *self._add_keys, *args)
                answers: list[Any] = await pipe.execute(raise_on_error=False)
            except (ConnectionError, TimeoutError, OSError):
                answers = [Unreachable() for _ in batch]
            except Exception as exc:  # answered to each sender, not lost in this task
                answers = [exc for _ in batch]
            if not reloaded and any(isinstance(a, NoScriptError) for a in answers):
                # Redis restarted and forgot the script: load it, run them again
                # (the script itself refuses them if the history went too).
                self._script, reloaded = None, True
                self._waiting = batch + self._waiting
                continue
            for (_, answer), result in zip(batch, answers):
                if answer.done():
                    continue  # its sender went away
                if isinstance(result, BaseException):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)

    def dropped_until(self, last: int) -> int:
        """The newest offset let go of, when ``last`` is the newest: the
        ``kept`` newest are kept, numbered with no gap."""
        return max(0, last - self.kept)

    async def last_offset(self) -> int:
        """The newest message's offset (0 when there is none)."""
        return int(await self.redis.get(self.keys["offset"]) or 0)

    async def after(self, offset: int, limit: int | None = None) -> list[StoredMessage]:
        """The messages with a greater offset than ``offset``, oldest first:
        all of them, or the first ``limit``."""
        entries = await self.redis.xrange(self.keys["messages"], f"({offset}-0", "+",
                                          count=limit)
        return [_message(*entry) for entry in entries]

    async def read(self, offset: int, *, count: int,
                   block_ms: int) -> tuple[str | None, list[StoredMessage]]:
        """The chat id, and the next messages after ``offset`` (up to
        ``count``), waiting up to ``block_ms`` for one to come when there is
        none: the feed's read. One round trip, the id read first: the
        messages are that history's (a restart in between breaks the
        connection, and the whole read is made again)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys["chat"])
        pipe.xread({self.keys["messages"]: f"{offset}-0"}, count=count, block=block_ms)
        chat, answer = await pipe.execute()
        if not answer:
            return chat, []
        # redis-py answers a list of [stream, entries] (RESP2) or a dict (RESP3).
        streams = answer.values() if isinstance(answer, dict) else [e for _, e in answer]
        return chat, [_message(*entry) for entries in streams for entry in entries]

    async def count(self) -> int:
        return await self.redis.xlen(self.keys["messages"])

    async def close(self) -> None:
        """Answer the messages on their way (the cluster closes the Redis
        client)."""
        if self._sending is not None:
            await asyncio.wait({self._sending}, timeout=10)

    def __repr__(self) -> str:
        return f"<RedisStore {self.prefix!r}>"

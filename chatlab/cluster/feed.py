"""Each node's feed: the public messages of the whole cluster, in offset order.

A node does not send a public message to its clients when it stores it
(:meth:`chatlab.delivery.Delivery.publish` only stores, in a cluster).
Every node, the storing one included, runs one feed: a task that reads
the Redis Stream of the messages (:mod:`chatlab.cluster.store`) with
``XREAD BLOCK`` from the last offset it handed on, and passes what it
reads to :meth:`~chatlab.delivery.Delivery.deliver`, which sends it to
this node's live room under the delivery's order lock. The stream's order
is the offsets' order, so every client on every node gets the public
messages in offset order, each once.

The hand-over from a (re)connecting client's replay to the live room is
the single server's, with the feed's position as ``last``: a replay sends
stored messages up to it, and steps into the live room holding the same
lock the feed holds while it sends, so no message falls between the two
or comes twice. A sender's acknowledgement comes once the message is
stored and this node's feed has sent it.

When Redis cannot be reached the feed waits (0.1 s, doubling up to 5 s)
and reads on from where it was: nothing is skipped. Meanwhile this node's
clients stay connected; messages they send are refused with an ``error``
saying so (:mod:`chatlab.cluster.store`), and room and direct messages to
other nodes are lost (python-socketio's Redis manager reconnects by
itself, backing off).

When Redis comes back empty (restarted with no persistence), the chat id
each read returns is gone or another: the feed starts the new history.
It takes the new chat id (the first node to ask makes it), and, holding
the delivery's order lock, sets its position to 0 and sends every client
in this node's live room a fresh ``history`` ``{chat: NEW, after: 0,
last: 0}``: a client then takes the new chat id and offsets from 1, just
as after reconnecting to a server with another history (a client that
reconnects later sends its old chat id, and gets the new history's
recent messages). The history before the restart is gone. A client whose
own history was being sent when the restart came gets the new history
when it next connects. The users list is rebuilt by the nodes'
heartbeats (:mod:`chatlab.cluster.users`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ConnectionError, TimeoutError

from ..delivery import PAGE, Delivery
from .store import RedisStore

__all__ = ["Feed", "end"]

logger = logging.getLogger("chatlab.cluster")


async def end(task: "asyncio.Task[Any] | None") -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if it lets a
    cancellation go by (on Python 3.11 redis-py's timed reads, made with
    ``wait_for``, can swallow one that comes as their timeout ends)."""
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=0.5)


class Feed:
    """Reads ``store``'s messages after ``delivery``'s last offset and
    delivers them, until :meth:`stop`.

    :param block: how long one read waits for a message (seconds), well
        under the Redis client's read timeout (redis-py: 5 s).
    """

    def __init__(self, store: RedisStore, delivery: Delivery, *, block: float = 1.0) -> None:
        self.store = store
        self.delivery = delivery
        self.block = block
        self._task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        """The newest offset this node's live room has had."""
        return self.delivery._last

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await end(self._task)
        self._task = None

    async def _run(self) -> None:
        pause = 0.1
        while True:
            try:
                chat, messages = await self.store.read(self.position, count=PAGE,
                                                       block_ms=int(self.block * 1000))
                if chat != self.store.current:
                    await self._new_history()
                    continue
            except (ConnectionError, TimeoutError, OSError) as exc:
                logger.warning("chatlab: cannot read the messages from Redis (%s); "
                               "trying again in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            if messages:
                await self.delivery.deliver(messages)

    async def _new_history(self) -> None:
        """Redis lost the history (see the module): start the new one."""
        chat = await self.store.chat_id()
        await self.delivery.restart(chat)
        logger.warning("chatlab: the chat's history in Redis was lost (Redis restarted?); "
                       "a new one starts: %s", chat)

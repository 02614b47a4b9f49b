"""Checks for lesson 10 · Scaling out.

The exercise: a function ``make_node(redis_url)`` that returns a new
``socketio.AsyncServer``, one node of several that share the Redis at
``redis_url``, whose ``message(sid, text)`` sends the event ``message``
with ``text`` to every client of every node, the sender too.

:func:`check_node` starts its own throwaway redis-server, serves two nodes
made by the learner's function on 127.0.0.1 (A and B), connects Ann to A,
Bob and Cy to B, and checks that a message sent on either node reaches all
three once each.

How the check knows a message is *not* coming to a node: python-socketio's
pub/sub managers handle what they read from Redis in order, so once a
marker the check emits on the sending node (through that node's own
manager, after the learner's handler has finished) has reached the other
node's clients, whatever the handler sent before has reached them too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import redis.asyncio as aioredis
import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from .. import _compat
from ..cluster.local_redis import LocalRedis, RedisServerNotFound
from ..recording import RecordingClient
from ..waiting import WaitTimeout
from . import ExerciseFailed, passed
from . import harness
from .harness import CheckRun

__all__ = ["check_node"]

EXPECTED = ("a message sent on either node reaches every client of both nodes, the sender "
            "too, once each")

WHAT = "the node that shares its emits through Redis"

MARKER = "chatlab-check-marker"

SHARE = ("give the AsyncServer a client manager that passes every emit through Redis: "
         "`socketio.AsyncServer(async_mode=\"aiohttp\", "
         "client_manager=socketio.AsyncRedisManager(redis_url))`")


class NodeCheckRun(CheckRun):
    """A :class:`CheckRun` for a node whose client manager listens to Redis
    in a task that runs as long as the node."""

    def started(self) -> None:
        """Wait no more for the tasks running now: once the first client is
        connected, that is the manager's listener, which never ends (the
        connect handlers, if any are still running, end by themselves)."""
        self._lingering |= self._tasks


def _name_of(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", "make_node")


def _bound(make_node: Callable[[str], Any], url: str) -> Callable[[], Any]:
    """``make_node`` with the URL given, as the harness serves it."""
    if not callable(make_node):
        return make_node  # the harness says what is wrong with it

    def make_server() -> Any:
        try:
            return make_node(url)
        except TypeError as exc:
            if "positional argument" not in str(exc):
                raise
            raise ExerciseFailed(
                f"{_name_of(make_node)}(redis_url) was called with the Redis URL and "
                f"raised TypeError: {exc}",
                hint=f"take the URL as the function's parameter: "
                     f"`def {_name_of(make_node)}(redis_url):`") from None

    make_server.__name__ = _name_of(make_node)
    return make_server


async def _shared_by_both(url: str) -> bool:
    """Whether two subscribers (the nodes' listeners) listen on one channel
    of the Redis at ``url``, within ``harness.WAIT`` seconds. A node's
    manager subscribes in a task of its own once its first client connects,
    and Redis has no way to tell when: ask it until then."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        deadline = time.monotonic() + harness.WAIT
        while True:
            channels = await client.pubsub_channels()
            counts = dict(await client.pubsub_numsub(*channels)) if channels else {}
            if any(count >= 2 for count in counts.values()):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


def _not_shared(make_node: Callable[..., Any], sio: socketio.AsyncServer) -> ExerciseFailed:
    """What to say when the two nodes do not both listen on the check's Redis."""
    manager = getattr(sio, "manager", None)
    name = _name_of(make_node)
    if isinstance(manager, AsyncPubSubManager):
        return ExerciseFailed(
            f"the nodes {name}() made have a {type(manager).__name__}, but they do not "
            f"both listen on the Redis at the URL the check gave {name}()",
            hint="pass that URL on: `socketio.AsyncRedisManager(redis_url)` (not another "
                 "address, and without write_only=True)")
    return ExerciseFailed(
        f"Bob and Cy, on node B, cannot hear anything sent on node A: the nodes {name}() "
        f"made send only to their own clients", hint=SHARE)


async def _send(run: CheckRun, sender: RecordingClient, text: str,
                others: tuple[CheckRun, list[RecordingClient]]) -> None:
    """``sender`` sends ``message`` ``text`` through its node (``run``);
    return once every client of both nodes has received all that the
    handler sent (see the module's docstring)."""
    await sender.emit("message", text)
    await run.settle()
    run.raise_handler_errors()
    other, listeners = others
    assert run.server is not None
    seen = {client.name: client.log.counts["in", MARKER] for client in listeners}
    # After the handler's emits, through the same manager and Redis channel.
    await run.server.sio.emit(MARKER)
    for client in listeners:
        try:
            await client.wait_for(MARKER, count=seen[client.name] + 1, timeout=harness.WAIT)
        except WaitTimeout:
            raise ExerciseFailed(
                f"what the check sent to every client through {sender.name}'s node did "
                f"not reach {client.name} on the other node") from None
    await other.settle()
    other.raise_handler_errors()


def _report(text: str, sender: RecordingClient, heard: dict[str, int], node_of: dict[str, str]
            ) -> None:
    """Fail unless everyone heard ``text`` exactly once."""
    if all(count == 1 for count in heard.values()):
        return
    missing = [name for name, count in heard.items() if count == 0]
    doubled = [name for name, count in heard.items() if count > 1]
    said = f"{sender.name} sent 'message' {text!r} on node {node_of[sender.name]}"
    if doubled:
        raise ExerciseFailed(
            f"{said}, and {', '.join(doubled)} received it more than once",
            hint="emit once: the client manager passes that one emit on to every node "
                 "(do not emit again for the other node)")
    if missing == [sender.name]:
        raise ExerciseFailed(
            f"{said}; everyone else received it, but not {sender.name}",
            hint="send it to the sender too: no `skip_sid`")
    raise ExerciseFailed(
        f"{said}; {', '.join(missing)} received nothing",
        hint="send 'message' to every client: `await sio.emit(\"message\", text)`, "
             "without `to=` or `room=`")


async def check_node(make_node: Callable[[str], socketio.AsyncServer]) -> None:
    """Check the lesson 10 exercise: ``make_node(redis_url)`` returns a new
    ``AsyncServer`` whose ``message(sid, text)`` sends ``message`` ``text``
    to every client of every node that shares the Redis at ``redis_url``.

    Prints ``✓ passed: …`` when right, raises :class:`ExerciseFailed`
    saying what is wrong, prints ``– not tried yet: …`` while a handler (or
    ``make_node``) still raises ``NotImplementedError``. Where redis-server
    is not installed, prints how to get it instead of checking.
    """
    redis = LocalRedis(name="check-scaling")
    try:
        redis.start()
    except RedisServerNotFound as missing:
        print(f"– not checked: {missing}.")
        return
    nodes: list[socketio.AsyncServer] = []
    try:
        make_server = _bound(make_node, redis.url)
        async with NodeCheckRun("check-scaling-a", WHAT, expected=EXPECTED) as run_a:
            nodes.append((await run_a.serve(make_server)).sio)
            async with NodeCheckRun("check-scaling-b", WHAT, expected=EXPECTED) as run_b:
                nodes.append((await run_b.serve(make_server)).sio)
                ann = await run_a.connect("Ann")
                bob, cy = await run_b.connect("Bob"), await run_b.connect("Cy")
                run_a.started()
                run_b.started()
                node_of = {"Ann": "A", "Bob": "B", "Cy": "B"}
                everyone = (ann, bob, cy)
                unshared = None
                if not all(isinstance(getattr(sio, "manager", None), AsyncPubSubManager)
                           for sio in nodes) or not await _shared_by_both(redis.url):
                    unshared = _not_shared(make_node, nodes[0])

                first = "Hello from node A!"
                if unshared is not None:
                    # The handler is tried all the same: an untouched one is
                    # "not tried yet", whatever else is missing.
                    await ann.emit("message", first)
                    await run_a.settle()
                    run_a.raise_handler_errors()
                    raise unshared
                await _send(run_a, ann, first, (run_b, [bob, cy]))
                _report(first, ann, _heard(everyone, first), node_of)

                second = "And hello back from node B."
                await _send(run_b, bob, second, (run_a, [ann]))
                _report(second, bob, _heard(everyone, second), node_of)
                passed(EXPECTED)
    finally:
        for sio in nodes:
            manager = getattr(sio, "manager", None)
            if isinstance(manager, AsyncPubSubManager):
                await _compat.stop_pubsub_manager(manager)
        redis.stop()


def _heard(clients: tuple[RecordingClient, ...], text: str) -> dict[str, int]:
    return {client.name: client.received("message").count((text,)) for client in clients}

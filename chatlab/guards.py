"""What stands between a client and the chat's handlers.

:class:`GuardedNamespace` is a python-socketio class-based namespace whose
``on_<event>`` handlers may raise :class:`~chatlab.validation.Refused`.
Before a handler runs, it checks that the event is one of the protocol's
(:mod:`chatlab.protocol`) with the arguments it takes, and that the
connection is within its rate limit (:mod:`chatlab.ratelimit`). A refusal,
from here or from the handler, sends ``error`` ``{event, reason}`` to the
sender alone and is the acknowledgement when one was asked for; it changes
nothing. It also lets in only clients with the right token, when there is
one.

It does all this in ``trigger_event``, the method python-socketio documents
for custom dispatching, so the handlers stay as plain as the lessons'.
"""

from __future__ import annotations

import hmac
from typing import Any

import socketio

from .protocol import CLIENT_EVENTS, argument_problem
from .ratelimit import TokenBucket, Unlimited, bucket_for
from .validation import Limits, Refused, describe

__all__ = ["GuardedNamespace", "TOKEN_NEEDED", "TOKEN_WRONG"]

# The messages of a connection refused for its token; the page tells them
# apart by the ``data`` sent with them ({"token": "missing" | "wrong"}).
TOKEN_NEEDED = "this chat needs a token"
TOKEN_WRONG = "wrong token"

# python-socketio hands a client's event named like these to the handler
# the server keeps for the connection itself: a client sending "disconnect"
# would vanish from the users list while connected, and one sending
# "connect" would reset its rate limit.
RESERVED_EVENTS = frozenset({"connect", "disconnect"})


class GuardedNamespace(socketio.AsyncNamespace):
    """A namespace whose handlers may refuse, with a rate limit and a token.

    :param limits: how fast each connection may send events.
    :param token: when given, a client must connect with ``auth={"token":
        token}``.
    """

    def __init__(self, namespace: str = "/", *, limits: Limits = Limits(),
                 token: str | None = None) -> None:
        super().__init__(namespace)
        bucket_for(limits.events_per_second, limits.burst)  # a bad limit fails here
        self.limits = limits
        self.token = token
        # One bucket per connection let in, dropped when it leaves, so the
        # dict never outgrows the connections.
        self._buckets: dict[str, TokenBucket | Unlimited] = {}

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        sid = args[0] if args else None
        if self._from_the_connection(event, sid):
            return await super().trigger_event(event, *args)
        try:
            self._check(event, sid, args[1:])
            return await super().trigger_event(event, *args)
        except Refused as refusal:
            return await self.refuse(sid, event if isinstance(event, str) else None, refusal)

    def _from_the_connection(self, event: Any, sid: Any) -> bool:
        # The real connect comes before the connection has a bucket; the
        # real disconnect once python-socketio no longer counts it.
        if event == "connect":
            return sid not in self._buckets
        if event == "disconnect":
            return not self.server.manager.is_connected(sid, self.namespace)
        return False

    def _check(self, event: Any, sid: str, args: tuple[Any, ...]) -> None:
        if not isinstance(event, str):
            raise Refused(f"an event name must be a string, not {describe(event)}")
        if event in RESERVED_EVENTS:
            raise Refused(f"{event!r} is reserved for the connection itself; "
                          f"a client may not send it")
        self._check_rate(sid)
        spec = CLIENT_EVENTS.get(event)
        if spec is None:
            raise Refused(f"unknown event {event!r}; the chat understands "
                          f"{', '.join(CLIENT_EVENTS)}")
        problem = argument_problem(spec, args)
        if problem is not None:
            raise Refused(problem)

    def _check_rate(self, sid: str) -> None:
        bucket = self._buckets.get(sid)
        if bucket is None:
            # Only after disconnect (handlers run in tasks of their own):
            # the connection is gone, so there is nobody left to act for.
            raise Refused("this connection has closed")
        if not bucket.take():
            wait = round(max(bucket.retry_after(), 0.01), 2)
            raise Refused(
                f"too fast: at most {self.limits.events_per_second:g} events a second "
                f"(bursts of {self.limits.burst}); try again in {wait:.2f} s",
                retry_after=wait)

    async def refuse(self, sid: str, event: str | None, refusal: Refused) -> dict[str, Any]:
        """Tell the sender alone why its event was refused; the payload is
        also the acknowledgement."""
        payload: dict[str, Any] = {"event": event, "reason": refusal.reason}
        if refusal.retry_after is not None:
            payload["retryAfter"] = refusal.retry_after  # seconds: it may be sent again then
        await self.emit("error", payload, to=sid)
        return payload

    def check_token(self, auth: Any) -> None:
        """Refuse a connection without the right token, when there is one."""
        if self.token is None:
            return
        given = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(given, str) or not given:
            raise socketio.exceptions.ConnectionRefusedError(TOKEN_NEEDED, {"token": "missing"})
        # Compared in constant time, so the answer's timing gives away
        # nothing about how much of a guess was right.
        # "surrogatepass": a lone surrogate is a wrong token, not a crash.
        if not hmac.compare_digest(
                given.encode("utf-8", "surrogatepass"), self.token.encode("utf-8")):
            raise socketio.exceptions.ConnectionRefusedError(TOKEN_WRONG, {"token": "wrong"})

    def admit(self, sid: str) -> None:
        """Let a connection in (last in the connect handler, once nothing
        can refuse it): it gets a rate limit of its own."""
        self._buckets[sid] = bucket_for(self.limits.events_per_second, self.limits.burst)

    @property
    def admitted(self) -> int:
        """How many connections are let in and not yet gone."""
        return len(self._buckets)

    def release(self, sid: str) -> None:
        """Forget a connection that left (from the disconnect handler)."""
        self._buckets.pop(sid, None)

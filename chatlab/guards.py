"""What stands between a client and the chat's handlers.

:class:`GuardedNamespace` is a python-socketio class-based namespace whose
``on_<event>`` handlers may raise :class:`~chatlab.validation.Refused`.
Before a handler runs, it checks that the event is one of the protocol's
(:mod:`chatlab.protocol`) with the arguments it takes. A refusal, from here
or from the handler, sends ``error`` ``{event, reason}`` to the sender
alone and is the acknowledgement when one was asked for; it changes
nothing. A refusal repeats at most :data:`ECHO` characters of an event's
name.

Each connection also has a rate limit (:class:`chatlab.ratelimit.Allowance`).
On the chat server it is judged before an event is even decoded
(:func:`chatlab.hardening.gate_events`): an event over it is refused once
per wait, with ``retryAfter``, and those sent before then are dropped
unanswered; a connection that goes on regardless is closed. Without that
gate, this namespace judges the rate itself, the same way, after decoding.

It also lets in only clients with the right token, when there is one, and
slows down an address that keeps sending wrong ones
(:class:`chatlab.ratelimit.Lockout`).

It does all this in ``trigger_event``, the method python-socketio documents
for custom dispatching, so the handlers stay as plain as the lessons'.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
import math
from typing import Any, Protocol

import socketio

from .hosts import client_address
from .protocol import CLIENT_EVENTS, argument_problem
from .ratelimit import Allowance, Unlimited, Verdict, Lockout, allowance_for
from .validation import Limits, Refused, describe

__all__ = [
    "AddressRefused",
    "ECHO",
    "FLOOD_LOCKED",
    "GuardedNamespace",
    "TOKEN_LOCKED",
    "TOKEN_NEEDED",
    "TOKEN_WRONG",
    "TokenRefused",
    "echo",
]

logger = logging.getLogger("chatlab")

# The messages of a connection refused for its token; the page tells them
# apart by the ``data`` sent with them ({"token": "missing" | "wrong"}).
# TOKEN_LOCKED is sent with {"token": "wrong", "retryAfter": seconds}.
TOKEN_NEEDED = "this chat needs a token"
TOKEN_WRONG = "wrong token"
TOKEN_LOCKED = "too many wrong tokens; try again in {seconds} s"
# The message of a connect from an address whose connection was closed for
# flooding, sent with {"retryAfter": seconds}.
FLOOD_LOCKED = ("this address's last connection was closed for flooding; "
                "try again in {seconds} s")

# python-socketio hands a client's event named like these to the handler
# the server keeps for the connection itself: a client sending "disconnect"
# would vanish from the users list while connected, and one sending
# "connect" would reset its rate limit.
RESERVED_EVENTS = frozenset({"connect", "disconnect"})

#: The most characters of a client's event name that a refusal repeats (a
#: 60 KB name was once echoed twice in a 120 KB acknowledgement).
ECHO = 32

# The address the connect now being handled came from, for check_token():
# set around the connect handler, which calls it.
_connecting_from: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chatlab_connecting_from", default=None)


def echo(name: str) -> str:
    """A client's event name as a refusal repeats it: the first
    :data:`ECHO` characters, and "…" when there were more."""
    return name if len(name) <= ECHO else name[:ECHO] + "…"


class TokenRefused(socketio.exceptions.ConnectionRefusedError):
    """A connection refused for its token: missing, wrong, or from an
    address locked out for sending too many wrong ones."""


class AddressRefused(socketio.exceptions.ConnectionRefusedError):
    """A connection refused for its address: locked out for a while after
    its connection was closed for flooding."""


class Gate(Protocol):
    """What judges a namespace's events before they are decoded
    (:class:`chatlab.hardening.EventGate`)."""

    def token_refused(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """A connect was refused for its token: close its transport."""

    def forget(self, sid: str) -> None:
        """The connection ``sid`` has left."""


class GuardedNamespace(socketio.AsyncNamespace):
    """A namespace whose handlers may refuse, with a rate limit and a token.

    :param limits: how fast each connection may send events.
    :param token: when given, a client must connect with ``auth={"token":
        token}``.

    ``gate`` is set by :func:`chatlab.hardening.gate_events`, which then
    judges the rate limit before decoding; ``wrong_tokens`` counts the
    wrong tokens of each address.
    """

    def __init__(self, namespace: str = "/", *, limits: Limits = Limits(),
                 token: str | None = None) -> None:
        super().__init__(namespace)
        allowance_for(limits.events_per_second, limits.burst)  # a bad limit fails here
        self.limits = limits
        self.token = token
        self.gate: Gate | None = None
        self.wrong_tokens = Lockout()
        # An address whose connection was closed for flooding is refused for
        # 2 s, then 4 s, ... up to 5 minutes: reconnecting at once for a
        # fresh burst (and a fresh history) cost the others more than the
        # flood itself.
        self.flooded = Lockout(free=1, first=2.0, longest=300.0, forget=900.0)
        # One allowance per connection let in, dropped when it leaves, so
        # the dict never outgrows the connections.
        self._allowances: dict[str, Allowance | Unlimited] = {}

    async def trigger_event(self, event: Any, *args: Any) -> Any:
        sid = args[0] if args else None
        if event == "connect" and sid not in self._allowances:
            return await self._connect(*args)  # the real connect: not yet let in
        if event == "disconnect" and not self.server.manager.is_connected(sid, self.namespace):
            # The real disconnect, once python-socketio no longer counts it.
            return await super().trigger_event(event, *args)
        try:
            self._check(event, sid, args[1:])
            return await super().trigger_event(event, *args)
        except Refused as refusal:
            return await self.refuse(sid, event if isinstance(event, str) else None, refusal)
        except _Dropped:
            return self.server.not_handled  # no acknowledgement
        except _Flooding:
            environ = self.server.get_environ(sid, self.namespace)
            self.closed_for_flooding(sid, client_address(environ) if environ else None)
            await self.emit("error", {"event": None, "reason": self.flood_reason()}, to=sid,
                            ignore_queue=True)
            await self.disconnect(sid)
            return self.server.not_handled

    async def _connect(self, sid: str, environ: dict[str, Any], *rest: Any) -> Any:
        address = _connecting_from.set(client_address(environ))
        try:
            self._check_address(_connecting_from.get())
            return await super().trigger_event("connect", sid, environ, *rest)
        except (TokenRefused, AddressRefused):
            eio_sid = self.server.manager.eio_sid_from_sid(sid, self.namespace)
            if self.gate is not None and eio_sid is not None:
                self.gate.token_refused(eio_sid, environ)
            raise
        finally:
            _connecting_from.reset(address)

    def _check_address(self, address: str | None) -> None:
        if address is None:
            return
        locked = self.flooded.locked_for(address)
        if locked > 0:
            seconds = math.ceil(locked)
            raise AddressRefused(FLOOD_LOCKED.format(seconds=seconds), {"retryAfter": seconds})

    def closed_for_flooding(self, sid: str, address: str | None) -> None:
        """The connection ``sid`` from ``address`` is being closed for
        flooding: say so in the log, and lock its address out for a while."""
        if address is not None:
            self.flooded.wrong(address)
        logger.warning(
            "chatlab: closed connection %s from %s: it kept sending events after being "
            "told to wait (more than twice its rate limit); connects from there are "
            "refused for %d s", sid, address or "an unknown address",
            math.ceil(self.flooded.locked_for(address)) if address is not None else 0)

    def _check(self, event: Any, sid: str, args: tuple[Any, ...]) -> None:
        if not isinstance(event, str):
            raise Refused(f"an event name must be a string, not {describe(event)}")
        if event in RESERVED_EVENTS:
            raise Refused(f"{event!r} is reserved for the connection itself; "
                          f"a client may not send it")
        self._check_rate(sid)
        spec = CLIENT_EVENTS.get(event)
        if spec is None:
            raise Refused(f"unknown event {echo(event)!r}; the chat understands "
                          f"{', '.join(CLIENT_EVENTS)}")
        problem = argument_problem(spec, args)
        if problem is not None:
            raise Refused(problem)

    def _check_rate(self, sid: str) -> None:
        allowance = self._allowances.get(sid)
        if allowance is None:
            # Only after disconnect (handlers run in tasks of their own):
            # the connection is gone, so there is nobody left to act for.
            raise Refused("this connection has closed")
        if self.gate is not None:
            return  # judged before decoding
        verdict = allowance.judge()
        if verdict is Verdict.REFUSE:
            raise self.too_fast(allowance)
        if verdict is Verdict.DROP:
            raise _Dropped
        if verdict is Verdict.CLOSE:
            raise _Flooding

    def too_fast(self, allowance: Allowance | Unlimited) -> Refused:
        """The refusal of an event over the rate limit, told once per wait."""
        wait = allowance.retry_after()
        return Refused(
            f"too fast: at most {self.limits.events_per_second:g} events a second "
            f"(bursts of {self.limits.burst}); try again in {wait:.2f} s "
            f"(events sent before then are dropped unanswered)",
            retry_after=wait)

    def flood_reason(self) -> str:
        """Why a connection that kept sending after being told to wait is
        closed."""
        return (f"closing this connection: it kept sending events after being told to "
                f"wait (the limit is {self.limits.events_per_second:g} events a second, "
                f"in bursts of {self.limits.burst})")

    async def refuse(self, sid: str, event: str | None, refusal: Refused) -> dict[str, Any]:
        """Tell the sender alone why its event was refused; the payload is
        also the acknowledgement."""
        payload: dict[str, Any] = {
            "event": echo(event) if event is not None else None, "reason": refusal.reason}
        if refusal.retry_after is not None:
            payload["retryAfter"] = refusal.retry_after  # seconds: it may be sent again then
        await self.emit("error", payload, to=sid, ignore_queue=True)  # the sender is ours
        return payload

    def check_token(self, auth: Any) -> None:
        """Refuse a connection without the right token, when there is one.

        During a connect, an address that has sent too many wrong tokens
        is refused for a while without its token being compared (see
        :class:`~chatlab.ratelimit.Lockout`). Raises
        :class:`TokenRefused`.
        """
        if self.token is None:
            return
        given = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(given, str) or not given:
            raise TokenRefused(TOKEN_NEEDED, {"token": "missing"})
        address = _connecting_from.get()
        if address is not None:
            locked = self.wrong_tokens.locked_for(address)
            if locked > 0:
                seconds = math.ceil(locked)
                raise TokenRefused(TOKEN_LOCKED.format(seconds=seconds),
                                   {"token": "wrong", "retryAfter": seconds})
        # Compared in constant time, so the answer's timing gives away
        # nothing about how much of a guess was right.
        # "surrogatepass": a lone surrogate is a wrong token, not a crash.
        if not hmac.compare_digest(
                given.encode("utf-8", "surrogatepass"), self.token.encode("utf-8")):
            if address is not None:
                self.wrong_tokens.wrong(address)
                locked = self.wrong_tokens.locked_for(address)
                if locked > 0:
                    logger.warning("chatlab: %s has sent too many wrong tokens; its "
                                   "connects are refused for %d s", address or "an unknown "
                                   "address", math.ceil(locked))
            raise TokenRefused(TOKEN_WRONG, {"token": "wrong"})
        if address is not None:
            self.wrong_tokens.right(address)

    def admit(self, sid: str) -> None:
        """Let a connection in (last in the connect handler, once nothing
        can refuse it): it gets a rate limit of its own."""
        self._allowances[sid] = allowance_for(self.limits.events_per_second, self.limits.burst)

    def allowance(self, sid: str) -> Allowance | Unlimited | None:
        """The rate limit of a connection let in; None for one that is not
        (or no longer) in."""
        return self._allowances.get(sid)

    @property
    def admitted(self) -> int:
        """How many connections are let in and not yet gone."""
        return len(self._allowances)

    def release(self, sid: str) -> None:
        """Forget a connection that left (from the disconnect handler)."""
        self._allowances.pop(sid, None)
        if self.gate is not None:
            self.gate.forget(sid)


class _Dropped(Exception):
    """An event over the rate limit, sent before the wait it was told."""


class _Flooding(Exception):
    """An event from a connection that kept sending after being told."""

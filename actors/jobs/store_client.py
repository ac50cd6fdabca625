"""The requester's side of the store protocol, shared by every actor that talks to a store.

How it works: :meth:`StoreClient.request` sends a :class:`StoreRequest` with a fresh number and
remembers the command, what it was for (``purpose``, ``data``) and when it left. The actor hands
each :class:`StoreReply` to :meth:`StoreClient.take`, which returns the pending entry (or None
for an unknown or late reply). The actor's periodic tick calls :meth:`StoreClient.overdue`,
which returns requests unanswered for ``timeout`` seconds and forgets them; since every store
command is idempotent, the actor may simply send them again.

Request numbers start at a random point drawn from ``ctx.random`` at the first request of each
incarnation: a reply to a request of the actor's previous incarnation can still arrive after a
restart (the store was slow or paused and answered once the actor was back), and it must not be
taken for the answer to a new request that happens to reuse its number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._context import Context
from .._messages import ActorRef
from .protocol import StoreRequest


@dataclass(slots=True)
class Pending:
    """One request in flight."""

    req: int
    command: dict[str, Any]
    purpose: str
    data: Any
    sent_at: float


class StoreClient:
    """Numbered requests to one store actor, with timeouts (see the module docstring)."""

    def __init__(self, store: ActorRef, timeout: float) -> None:
        self.store = store
        self.timeout = timeout
        self.pending: dict[int, Pending] = {}
        self._next = 0  # drawn at the first request (see the module docstring)

    def request(self, ctx: Context, command: dict[str, Any], purpose: str, data: Any = None) -> int:
        """Send ``command``; the reply will come back tagged with ``purpose`` and ``data``."""
        if self._next == 0:
            self._next = (ctx.random.getrandbits(40) << 16) + 1
        req = self._next
        self._next += 1
        self.pending[req] = Pending(req, command, purpose, data, ctx.now)
        ctx.send(self.store, StoreRequest(req, command))
        return req

    def take(self, req: int) -> Pending | None:
        """The request ``req`` answers, now settled; None if unknown (late or duplicate reply)."""
        return self.pending.pop(req, None)

    def overdue(self, now: float) -> list[Pending]:
        """Requests older than ``timeout``, forgotten (their replies will be ignored)."""
        late = [p for p in self.pending.values() if now - p.sent_at >= self.timeout]
        for p in late:
            del self.pending[p.req]
        return late

    def busy(self, purpose: str) -> bool:
        """True if a request for ``purpose`` is in flight."""
        return any(p.purpose == purpose for p in self.pending.values())

    def clear(self) -> None:
        """Forget every request in flight (their replies will be ignored)."""
        self.pending.clear()

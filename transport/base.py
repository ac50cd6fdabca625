"""The Transport interface: how a node's runtime reaches actors on other nodes.

Every member of the family (``memory``, ``tcp``; later ``redis``, ``websocket``) has the same
shape, so the runtime never knows which one it drives:

- ``await transport.start(nursery, deliver)`` starts the transport's tasks inside ``nursery``
  and returns once it is ready to send and receive (a TCP listener is bound, for example);
- ``transport.send(src, dst, msg)`` never blocks: it encodes the message with the codec and
  puts the frame in a bounded outbox; a full outbox drops a frame and counts it;
- every message that arrives is handed to ``deliver(src, dst, msg)``, a plain synchronous
  callback that must not block (the runtime puts it in a bounded mailbox or drops it);
- ``await transport.aclose()`` stops every task and closes every connection.

Delivery is at most once and unordered across reconnects: actors already live with loss.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from actors import ActorRef

from .codec import CodecError, decode_envelope, encode_envelope
from .events import EventLog

Deliver = Callable[[ActorRef, ActorRef, Any], None]
"""``deliver(src, dst, msg)``: called by a transport for each decoded incoming message."""


@dataclass(slots=True)
class TransportStats:
    """Counters every transport keeps (all monotonic since start)."""

    sent: int = 0
    batches: int = 0
    received: int = 0
    dropped_outbox_full: int = 0
    dropped_unroutable: int = 0
    dropped_malformed: int = 0
    dropped_too_large: int = 0
    connections_refused: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Transport(abc.ABC):
    """Carries envelopes ``(src, dst, msg)`` between nodes; see the module docstring.

    Attributes:
        node_id: the node this transport serves.
        stats: counters of sent, received and dropped frames.
    """

    node_id: str
    stats: TransportStats
    max_frame: int
    events: EventLog | None = None
    EVENTS = "transport"
    """The prefix of this transport's event kinds (``tcp``, ``ws``, ``redis``)."""

    def _log(self, kind: str, **fields: Any) -> None:
        """Emit ``<EVENTS>.<kind>`` on this node's event log, if it has one."""
        if self.events is not None:
            self.events.emit(self.node_id, "", f"{self.EVENTS}.{kind}", fields)

    def _envelope(self, src: ActorRef, dst: ActorRef, msg: Any) -> bytes | None:
        """``msg`` encoded for ``dst``, or None when it exceeds ``max_frame`` (counted and
        logged as ``<EVENTS>.too_large``)."""
        body = encode_envelope(src, dst, msg)
        if len(body) > self.max_frame:
            self.stats.dropped_too_large += 1
            self._log("too_large", level="warning", to=str(dst), size=len(body), limit=self.max_frame)
            return None
        return body

    def _opened(self, body: bytes, peer: str, **where: Any) -> tuple[ActorRef, ActorRef, Any] | None:
        """The envelope ``(src, dst, msg)`` in ``body`` from node ``peer``, counted as received;
        None if it is malformed or names another source node (counted, logged as
        ``<EVENTS>.bad_frame`` with ``where``)."""
        try:
            src, dst, msg = decode_envelope(body, self.max_frame)
        except CodecError as e:
            why = str(e)
        else:
            if src.node == peer:
                self.stats.received += 1
                return src, dst, msg
            why = f"source node {src.node!r} is not {peer!r}"
        self.stats.dropped_malformed += 1
        self._log("bad_frame", level="warning", peer=peer, error=why, **where)
        return None

    @abc.abstractmethod
    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        """Start the transport's tasks in ``nursery``; return when ready.

        Args:
            nursery: where the transport's long-running tasks live.
            deliver: called with ``(src, dst, msg)`` for every message that arrives; must not
                block.

        Raises:
            OSError: a listening socket could not be bound (TCP).
        """

    @abc.abstractmethod
    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        """Queue ``msg`` from ``src`` to ``dst`` (a remote actor) without blocking.

        Returns:
            True if the frame was queued without dropping anything; False if it or an older
            frame was dropped (full outbox, unknown node, too large, not encodable).
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop all tasks and close all connections; safe to call twice."""

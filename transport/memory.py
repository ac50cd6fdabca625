"""In-memory transport: many nodes in one process, for tests and notebooks.

A :class:`MemoryHub` connects the :class:`MemoryTransport` of every node in a process. Sending
encodes the envelope with the codec (so nothing that cannot cross a real wire crosses this
one) into the sender's bounded outbox; one pump task per transport drains the outbox, asks
the hub whether the link ``src node -> dst node`` is up, decodes the frame and hands the
message to the destination's ``deliver`` callback. Frames to a node that is not running, or
over a blocked link, are dropped and counted, as a network would.

Tests cut links with :meth:`MemoryHub.block` (one direction) or :meth:`MemoryHub.partition`
(both directions between groups) and heal them with :meth:`MemoryHub.heal`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from actors import ActorRef

from .base import Deliver, Transport, TransportStats
from .codec import DEFAULT_MAX_FRAME, CodecError, decode_envelope, encode_envelope


class MemoryHub:
    """The shared "network" of memory transports in one process."""

    def __init__(self) -> None:
        self._nodes: dict[str, MemoryTransport] = {}
        self._blocked: set[tuple[str, str]] = set()

    def transport(self, node_id: str, *, outbox_size: int = 10_000) -> MemoryTransport:
        """A new transport for ``node_id`` on this hub (it joins when started)."""
        return MemoryTransport(self, node_id, outbox_size=outbox_size)

    def block(self, src: str, dst: str) -> None:
        """Drop every frame from node ``src`` to node ``dst`` until :meth:`heal`."""
        self._blocked.add((src, dst))

    def partition(self, *groups: set[str] | list[str] | tuple[str, ...]) -> None:
        """Block both directions between every pair of nodes in different groups."""
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self._blocked.add((x, y))
                        self._blocked.add((y, x))

    def heal(self, src: str | None = None, dst: str | None = None) -> None:
        """Unblock ``src -> dst``, or every link when called without arguments."""
        if src is None and dst is None:
            self._blocked.clear()
        else:
            self._blocked.discard((str(src), str(dst)))

    def is_blocked(self, src: str, dst: str) -> bool:
        """True if frames from ``src`` to ``dst`` are being dropped."""
        return (src, dst) in self._blocked

    def _join(self, t: MemoryTransport) -> None:
        self._nodes[t.node_id] = t

    def _leave(self, t: MemoryTransport) -> None:
        if self._nodes.get(t.node_id) is t:
            del self._nodes[t.node_id]

    def _route(self, src_node: str, dst_node: str) -> MemoryTransport | None:
        if (src_node, dst_node) in self._blocked:
            return None
        return self._nodes.get(dst_node)


class MemoryTransport(Transport):
    """One node's end of a :class:`MemoryHub` (see the module docstring).

    Args:
        hub: the shared hub.
        node_id: this node's id.
        outbox_size: frames queued before the oldest is dropped.
        max_frame: largest encoded envelope accepted, in bytes.
    """

    def __init__(
        self, hub: MemoryHub, node_id: str, *, outbox_size: int = 10_000, max_frame: int = DEFAULT_MAX_FRAME
    ):
        self.hub = hub
        self.node_id = node_id
        self.stats = TransportStats()
        self.max_frame = max_frame
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_size = outbox_size
        self._wake = trio.Event()
        self._deliver: Deliver | None = None
        self._scope: trio.CancelScope | None = None

    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        self._deliver = deliver
        self._scope = trio.CancelScope()
        self.hub._join(self)
        nursery.start_soon(self._pump, self._scope)

    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        body = encode_envelope(src, dst, msg)
        if len(body) > self.max_frame:
            self.stats.dropped_too_large += 1
            return False
        ok = True
        if len(self._outbox) >= self._outbox_size:
            self._outbox.popleft()
            self.stats.dropped_outbox_full += 1
            ok = False
        self._outbox.append((dst.node, body))
        self._wake.set()
        return ok

    async def aclose(self) -> None:
        self.hub._leave(self)
        if self._scope is not None:
            self._scope.cancel()
        self._outbox.clear()

    def _receive(self, body: bytes) -> None:
        if self._deliver is None:
            return
        try:
            src, dst, msg = decode_envelope(body, self.max_frame)
        except CodecError:
            self.stats.dropped_malformed += 1
            return
        self.stats.received += 1
        self._deliver(src, dst, msg)

    async def _pump(self, scope: trio.CancelScope) -> None:
        try:
            with scope:
                while True:
                    while not self._outbox:
                        self._wake = trio.Event()
                        await self._wake.wait()
                    # Let senders pile up a batch, as the TCP writer does.
                    await trio.sleep(0)
                    while self._outbox:
                        dst_node, body = self._outbox.popleft()
                        peer = self.hub._route(self.node_id, dst_node)
                        if peer is None:
                            self.stats.dropped_unroutable += 1
                            continue
                        self.stats.sent += 1
                        peer._receive(body)
        finally:
            self.hub._leave(self)

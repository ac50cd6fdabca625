"""TCP transport: length-prefixed msgpack frames between nodes, batched, with a handshake.

How it works
------------
Connections are one-way, which keeps the design simple and correct: a node *sends* only on
the connection it dialled to a peer (outbound) and *receives* only on connections peers
dialled to it (inbound). So each pair of nodes uses two TCP connections, one per direction,
and no connection is ever shared between a reader and a writer of envelopes.

Outbound (one :class:`_Link` per peer, created on the first send to it):
  - ``send`` encodes the envelope and appends the frame to the link's bounded outbox; when it
    is full the **oldest** frame is dropped and counted (fresh heartbeats beat stale ones);
  - one writer task per link connects lazily (address from the static map ``peers``), does
    the handshake, then drains the outbox, joining every pending frame (up to
    ``max_batch_bytes``) into a single ``send_all``; a tiny reader watches for EOF so a
    dead peer is noticed at once;
  - on any failure it closes the connection and reconnects with exponential backoff and full
    jitter (``backoff_base * 2**attempt``, capped at ``backoff_max``, times U(0.5, 1)).

Handshake: the dialler sends ``Hello(cluster, node_id, version, listen)``; the listener
answers with its own ``Hello`` or with ``Refuse(reason)`` and closes. Refused: another cluster
name, another protocol version, our own id, or an id not in this node's peer map, unless
``accept_joins`` is on: then a node of the same cluster joins at run time, and the address it
advertises in ``listen`` is added to the peer map so this node can answer it. A second inbound
connection from the same node replaces the first (the peer restarted; the old one is stale).
The dialler checks the answer too (the address map may point at the wrong node).

Inbound: frames are cut by :class:`~transport.codec.FrameReader` with ``max_frame``. A length
prefix over the limit cannot be resynchronised, so the connection is closed (one log line);
a well-framed body that does not decode is dropped with one log line and the connection
stays. Envelopes claiming a source node other than the handshaken peer are dropped. Nothing a
peer sends can stop the node.

Diagnostics go to the optional :class:`~transport.events.EventLog` as ``tcp.*`` events
(``tcp.link_up``, ``tcp.link_down``, ``tcp.refused``, ``tcp.bad_frame``, ...).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from actors import ActorRef, message

from .base import Deliver, Transport, TransportStats
from .codec import (
    DEFAULT_MAX_FRAME,
    CodecError,
    FrameReader,
    decode,
    decode_envelope,
    encode,
    encode_envelope,
    frame,
)
from .events import EventLog

PROTOCOL_VERSION = 2

Address = tuple[str, int]


@message("tcp.Hello")
@dataclass(frozen=True, slots=True)
class Hello:
    """First frame on every connection, both ways: who I am and which cluster I belong to."""

    cluster: str
    node_id: str
    version: int
    listen: str
    """The address this node accepts connections on, ``host:port`` (for joins)."""


@message("tcp.Refuse")
@dataclass(frozen=True, slots=True)
class Refuse:
    """The listener's answer to an unacceptable Hello, sent just before it closes."""

    reason: str


class HandshakeError(Exception):
    """The other side refused us, or its answer was not acceptable."""


def parse_address(text: str) -> Address:
    """Parse ``host:port`` (IPv6 as ``[::1]:7001``).

    Raises:
        ValueError: not ``host:port`` with a port in 0..65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not host:port (for example 127.0.0.1:7001)")
    return host.strip("[]"), int(port_text)


class _FrameStream:
    """Bodies from a stream, one at a time, keeping any extra bodies a read brought."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame: int):
        self.stream = stream
        self.reader = FrameReader(max_frame)
        self.ready: deque[bytes] = deque()

    async def next_body(self) -> bytes | None:
        """The next body, or None at EOF. Raises CodecError on an oversized prefix."""
        while not self.ready:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.ready.extend(self.reader.feed(bytes(chunk)))
        return self.ready.popleft()


class _Link:
    """Outbound state for one peer: the bounded outbox and its wake-up event."""

    def __init__(self, node_id: str, capacity: int):
        self.node_id = node_id
        self.capacity = capacity
        self.frames: deque[bytes] = deque()
        self.wake = trio.Event()
        self.connected = False

    def put(self, data: bytes) -> bool:
        dropped = False
        if len(self.frames) >= self.capacity:
            self.frames.popleft()
            dropped = True
        self.frames.append(data)
        self.wake.set()
        return not dropped

    async def wait_nonempty(self) -> None:
        while not self.frames:
            self.wake = trio.Event()
            await self.wake.wait()

    def take(self, max_bytes: int) -> list[bytes]:
        out: list[bytes] = []
        size = 0
        frames = self.frames
        while frames and (not out or size + len(frames[0]) <= max_bytes):
            f = frames.popleft()
            out.append(f)
            size += len(f)
        return out


class TcpTransport(Transport):
    """Carries envelopes over TCP between the nodes of one cluster.

    Args:
        node_id: this node's id.
        cluster: the cluster name; peers of another cluster are refused.
        listen: ``(host, port)`` to listen on (port 0 picks a free one; see ``listen_address``).
        peers: node id -> ``(host, port)`` of every other node (more can be added later with
            :meth:`add_peer`).
        events: where ``tcp.*`` diagnostics go (None: nowhere).
        outbox_size: frames queued per peer before the oldest is dropped.
        max_frame: largest frame body accepted or sent, in bytes.
        max_batch_bytes: most bytes joined into one ``send_all``.
        backoff_base: first reconnect delay, in seconds.
        backoff_max: cap of the reconnect delay, in seconds.
        connect_timeout: how long one connect attempt may take, in seconds.
        handshake_timeout: how long a peer may take to send its Hello, in seconds.
        accept_joins: accept a node of the same cluster that is not in ``peers`` and learn
            its address from its handshake (run-time membership changes).
        advertise: the ``host:port`` other nodes should dial to reach this one (default: the
            bound listen address).
    """

    def __init__(
        self,
        node_id: str,
        cluster: str,
        listen: Address,
        peers: Mapping[str, Address],
        *,
        events: EventLog | None = None,
        outbox_size: int = 10_000,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_batch_bytes: int = 1 << 20,
        backoff_base: float = 0.05,
        backoff_max: float = 2.0,
        connect_timeout: float = 3.0,
        handshake_timeout: float = 5.0,
        accept_joins: bool = False,
        advertise: str | None = None,
    ):
        self.node_id = node_id
        self.cluster = cluster
        self.listen = listen
        self.peers: dict[str, Address] = {k: v for k, v in peers.items() if k != node_id}
        self.events = events
        self.outbox_size = outbox_size
        self.max_frame = max_frame
        self.max_batch_bytes = max_batch_bytes
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.stats = TransportStats()
        self.listen_address: Address | None = None
        self._links: dict[str, _Link] = {}
        self._inbound: dict[str, trio.CancelScope] = {}
        self._deliver: Deliver | None = None
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._jitter = random.Random()
        self.accept_joins = accept_joins
        self.advertise = advertise
        self._hello = b""

    # ---------------------------------------------------------------- public

    def add_peer(self, node_id: str, address: Address) -> None:
        """Add or change the address of peer ``node_id`` (used at the next connect)."""
        if node_id != self.node_id:
            self.peers[node_id] = address

    def connected_peers(self) -> set[str]:
        """Peers with an established outbound connection."""
        return {n for n, link in self._links.items() if link.connected}

    def inbound_peers(self) -> set[str]:
        """Peers with an established inbound connection."""
        return set(self._inbound)

    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        self._deliver = deliver
        host, port = self.listen
        listeners = await trio.open_tcp_listeners(port, host=host)
        sockname = listeners[0].socket.getsockname()
        self.listen_address = (str(sockname[0]), int(sockname[1]))
        advertised = self.advertise or f"{self.listen_address[0]}:{self.listen_address[1]}"
        self._hello = encode(Hello(self.cluster, self.node_id, PROTOCOL_VERSION, advertised))
        await nursery.start(self._run, listeners)

    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        body = encode_envelope(src, dst, msg)
        if len(body) > self.max_frame:
            self.stats.dropped_too_large += 1
            self._log("tcp.too_large", level="warning", to=str(dst), size=len(body), limit=self.max_frame)
            return False
        link = self._links.get(dst.node)
        if link is None:
            if dst.node not in self.peers or self._nursery is None:
                self.stats.dropped_unroutable += 1
                return False
            link = self._links[dst.node] = _Link(dst.node, self.outbox_size)
            self._nursery.start_soon(self._link_loop, link)
        ok = link.put(frame(body))
        if not ok:
            self.stats.dropped_outbox_full += 1
        return ok

    async def aclose(self) -> None:
        self._scope.cancel()
        self._nursery = None

    # ---------------------------------------------------------------- running

    async def _run(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(trio.serve_listeners, self._handle_inbound, listeners)
                    task_status.started()
        finally:
            self._nursery = None
            for link in self._links.values():
                link.connected = False
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()

    def _log(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(self.node_id, "", kind, fields)

    # ---------------------------------------------------------------- outbound

    async def _link_loop(self, link: _Link) -> None:
        attempt = 0
        while True:
            await link.wait_nonempty()
            try:
                stream = await self._dial(link.node_id)
            except (
                OSError,
                HandshakeError,
                CodecError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ) as e:
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    self._log(
                        "tcp.connect_failed",
                        level="warning",
                        peer=link.node_id,
                        attempt=attempt,
                        error=str(e),
                    )
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30))
                await trio.sleep(delay * self._jitter.uniform(0.5, 1.0))
                continue
            attempt = 0
            link.connected = True
            self._log("tcp.link_up", peer=link.node_id, direction="out")
            try:
                async with trio.open_nursery() as conn:
                    conn.start_soon(self._watch_eof, stream, conn.cancel_scope)
                    await self._write_loop(stream, link, conn.cancel_scope)
            finally:
                link.connected = False
                await trio.aclose_forcefully(stream)
                self._log("tcp.link_down", peer=link.node_id, direction="out")

    async def _dial(self, node_id: str) -> trio.SocketStream:
        address = self.peers.get(node_id)
        if address is None:
            raise OSError(f"no address for node {node_id}")
        stream: trio.SocketStream | None = None
        with trio.move_on_after(self.connect_timeout):
            stream = await trio.open_tcp_stream(*address)
        if stream is None:
            raise OSError(f"connect to {address[0]}:{address[1]} timed out after {self.connect_timeout} s")
        try:
            await stream.send_all(frame(self._hello))
            reply: bytes | None = None
            with trio.move_on_after(self.handshake_timeout):
                reply = await _FrameStream(stream, self.max_frame).next_body()
            if reply is None:
                raise HandshakeError(
                    f"{node_id} at {address[0]}:{address[1]} closed or did not answer the handshake"
                )
            answer = decode(reply, self.max_frame)
            if isinstance(answer, Refuse):
                raise HandshakeError(f"{node_id} refused us: {answer.reason}")
            if not isinstance(answer, Hello):
                raise HandshakeError(f"{node_id} answered the handshake with {type(answer).__name__}")
            if answer.cluster != self.cluster or answer.node_id != node_id:
                raise HandshakeError(
                    f"{address[0]}:{address[1]} is node {answer.node_id!r} of cluster {answer.cluster!r}, "
                    f"expected {node_id!r} of {self.cluster!r}; check the peer address map"
                )
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream

    async def _watch_eof(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while await stream.receive_some(65536):
                pass  # nothing is expected on an outbound connection after the handshake
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    async def _write_loop(self, stream: trio.SocketStream, link: _Link, scope: trio.CancelScope) -> None:
        try:
            while True:
                await link.wait_nonempty()
                await trio.sleep(0)  # let concurrent senders add to this batch
                batch = link.take(self.max_batch_bytes)
                await stream.send_all(b"".join(batch))
                self.stats.sent += len(batch)
                self.stats.batches += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self._log(
                "tcp.write_failed", level="warning", peer=link.node_id, error=str(e) or type(e).__name__
            )
            scope.cancel()

    # ---------------------------------------------------------------- inbound

    async def _handle_inbound(self, stream: trio.SocketStream) -> None:
        try:
            remote = "{}:{}".format(*stream.socket.getpeername()[:2])
        except OSError:
            remote = "?"
        frames = _FrameStream(stream, self.max_frame)
        peer: str | None = None
        scope = trio.CancelScope()
        try:
            peer = await self._accept_handshake(stream, frames, remote)
            if peer is None:
                return
            old = self._inbound.pop(peer, None)
            if old is not None:
                old.cancel()  # the peer reconnected: the old connection is stale
            self._inbound[peer] = scope
            self._log("tcp.link_up", peer=peer, direction="in", remote=remote)
            with scope:
                await self._read_loop(frames, peer, remote)
        except CodecError as e:
            self.stats.dropped_too_large += 1
            self._log(
                "tcp.bad_stream", level="warning", peer=peer or "?", remote=remote, error=f"{e}; closing"
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            if peer is not None:
                if self._inbound.get(peer) is scope:
                    del self._inbound[peer]
                self._log("tcp.link_down", peer=peer, direction="in", remote=remote)
            await trio.aclose_forcefully(stream)

    async def _accept_handshake(
        self, stream: trio.SocketStream, frames: _FrameStream, remote: str
    ) -> str | None:
        body: bytes | None = None
        with trio.move_on_after(self.handshake_timeout):
            body = await frames.next_body()
        if body is None:
            self._refuse_quietly(remote, "no handshake (closed or timed out)")
            return None
        try:
            hello = decode(body, self.max_frame)
        except CodecError as e:
            self._refuse_quietly(remote, f"malformed handshake: {e}")
            return None
        reason = ""
        if not isinstance(hello, Hello):
            reason = f"expected tcp.Hello first, got {type(hello).__name__}"
        elif hello.version != PROTOCOL_VERSION:
            reason = f"protocol version {hello.version} not supported (this node speaks {PROTOCOL_VERSION})"
        elif hello.cluster != self.cluster:
            reason = f"cluster {hello.cluster!r} is not this node's cluster {self.cluster!r}"
        elif hello.node_id == self.node_id:
            reason = f"node id {hello.node_id!r} is this node's own id"
        elif hello.node_id not in self.peers and not self.accept_joins:
            reason = (
                f"node id {hello.node_id!r} is not a known peer of {self.node_id!r}; add it to the peer list"
            )
        elif hello.node_id not in self.peers:
            try:
                self.add_peer(hello.node_id, parse_address(hello.listen))
                self._log("tcp.joined", peer=hello.node_id, listen=hello.listen)
            except ValueError as e:
                reason = f"node {hello.node_id!r} advertised a bad listen address: {e}"
        if reason:
            self.stats.connections_refused += 1
            self._log("tcp.refused", level="warning", remote=remote, reason=reason)
            with trio.move_on_after(1):
                await stream.send_all(frame(encode(Refuse(reason))))
            return None
        await stream.send_all(frame(self._hello))
        assert isinstance(hello, Hello)
        return hello.node_id

    def _refuse_quietly(self, remote: str, reason: str) -> None:
        self.stats.connections_refused += 1
        self._log("tcp.refused", level="warning", remote=remote, reason=reason)

    async def _read_loop(self, frames: _FrameStream, peer: str, remote: str) -> None:
        deliver = self._deliver
        assert deliver is not None
        while True:
            body = await frames.next_body()
            if body is None:
                return
            try:
                src, dst, msg = decode_envelope(body, self.max_frame)
            except CodecError as e:
                self.stats.dropped_malformed += 1
                self._log("tcp.bad_frame", level="warning", peer=peer, remote=remote, error=str(e))
                continue
            if src.node != peer:
                self.stats.dropped_malformed += 1
                self._log(
                    "tcp.bad_frame",
                    level="warning",
                    peer=peer,
                    error=f"source node {src.node!r} is not {peer!r}",
                )
                continue
            self.stats.received += 1
            deliver(src, dst, msg)

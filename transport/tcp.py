"""TCP transport: length-prefixed msgpack frames between nodes, batched, with a handshake and TLS.

How it works
------------
Connections between nodes are one-way, which keeps the design simple and correct: a node
*sends* only on the connection it dialled to a peer (outbound) and *receives* only on
connections peers dialled to it (inbound). So each pair of nodes uses two connections, one
per direction. The one exception is a **job client** (:class:`~transport.jobs_client.JobClient`,
``listen=None``): it listens nowhere, so the node answers it on the connection it dialled.

Outbound (one :class:`~transport.links.Outbox` per peer, created on the first send to it):
  - ``send`` encodes the envelope and appends the frame to the peer's bounded outbox; when it
    is full the **oldest** frame is dropped and counted (fresh heartbeats beat stale ones);
  - with ``write_through`` (job clients), a frame sent while its plain-TCP connection is idle
    (nothing queued, the writer waiting, no such write in the last :data:`WRITE_THROUGH_GAP`)
    is written at once by ``send`` itself with one non-blocking write, so a lone request costs
    no scheduler pass; what the kernel does not take is queued for the writer, and a burst of
    sends is batched as usual;
  - one writer task per peer connects lazily (address from the map ``peers``), does the
    handshake, then drains the outbox, joining every pending frame (up to ``max_batch_bytes``)
    into a single ``send_all``; a reader on the same connection notices a dead peer at once
    (and, for a client, delivers the node's answers);
  - on any failure it closes the connection and reconnects with exponential backoff and full
    jitter (``backoff_base * 2**attempt``, capped at ``backoff_max``, times U(0.5, 1)).

Handshake: the dialler sends ``Hello(cluster, node_id, version, listen)``; the listener
answers with its own ``Hello`` or with ``Refuse(reason)`` and closes. Refused: another cluster
name, another protocol version, our own id, or an id not in this node's peer map, unless
``accept_joins`` is on: then a node of the same cluster joins at run time, and the address it
advertises in ``listen`` is added to the peer map so this node can answer it. A ``listen`` of
``""`` is a client: it is answered on its own connection (a reverse outbox that lives as long
as the connection). ``clients_only`` refuses nodes (used when nodes link over another
transport). A second inbound connection from the same id replaces the first (the peer
restarted; the old one is stale). The dialler checks the answer too (the address map may point
at the wrong node). The handshake messages and the outbox are in :mod:`transport.links`.

TLS (:mod:`transport.tls`): with ``ssl_server`` every accepted connection does the TLS handshake
before anything else (a client certificate is required if the context says so); with
``ssl_client`` every dial does it, checking the peer's certificate and host name. A failed TLS
handshake is one ``tcp.tls_failed`` (listener) or ``tcp.connect_failed`` (dialler) line; the
dialler retries with backoff.

Inbound: frames are cut by :class:`~transport.codec.FrameReader` with ``max_frame``. A length
prefix over the limit cannot be resynchronised, so the connection is closed (one log line);
a well-framed body that does not decode is dropped with one log line and the connection
stays. Envelopes claiming a source node other than the handshaken peer are dropped. Nothing a
peer sends can stop the node.

Subclasses change how bytes travel, not what they say: :class:`~transport.ws.WsTransport`
overrides :meth:`TcpTransport._connect` and :meth:`TcpTransport._accepted` to carry the same
frames in WebSocket messages. Diagnostics go to the optional :class:`~transport.events.EventLog`
as ``tcp.*`` events (``ws.*`` for WebSocket): ``link_up``, ``link_down``, ``refused``,
``tls_failed``, ``bad_frame``, ...
"""

from __future__ import annotations

import os
import random
import ssl
from collections.abc import Mapping
from typing import Any

import trio

from actors import ActorRef

from .base import Deliver, Transport, TransportStats
from .codec import DEFAULT_MAX_FRAME, CodecError, decode, encode, frame
from .events import EventLog
from .links import DIAL_ERRORS as DIAL_ERRORS
from .links import PROTOCOL_VERSION as PROTOCOL_VERSION
from .links import Address as Address
from .links import FrameStream, Outbox, hello_refusal
from .links import HandshakeError as HandshakeError
from .links import Hello as Hello
from .links import Refuse as Refuse
from .links import Refused as Refused
from .links import parse_address as parse_address
from .tls import TlsHandshakeError, reason, wrap_client, wrap_server

WRITE_THROUGH_GAP = 0.0002
"""Seconds after a frame written by ``send`` itself during which the next ones are batched."""


class TcpTransport(Transport):
    """Carries envelopes over TCP between the nodes of one cluster.

    Args:
        node_id: this node's id.
        cluster: the cluster name; peers of another cluster are refused.
        listen: ``(host, port)`` to listen on (port 0 picks a free one; see ``listen_address``);
            None for a client, which listens nowhere and gets answers on its own connections.
        peers: node id -> ``(host, port)`` of every other node (more can be added later with
            :meth:`add_peer`).
        events: where ``tcp.*`` diagnostics go (None: nowhere).
        outbox_size: frames queued per peer before the oldest is dropped.
        max_frame: largest frame body accepted or sent, in bytes.
        max_batch_bytes: most bytes joined into one ``send_all``.
        backoff_base: first reconnect delay, in seconds.
        backoff_max: cap of the reconnect delay, in seconds.
        connect_timeout: how long one connect attempt (TLS handshake included) may take, in seconds.
        handshake_timeout: how long a peer may take to send its Hello, in seconds.
        accept_joins: accept a node of the same cluster that is not in ``peers`` and learn
            its address from its handshake (run-time membership changes), and clients.
        advertise: the ``host:port`` other nodes should dial to reach this one (default: the
            bound listen address).
        ssl_server: TLS for accepted connections (:func:`transport.tls.server_context`).
        ssl_client: TLS for dialled connections (:func:`transport.tls.client_context`).
        clients_only: refuse nodes, accept only clients (nodes link over another transport).
        write_through: write a frame at once from ``send`` when its connection is idle (see
            the module docstring); job clients use it, nodes batch everything.
    """

    EVENTS = "tcp"
    """The prefix of this transport's event kinds."""

    def __init__(
        self,
        node_id: str,
        cluster: str,
        listen: Address | None,
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
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        clients_only: bool = False,
        write_through: bool = False,
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
        self.accept_joins = accept_joins
        self.advertise = advertise
        self.ssl_server = ssl_server
        self.ssl_client = ssl_client
        self.clients_only = clients_only
        self.write_through = write_through
        self.stats = TransportStats()
        self.listen_address: Address | None = None
        self._links: dict[str, Outbox] = {}
        self._inbound: dict[str, trio.CancelScope] = {}
        self._deliver: Deliver | None = None
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._jitter = random.Random()
        self._hello = b""

    # ---------------------------------------------------------------- public

    def add_peer(self, node_id: str, address: Address) -> None:
        """Add or change the address of peer ``node_id`` (used at the next connect)."""
        if node_id != self.node_id:
            self.peers[node_id] = address

    def connected_peers(self) -> set[str]:
        """Peers with an established outbound connection."""
        return {n for n, link in self._links.items() if link.connected and not link.reverse}

    def inbound_peers(self) -> set[str]:
        """Peers and clients with an established inbound connection."""
        return set(self._inbound)

    def clients(self) -> set[str]:
        """Clients connected now (answered on their own connections)."""
        return {n for n, link in self._links.items() if link.reverse}

    def routes(self, node_id: str) -> bool:
        """True if a frame to ``node_id`` can be queued (a known peer or a connected client)."""
        return node_id in self._links or node_id in self.peers

    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        self._deliver = deliver
        listeners: list[trio.SocketListener] = []
        advertised = self.advertise or ""
        if self.listen is not None:
            host, port = self.listen
            listeners = await trio.open_tcp_listeners(port, host=host)
            sockname = listeners[0].socket.getsockname()
            self.listen_address = (str(sockname[0]), int(sockname[1]))
            advertised = advertised or f"{self.listen_address[0]}:{self.listen_address[1]}"
        self._hello = encode(Hello(self.cluster, self.node_id, PROTOCOL_VERSION, advertised))
        await nursery.start(self._run, listeners)

    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        body = self._envelope(src, dst, msg)
        if body is None:
            return False
        link = self._links.get(dst.node)
        if link is None:
            if dst.node not in self.peers or self._nursery is None:
                self.stats.dropped_unroutable += 1
                return False
            link = self._links[dst.node] = Outbox(dst.node, self.outbox_size)
            self._nursery.start_soon(self._link_loop, link)
        data = frame(body)
        if link.direct is not None and not link.frames:
            now = trio.current_time()
            if now - link.last_direct >= WRITE_THROUGH_GAP:
                link.last_direct = now
                try:
                    written = os.write(link.direct, data)
                except OSError:  # full (BlockingIOError) or broken: the writer takes over
                    written = 0
                if written == len(data):
                    self.stats.sent += 1
                    self.stats.batches += 1
                    return True
                data = data[written:]
        ok = link.put(data)
        if not ok:
            self.stats.dropped_outbox_full += 1
        return ok

    async def aclose(self) -> None:
        self._scope.cancel()
        self._nursery = None

    async def identify(self, address: Address) -> str:
        """Dial ``address``, do the handshake (TLS included) and hang up; the node id there.

        Raises:
            Refused: the node refused us (another cluster, ...); the message says why.
            HandshakeError, TlsHandshakeError, OSError, CodecError: no usable answer.
        """
        failure: BaseException | None = None
        async with trio.open_nursery() as conn:
            try:
                stream, _frames, hello = await self._open(address, conn)
            except DIAL_ERRORS as e:
                failure = e
            else:
                await trio.aclose_forcefully(stream)
            conn.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if hello.cluster != self.cluster:
            raise HandshakeError(f"{address[0]}:{address[1]} is of cluster {hello.cluster!r}")
        return hello.node_id

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
                    if listeners:
                        nursery.start_soon(trio.serve_listeners, self._handle_inbound, listeners)
                    task_status.started()
                    await trio.sleep_forever()  # until aclose: links are started in this nursery
        finally:
            self._nursery = None
            for link in self._links.values():
                link.connected = False
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()

    # ---------------------------------------------------------------- outbound

    async def _link_loop(self, link: Outbox) -> None:
        attempt = 0
        while True:
            await link.wait_nonempty()
            failure = ""
            stream: trio.abc.Stream | None = None
            try:
                async with trio.open_nursery() as conn:
                    try:
                        stream, frames = await self._dial(link.node_id, conn)
                    except DIAL_ERRORS as e:
                        failure = reason(e)
                        conn.cancel_scope.cancel()
                    else:
                        attempt = 0
                        link.connected = True
                        self._log("link_up", peer=link.node_id, direction="out")
                        conn.start_soon(
                            self._read_until_closed, frames, link.node_id, link.node_id, conn.cancel_scope
                        )
                        await self._write_loop(stream, link, conn.cancel_scope)
            finally:
                if stream is not None:
                    link.connected = False
                    self._log("link_down", peer=link.node_id, direction="out")
                    await trio.aclose_forcefully(stream)
            if failure:
                attempt += 1
                if attempt == 1 or attempt % 20 == 0:
                    self._log(
                        "connect_failed", level="warning", peer=link.node_id, attempt=attempt, error=failure
                    )
                delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30))
                await trio.sleep(delay * self._jitter.uniform(0.5, 1.0))

    async def _dial(self, node_id: str, conn: trio.Nursery) -> tuple[trio.abc.Stream, FrameStream]:
        address = self.peers.get(node_id)
        if address is None:
            raise OSError(f"no address for node {node_id}")
        try:
            stream, frames, answer = await self._open(address, conn)
        except Refused as e:
            raise Refused(f"{node_id} refused us: {e}") from None
        if answer.cluster != self.cluster or answer.node_id != node_id:
            await trio.aclose_forcefully(stream)
            raise HandshakeError(
                f"{address[0]}:{address[1]} is node {answer.node_id!r} of cluster {answer.cluster!r}, "
                f"expected {node_id!r} of {self.cluster!r}; check the peer address map"
            )
        return stream, frames

    async def _connect(self, address: Address, conn: trio.Nursery) -> trio.abc.Stream:
        """A connected stream to ``address`` (TLS done if ``ssl_client``), ready for frames.

        ``conn`` lives as long as the connection (for subclasses that need a task per one).
        """
        host, port = address
        with trio.fail_after(self.connect_timeout):
            tcp = await trio.open_tcp_stream(host, port)
            if self.ssl_client is None:
                return tcp
            try:
                return await wrap_client(tcp, self.ssl_client, host, self.connect_timeout)
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise

    async def _open(self, address: Address, conn: trio.Nursery) -> tuple[trio.abc.Stream, FrameStream, Hello]:
        """Connect to ``address`` and do the handshake: the stream, its reader and the answer."""
        try:
            stream = await self._connect(address, conn)
        except trio.TooSlowError:
            raise OSError(
                f"connect to {address[0]}:{address[1]} timed out after {self.connect_timeout} s"
            ) from None
        frames = FrameStream(stream, self.max_frame)
        try:
            await stream.send_all(frame(self._hello))
            reply: bytes | None = None
            with trio.move_on_after(self.handshake_timeout):
                reply = await frames.next_body()
            if reply is None:
                raise HandshakeError(f"{address[0]}:{address[1]} closed or did not answer the handshake")
            answer = decode(reply, self.max_frame)
            if isinstance(answer, Refuse):
                raise Refused(answer.reason)
            if not isinstance(answer, Hello):
                raise HandshakeError(
                    f"{address[0]}:{address[1]} answered the handshake with {type(answer).__name__}"
                )
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream, frames, answer

    async def _read_until_closed(
        self, frames: FrameStream, peer: str, remote: str, scope: trio.CancelScope
    ) -> None:
        """Read frames beside a writer until EOF or a broken stream, then end the connection
        (``scope``). On an outbound connection: answers for a client, nothing for a node."""
        try:
            await self._read_loop(frames, peer, remote)
        except CodecError as e:
            self.stats.dropped_too_large += 1
            self._log("bad_stream", level="warning", peer=peer, remote=remote, error=f"{e}; closing")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()

    async def _write_loop(self, stream: trio.abc.SendStream, link: Outbox, scope: trio.CancelScope) -> None:
        direct = stream.socket.fileno() if self.write_through and type(stream) is trio.SocketStream else None
        try:
            while True:
                link.direct = direct  # send() may write while this task waits with nothing queued
                try:
                    await link.wait_nonempty()
                finally:
                    link.direct = None
                await trio.sleep(0)  # let concurrent senders add to this batch
                batch = link.take(self.max_batch_bytes)
                await stream.send_all(b"".join(batch))
                self.stats.sent += len(batch)
                self.stats.batches += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            self._log("write_failed", level="warning", peer=link.node_id, error=reason(e))
            scope.cancel()

    # ---------------------------------------------------------------- inbound

    async def _handle_inbound(self, stream: trio.SocketStream) -> None:
        try:
            remote = "{}:{}".format(*stream.socket.getpeername()[:2])
        except OSError:
            remote = "?"
        conn: trio.abc.Stream = stream
        try:
            if self.ssl_server is not None:
                try:
                    conn = await wrap_server(stream, self.ssl_server, remote, self.handshake_timeout)
                except TlsHandshakeError as e:
                    self.stats.connections_refused += 1
                    self._log("tls_failed", level="warning", remote=remote, error=str(e))
                    return
            await self._accepted(conn, remote)
        finally:
            await trio.aclose_forcefully(conn)

    async def _accepted(self, stream: trio.abc.Stream, remote: str) -> None:
        """Serve one accepted connection (after TLS); subclasses may look at it first."""
        await self.serve_connection(stream, remote)

    async def serve_connection(
        self, stream: trio.abc.Stream, remote: str, *, clients_only: bool | None = None
    ) -> None:
        """Serve an accepted connection (its TLS, if any, done): handshake, then frames until
        it closes. Never raises for anything the peer does; the caller closes ``stream``.

        Args:
            stream: the connection.
            remote: the peer's ``host:port``, for the log.
            clients_only: refuse nodes on this connection (default: the transport's setting).
        """
        frames = FrameStream(stream, self.max_frame)
        peer: str | None = None
        scope = trio.CancelScope()
        link: Outbox | None = None
        try:
            only = self.clients_only if clients_only is None else clients_only
            accepted = await self._accept_handshake(stream, frames, remote, only)
            if accepted is None:
                return
            peer, client = accepted
            old = self._inbound.pop(peer, None)
            if old is not None:
                old.cancel()  # the peer reconnected: the old connection is stale
            self._inbound[peer] = scope
            self._log(
                "link_up", peer=peer, direction="in", remote=remote, **({"client": True} if client else {})
            )
            with scope:
                if not client:
                    await self._read_loop(frames, peer, remote)
                    return
                link = self._links[peer] = Outbox(peer, self.outbox_size, reverse=True)
                link.connected = True
                async with trio.open_nursery() as both:
                    both.start_soon(self._write_loop, stream, link, both.cancel_scope)
                    await self._read_until_closed(frames, peer, remote, both.cancel_scope)
        except CodecError as e:
            self.stats.dropped_too_large += 1
            self._log("bad_stream", level="warning", peer=peer or "?", remote=remote, error=f"{e}; closing")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            if link is not None and self._links.get(link.node_id) is link:
                del self._links[link.node_id]
            if peer is not None:
                if self._inbound.get(peer) is scope:
                    del self._inbound[peer]
                self._log("link_down", peer=peer, direction="in", remote=remote)

    async def _accept_handshake(
        self, stream: trio.abc.Stream, frames: FrameStream, remote: str, clients_only: bool
    ) -> tuple[str, bool] | None:
        """``(peer id, is a client)`` after a good Hello (answered), or None (refused)."""
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
        reason = self._refusal(hello, clients_only)
        if reason:
            self.stats.connections_refused += 1
            self._log("refused", level="warning", remote=remote, reason=reason)
            with trio.move_on_after(1):
                await stream.send_all(frame(encode(Refuse(reason))))
            return None
        await stream.send_all(frame(self._hello))
        assert isinstance(hello, Hello)
        return hello.node_id, hello.listen == ""

    def _refusal(self, hello: Any, clients_only: bool) -> str:
        """Why ``hello`` is refused ("" if it is not); learns a joining node's address."""
        why = hello_refusal(hello, self.cluster, self.node_id)
        if why:
            return why
        client = hello.listen == ""
        if client and hello.node_id in self.peers:
            return f"node id {hello.node_id!r} is a peer's id; a client needs an id of its own"
        if hello.node_id not in self.peers and not self.accept_joins:
            return (
                f"node id {hello.node_id!r} is not a known peer of {self.node_id!r}; add it to the peer list"
            )
        if clients_only and not client:
            return (
                f"node {hello.node_id!r} dialled {self.node_id!r} over plain TCP, which serves job clients "
                "only here: this cluster's nodes link over another transport (check TRANSPORT on every node)"
            )
        if not client and hello.node_id not in self.peers:
            try:
                self.add_peer(hello.node_id, parse_address(hello.listen))
            except ValueError as e:
                return f"node {hello.node_id!r} advertised a bad listen address: {e}"
            self._log("joined", peer=hello.node_id, listen=hello.listen)
        return ""

    def _refuse_quietly(self, remote: str, reason: str) -> None:
        self.stats.connections_refused += 1
        self._log("refused", level="warning", remote=remote, reason=reason)

    async def _read_loop(self, frames: FrameStream, peer: str, remote: str) -> None:
        deliver = self._deliver
        assert deliver is not None
        while True:
            body = await frames.next_body()
            if body is None:
                return
            envelope = self._opened(body, peer, remote=remote)
            if envelope is not None:
                deliver(*envelope)

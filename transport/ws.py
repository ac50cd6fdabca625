"""WebSocket transport: the TCP transport's frames carried in binary WebSocket messages.

How it works
------------
:class:`WsTransport` is :class:`~transport.tcp.TcpTransport` with another way of moving bytes,
so everything else is the same code: one connection per peer and direction, the handshake
(``tcp.Hello`` as the first message, refusing another cluster), bounded outboxes that drop the
oldest, batching (one message carries every pending frame, each still length-prefixed),
``max_frame``, reconnect with backoff and jitter, the stats, and clients answered on their own
connection.

- **Dialling**: a TCP connection to the peer's address, TLS if ``ssl_client`` (so ``wss://``),
  then the WebSocket opening handshake for ``ws://host:port/`` (trio-websocket's
  ``wrap_client_stream``). :class:`WsStream` turns the connection into a byte stream:
  ``send_all`` sends one binary message, ``receive_some`` returns the next one.
- **Listening** on ``NODE_LISTEN``: each accepted connection does TLS first (if
  ``ssl_server``), then its first four bytes say what it is: ``GET `` opens a WebSocket (the
  request is accepted by trio-websocket's ``wrap_server_stream``; a path other than ``/`` gets
  404), anything else is the plain TCP frame protocol of :class:`~transport.jobs_client.JobClient`,
  which therefore reaches a WebSocket cluster unchanged. Plain TCP serves clients only: a node
  dialling in without WebSocket (``TRANSPORT=tcp`` in a WebSocket cluster) is refused with a
  reason naming ``TRANSPORT``.

A text message breaks the link (frames travel in binary messages; counted as malformed); a
frame over ``max_frame`` closes the link like on TCP, and a message larger than a batch plus a
frame is closed by trio-websocket (code 1009); both are counted as ``dropped_too_large``. A failed
WebSocket handshake is a ``ws.connect_failed`` line and the dialler retries. Events are
``ws.*`` (``ws.link_up``, ``ws.refused``, ``ws.tls_failed``, ...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection

from .base import TransportStats
from .links import Address, HandshakeError
from .tcp import TcpTransport

MESSAGE_QUEUE = 16
"""Messages trio-websocket buffers per connection before its reader waits."""
RECEIVE_BUFFER = 1 << 16
"""Bytes trio-websocket reads from the socket at a time."""
MESSAGE_TOO_BIG = 1009
"""The close code of a message over the size limit (counted as ``dropped_too_large``)."""
_WS_ERRORS = (
    ConnectionClosed,
    trio_websocket.HandshakeError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


class WsStream(trio.abc.Stream):
    """A WebSocket connection as a byte stream: one binary message per ``send_all``.

    Args:
        ws: the open connection.
        raw: the stream under it (closed with it).
        stats: where a text message (``dropped_malformed``) and a message over the size limit
            (``dropped_too_large``) are counted.
    """

    def __init__(self, ws: WebSocketConnection, raw: trio.abc.Stream, stats: TransportStats) -> None:
        self.ws = ws
        self.raw = raw
        self.stats = stats

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.ws.send_message(bytes(data))
        except ConnectionClosed as e:
            raise trio.BrokenResourceError(f"websocket closed ({_close_text(e)})") from None

    async def wait_send_all_might_not_block(self) -> None:
        return

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            message = await self.ws.get_message()
        except ConnectionClosed as e:
            if e.reason is not None and e.reason.code == MESSAGE_TOO_BIG:
                self.stats.dropped_too_large += 1
            return b""
        if isinstance(message, str):
            self.stats.dropped_malformed += 1
            raise trio.BrokenResourceError("a text message arrived; frames travel in binary messages")
        return message

    async def aclose(self) -> None:
        try:
            await self.ws.aclose()
        finally:
            await trio.aclose_forcefully(self.raw)


class _Prefixed(trio.abc.Stream):
    """A stream whose first bytes were already read: ``receive_some`` gives them back first."""

    def __init__(self, stream: trio.abc.Stream, head: bytes) -> None:
        self.stream = stream
        self.head = head

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.head:
            head, self.head = self.head, b""
            return head
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Guarded:
    """A nursery for trio-websocket's reader task that keeps a broken connection's error in the
    connection (the task ends quietly, the connection reads as closed) and calls ``on_end`` when
    the task ends, so a handshake waiting on a dead connection stops waiting at once."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.error = ""
        self.on_end: Callable[[], None] | None = None

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.nursery.start_soon(self._run, fn, *args)

    async def _run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            await fn(*args)
        except (*_WS_ERRORS, OSError) as e:
            self.error = " ".join(str(e).split()) or type(e).__name__
        finally:
            if self.on_end is not None:
                self.on_end()


def _close_text(e: ConnectionClosed) -> str:
    r = e.reason
    return f"code {r.code}{': ' + r.reason if r.reason else ''}" if r is not None else "closed"


def ws_url(address: Address, tls: bool) -> str:
    """``ws://host:port/`` (``wss://`` with TLS; IPv6 hosts in brackets)."""
    host, port = address
    shown = f"[{host}]" if ":" in host else host
    return f"{'wss' if tls else 'ws'}://{shown}:{port}/"


class WsTransport(TcpTransport):
    """Carries envelopes over WebSocket (``ws://``, ``wss://`` with TLS); the arguments are
    :class:`~transport.tcp.TcpTransport`'s (see the module docstring)."""

    EVENTS = "ws"

    def _max_message(self) -> int:
        # a batch of small frames plus one frame up to the limit, so an oversized frame is seen
        # (and counted) by the frame reader rather than by trio-websocket
        return self.max_batch_bytes + self.max_frame + 64

    async def _connect(self, address: Address, conn: trio.Nursery) -> trio.abc.Stream:
        stream = await super()._connect(address, conn)
        host, port = address
        url = ws_url(address, self.ssl_client is not None)
        guard = _Guarded(conn)
        ws: WebSocketConnection | None = None
        try:
            with trio.move_on_after(self.connect_timeout) as handshake:
                guard.on_end = handshake.cancel
                ws = await trio_websocket.wrap_client_stream(
                    cast(trio.Nursery, guard),
                    cast(trio.SocketStream, stream),
                    f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                    "/",
                    message_queue_size=MESSAGE_QUEUE,
                    max_message_size=self._max_message(),
                    receive_buffer_size=RECEIVE_BUFFER,
                )
            guard.on_end = None
        except _WS_ERRORS as e:
            guard.error = guard.error or str(e) or type(e).__name__
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        if ws is None or ws.closed is not None:
            await trio.aclose_forcefully(stream)
            why = guard.error or f"no answer within {self.connect_timeout:g} s"
            raise HandshakeError(f"{url}: WebSocket handshake failed ({why})")
        return WsStream(ws, stream, self.stats)

    async def _accepted(self, stream: trio.abc.Stream, remote: str) -> None:
        head = b""
        with trio.move_on_after(self.handshake_timeout):
            while len(head) < 4:
                chunk = await stream.receive_some(4 - len(head))
                if not chunk:
                    break
                head += bytes(chunk)
        if len(head) < 4:
            self._refuse_quietly(remote, "no handshake (closed or timed out)")
            return
        prefixed = _Prefixed(stream, head)
        if head != b"GET ":
            await self.serve_connection(prefixed, remote, clients_only=True)
            return
        failed = ""
        try:
            async with trio.open_nursery() as conn:
                failed = await self._serve_websocket(conn, prefixed, stream, remote)
                conn.cancel_scope.cancel()
        except* _WS_ERRORS as group:
            failed = " ".join(str(group.exceptions[0]).split()) or type(group.exceptions[0]).__name__
        if failed:
            self._refuse_quietly(remote, f"websocket handshake failed: {failed}")

    async def _serve_websocket(
        self, conn: trio.Nursery, prefixed: trio.abc.Stream, raw: trio.abc.Stream, remote: str
    ) -> str:
        """Open the WebSocket and serve it; why the opening handshake failed, or ""."""
        guard = _Guarded(conn)
        ws: WebSocketConnection | None = None
        with trio.move_on_after(self.handshake_timeout) as handshake:
            guard.on_end = handshake.cancel
            request = await trio_websocket.wrap_server_stream(
                cast(trio.Nursery, guard),
                prefixed,
                message_queue_size=MESSAGE_QUEUE,
                max_message_size=self._max_message(),
                receive_buffer_size=RECEIVE_BUFFER,
            )
            if request.path != "/":
                await request.reject(404)
                return f"path {request.path!r} is not '/'"
            ws = await request.accept()
        guard.on_end = None
        if ws is None:
            return guard.error or f"no opening handshake within {self.handshake_timeout:g} s"
        await self.serve_connection(WsStream(ws, raw, self.stats), remote)
        return ""

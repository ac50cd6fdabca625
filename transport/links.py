"""What every node link shares: the handshake messages, the bounded outbox and the frame stream.

The transports of the family (:mod:`transport.tcp`, :mod:`transport.ws`,
:mod:`transport.redis_transport`) speak the same small protocol, kept here:

- :class:`Hello` opens every connection (and heads every Redis frame): cluster name, node id,
  protocol version and the address the sender listens on (``""`` for a job client, which
  listens nowhere); :class:`Refuse` is the answer to an unacceptable one. A refusal by the
  other side is raised as :class:`Refused`; other unusable answers as :class:`HandshakeError`;
  :data:`DIAL_ERRORS` lists what a failed dial may raise (logged in one line and retried).
- :class:`Outbox` is a peer's bounded queue of encoded frames: full, it drops its **oldest**
  frame (fresh heartbeats beat stale ones), and it hands out batches by size and count.
- :class:`FrameStream` cuts a byte stream into frame bodies with
  :class:`~transport.codec.FrameReader`, keeping any extra bodies a read brought.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import trio

from actors import message

from .codec import CodecError, FrameReader
from .tls import TlsHandshakeError

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
    """The address this node accepts connections on, ``host:port`` (for joins); ``""`` for a
    client that listens nowhere and is answered on the connection it dialled."""


def hello_refusal(hello: Any, cluster: str, node_id: str) -> str:
    """Why a peer's ``hello`` is refused by node ``node_id`` of ``cluster`` whatever the
    transport ("" if these checks pass): not a Hello, another version or cluster, our own id."""
    if not isinstance(hello, Hello):
        return f"expected tcp.Hello first, got {type(hello).__name__}"
    if hello.version != PROTOCOL_VERSION:
        return f"protocol version {hello.version} not supported (this node speaks {PROTOCOL_VERSION})"
    if hello.cluster != cluster:
        return f"cluster {hello.cluster!r} is not this node's cluster {cluster!r}"
    if hello.node_id == node_id:
        return f"node id {hello.node_id!r} is this node's own id"
    return ""


@message("tcp.Refuse")
@dataclass(frozen=True, slots=True)
class Refuse:
    """The listener's answer to an unacceptable Hello, sent just before it closes."""

    reason: str


class HandshakeError(Exception):
    """The other side refused us, or its answer was not acceptable."""


class Refused(HandshakeError):
    """The other side answered our Hello with :class:`Refuse` (the message is its reason)."""


DIAL_ERRORS = (
    OSError,
    HandshakeError,
    TlsHandshakeError,
    CodecError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)
"""What a failed dial raises (logged in one line and retried)."""


def parse_address(text: str) -> Address:
    """Parse ``host:port`` (IPv6 as ``[::1]:7001``).

    Raises:
        ValueError: not ``host:port`` with a port in 0..65535.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} is not host:port (for example 127.0.0.1:7001)")
    return host.strip("[]"), int(port_text)


class FrameStream:
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


class Outbox:
    """Frames waiting for one peer: a bounded queue that drops its oldest, and a wake-up event.

    ``reverse`` marks the outbox of a client, written on the connection the client dialled.
    """

    def __init__(self, node_id: str, capacity: int, reverse: bool = False):
        self.node_id = node_id
        self.capacity = capacity
        self.reverse = reverse
        self.frames: deque[bytes] = deque()
        self.wake = trio.Event()
        self.connected = False
        self.direct: int | None = None  # the socket's fd while its writer waits with nothing queued
        self.last_direct = float("-inf")  # trio time of the last frame written by the sender itself

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False if the oldest frame had to be dropped for it."""
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

    def take(self, max_bytes: int, max_count: int | None = None) -> list[bytes]:
        """The oldest frames up to ``max_bytes`` in all (at least one if any) and at most
        ``max_count`` of them."""
        out: list[bytes] = []
        size = 0
        frames = self.frames
        limit = len(frames) if max_count is None else max(1, max_count)
        while frames and len(out) < limit and (not out or size + len(frames[0]) <= max_bytes):
            f = frames.popleft()
            out.append(f)
            size += len(f)
        return out

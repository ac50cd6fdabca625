"""Redis transport: every node's inbox is a Redis list; senders push batches, owners pop them.

How it works
------------
Node ``n`` of cluster ``c`` reads its inbox, the list ``troupe:c:inbox:n``; the cluster name
in the key keeps clusters sharing one Redis apart. Each list element is one frame: the sender's
``tcp.Hello(cluster, node_id, version, "")`` (length-prefixed, as on a TCP stream) followed by
the envelope body made by the codec, so every frame says who sent it and from which cluster.

- **Sending** (never blocks): ``send`` encodes the envelope into the peer's bounded
  :class:`~transport.links.Outbox` (full: the oldest frame is dropped and counted). One writer
  task drains every outbox into one pipeline per round trip: per peer, ``RPUSH`` of its
  pending frames (up to ``max_batch_bytes`` and half of ``inbox_limit``), ``LTRIM`` and
  ``PEXPIRE`` (below).
- **Backpressure**: ``RPUSH`` answers the inbox's length. While a peer's inbox holds more
  than half of ``inbox_limit`` (its reader lags, or it is down), pushes to it pause for
  :data:`SLOW_PEER_PAUSE` at a time and its frames wait in its outbox, as a TCP window would
  make them wait; so a burst is dropped, if at all, from the sender's outbox (oldest first)
  rather than trimmed from the inbox.
- **Receiving**: one reader task on a connection of its own blocks in
  ``BLMPOP pop_timeout 1 inbox LEFT COUNT pop_count`` (Redis 7.0 or later), so up to
  ``pop_count`` frames come per round trip and an idle node asks once per ``pop_timeout``.
  Each frame's header is checked (decoded once per distinct sender, then remembered): another
  cluster, another protocol version, our own id, or an unknown node while ``accept_joins`` is
  off are refused and counted in ``connections_refused`` (one line per sender); a body that
  does not decode, that claims another source node, or is over ``max_frame`` is dropped and
  counted; nothing a frame holds can stop the node.
- **Bounded inboxes**: after each push the inbox is trimmed to its newest ``inbox_limit``
  frames (``LTRIM key -limit -1``), so a dead node's inbox holds at most ``inbox_limit`` frames
  (the pushes it loses are counted in ``extra["inbox_trimmed"]`` and logged once per episode
  as ``redis.inbox_trimmed``), and it expires ``inbox_ttl`` seconds after the last push, so the
  inboxes of a stopped cluster go away. A starting node empties its own inbox first (counted in
  ``extra["stale_dropped"]``): frames sent to its previous life are not delivered to this one.
- **Redis down**: the node keeps running. Each task logs one ``redis.unavailable`` line
  (``role`` writer or reader), retries with exponential backoff and full jitter and logs
  ``redis.recovered`` when Redis answers again. Frames of a push that failed are lost (counted
  in ``extra["lost_redis_down"]``): delivery is at most once, as over TCP.

Connections use :class:`~transport.redis_conn.RedisConn` (trio-native, cancellable; see
FINDINGS.md, "Redis from trio"). Job clients do not talk Redis: :mod:`transport.transports`
puts this transport beside a TCP listener for them.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from typing import Any

import trio

from actors import ActorRef

from .base import Deliver, Transport, TransportStats
from .codec import DEFAULT_MAX_FRAME, CodecError, decode, encode, frame
from .events import EventLog
from .links import PROTOCOL_VERSION, Hello, Outbox, hello_refusal
from .redis_conn import Arg, RedisConn, RedisReplyError, RedisUnavailable

INBOX_LIMIT = 10_000
"""Frames an inbox keeps; older ones are trimmed (a dead node's inbox stays this small)."""
INBOX_TTL = 3600.0
"""Seconds an inbox lives after the last push to it."""
SLOW_PEER_PAUSE = 0.02
"""Seconds pushes to a peer wait while its inbox is more than half full."""
_LEN = struct.Struct(">I")
_MAX_SENDERS = 1024  # distinct frame headers remembered


def inbox_key(cluster: str, node_id: str) -> str:
    """The Redis list holding ``node_id``'s inbox in ``cluster``."""
    return f"troupe:{cluster}:inbox:{node_id}"


class RedisTransport(Transport):
    """Carries envelopes through Redis lists, one inbox per node (see the module docstring).

    Args:
        node_id: this node's id.
        cluster: the cluster name (part of every key; frames of another cluster are refused).
        peers: the ids of the other nodes (more with :meth:`add_peer`, or by ``accept_joins``).
        host, port, db, password: the Redis server.
        events: where ``redis.*`` diagnostics go (None: nowhere).
        outbox_size: frames queued per peer before the oldest is dropped.
        max_frame: largest envelope body sent or accepted, in bytes.
        max_batch_bytes: most bytes of one peer's frames in one ``RPUSH``.
        inbox_limit: frames an inbox keeps (``LTRIM``).
        inbox_ttl: seconds an inbox lives after the last push (``PEXPIRE``).
        pop_timeout: seconds one ``BLMPOP`` blocks.
        pop_count: most frames one ``BLMPOP`` takes.
        backoff_base, backoff_max: reconnect delays while Redis is down, in seconds.
        accept_joins: accept frames of unknown nodes of this cluster and answer them.
        clear_inbox: empty this node's inbox when it starts (frames for a previous life).
    """

    EVENTS = "redis"

    def __init__(
        self,
        node_id: str,
        cluster: str,
        peers: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        events: EventLog | None = None,
        outbox_size: int = 10_000,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_batch_bytes: int = 1 << 20,
        inbox_limit: int = INBOX_LIMIT,
        inbox_ttl: float = INBOX_TTL,
        pop_timeout: float = 1.0,
        pop_count: int = 1000,
        backoff_base: float = 0.05,
        backoff_max: float = 2.0,
        accept_joins: bool = False,
        clear_inbox: bool = True,
    ) -> None:
        self.node_id = node_id
        self.cluster = cluster
        self.peers: set[str] = {p for p in peers if p != node_id}
        self.events = events
        self.outbox_size = outbox_size
        self.max_frame = max_frame
        self.max_batch_bytes = max_batch_bytes
        self.inbox_limit = inbox_limit
        self.inbox_ttl = inbox_ttl
        self.pop_timeout = pop_timeout
        self.pop_count = pop_count
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.accept_joins = accept_joins
        self.clear_inbox = clear_inbox
        self.stats = TransportStats(extra={"inbox_trimmed": 0, "stale_dropped": 0, "lost_redis_down": 0})
        self.inbox = inbox_key(cluster, node_id)
        self._redis = (host, port, db, password)
        self._header = frame(encode(Hello(cluster, node_id, PROTOCOL_VERSION, "")))
        self._outboxes: dict[str, Outbox] = {}
        self._wake = trio.Event()
        self._senders: dict[bytes, str] = {}  # frame header -> sender id, or "" if refused
        self._trimming: set[str] = set()
        self._resume_at: dict[str, float] = {}  # peer -> when pushes to it may go on
        self._down: set[str] = set()
        self._deliver: Deliver | None = None
        self._scope = trio.CancelScope()
        self._running = False
        self._jitter = random.Random()

    @property
    def address(self) -> str:
        """``host:port`` of the Redis server."""
        return f"{self._redis[0]}:{self._redis[1]}"

    def add_peer(self, node_id: str) -> None:
        """Let this node send to ``node_id`` (and accept its frames)."""
        if node_id != self.node_id and node_id not in self.peers:
            self.peers.add(node_id)
            self._senders.clear()  # forget refusals of this node's frames

    def connected_peers(self) -> set[str]:
        """Peers this node can reach now (all of them while Redis answers the writer)."""
        return set() if "writer" in self._down or not self._running else set(self.peers)

    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        self._deliver = deliver
        await nursery.start(self._run)

    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        body = self._envelope(src, dst, msg)
        if body is None:
            return False
        outbox = self._outboxes.get(dst.node)
        if outbox is None:
            if dst.node not in self.peers or not self._running:
                self.stats.dropped_unroutable += 1
                return False
            outbox = self._outboxes[dst.node] = Outbox(dst.node, self.outbox_size)
        ok = outbox.put(self._header + body)
        if not ok:
            self.stats.dropped_outbox_full += 1
        self._wake.set()
        return ok

    async def aclose(self) -> None:
        self._scope.cancel()
        self._running = False

    # ---------------------------------------------------------------- running

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._running = True
                    nursery.start_soon(self._writer)
                    # ready once the stale inbox is cleared: a frame pushed after start is kept
                    await nursery.start(self._reader)
                    task_status.started()
        finally:
            self._running = False

    def _conn(self, timeout: float) -> RedisConn:
        host, port, db, password = self._redis
        return RedisConn(host, port, db, password, connect_timeout=min(5.0, timeout), timeout=timeout)

    def _failed(self, role: str, error: Exception) -> None:
        if role not in self._down:
            self._down.add(role)
            self._log(
                "unavailable",
                level="error",
                role=role,
                redis=self.address,
                error=" ".join(str(error).split()),
                retry="with backoff",
            )

    def _recovered(self, role: str) -> None:
        if role in self._down:
            self._down.discard(role)
            self._log("recovered", role=role, redis=self.address)

    async def _backoff(self, attempt: int) -> None:
        delay = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30))
        await trio.sleep(delay * self._jitter.uniform(0.5, 1.0))

    # ---------------------------------------------------------------- sending

    async def _writer(self) -> None:
        conn = self._conn(10.0)
        attempt = 0
        try:
            while True:
                while not any(o.frames for o in self._outboxes.values()):
                    self._wake = trio.Event()
                    await self._wake.wait()
                await trio.sleep(0)  # let concurrent senders add to this batch
                commands: list[tuple[Arg, ...]] = []
                batches: list[tuple[str, int]] = []
                ttl_ms = max(1, int(self.inbox_ttl * 1000))
                now = trio.current_time()
                resume = float("inf")
                for outbox in self._outboxes.values():
                    if not outbox.frames:
                        continue
                    if self._resume_at.get(outbox.node_id, 0.0) > now:
                        resume = min(resume, self._resume_at[outbox.node_id])
                        continue
                    frames = outbox.take(self.max_batch_bytes, self.inbox_limit // 2)
                    key = inbox_key(self.cluster, outbox.node_id)
                    commands += [
                        ("RPUSH", key, *frames),
                        ("LTRIM", key, -self.inbox_limit, -1),
                        ("PEXPIRE", key, ttl_ms),
                    ]
                    batches.append((outbox.node_id, len(frames)))
                if not commands:  # every peer with frames waits for its inbox to drain
                    await trio.sleep_until(resume)
                    continue
                try:
                    replies = await conn.pipeline(commands, raise_errors=False)
                except RedisUnavailable as e:
                    self.stats.extra["lost_redis_down"] += sum(n for _peer, n in batches)
                    self._failed("writer", e)
                    attempt += 1
                    await self._backoff(attempt)
                    continue
                attempt = 0
                self._recovered("writer")
                self.stats.batches += 1
                for i, (peer, n) in enumerate(batches):
                    self._pushed(peer, n, replies[3 * i])
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    def _pushed(self, peer: str, n: int, reply: Any) -> None:
        if isinstance(reply, RedisReplyError) or not isinstance(reply, int):
            self.stats.extra["lost_redis_down"] += n
            self._log("push_failed", level="warning", peer=peer, error=" ".join(str(reply).split()))
            return
        self.stats.sent += n
        if reply > self.inbox_limit // 2:
            self._resume_at[peer] = trio.current_time() + SLOW_PEER_PAUSE
        else:
            self._resume_at.pop(peer, None)
        if reply > self.inbox_limit:
            self.stats.extra["inbox_trimmed"] += min(n, reply - self.inbox_limit)
            if peer not in self._trimming:
                self._trimming.add(peer)
                self._log(
                    "inbox_trimmed",
                    level="warning",
                    peer=peer,
                    limit=self.inbox_limit,
                    note="the peer does not read its inbox (down?); its oldest frames are dropped",
                )
        else:
            self._trimming.discard(peer)

    # ---------------------------------------------------------------- receiving

    async def _reader(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        conn = self._conn(self.pop_timeout + 10.0)
        cleared = not self.clear_inbox
        ready = False
        attempt = 0
        try:
            while True:
                try:
                    if not cleared:
                        stale, _ = await conn.pipeline([("LLEN", self.inbox), ("DEL", self.inbox)])
                        cleared = True
                        if stale:
                            self.stats.extra["stale_dropped"] += int(stale)
                            self._log("inbox_cleared", inbox=self.inbox, stale=int(stale))
                    if not ready:
                        ready = True
                        task_status.started()
                    reply = await conn.execute(
                        "BLMPOP", self.pop_timeout, 1, self.inbox, "LEFT", "COUNT", self.pop_count
                    )
                except (RedisUnavailable, RedisReplyError) as e:
                    self._failed("reader", e)
                    if not ready:  # Redis is down at start: do not hold the node back
                        ready = True
                        task_status.started()
                    attempt += 1
                    await self._backoff(attempt)
                    continue
                attempt = 0
                self._recovered("reader")
                if reply is not None:
                    for element in reply[1]:
                        self._receive(element)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    def _receive(self, element: bytes) -> None:
        size = _LEN.unpack_from(element)[0] if len(element) >= 4 else -1
        if size < 0 or 4 + size > len(element) or size > 4096:
            self.stats.dropped_malformed += 1
            self._log("bad_frame", level="warning", error="no sender header")
            return
        header = element[4 : 4 + size]
        sender = self._senders.get(header)
        if sender is None:
            sender = self._sender(header)
        if not sender:
            self.stats.connections_refused += 1
            return
        body = element[4 + size :]
        if len(body) > self.max_frame:
            self.stats.dropped_too_large += 1
            self._log(
                "bad_frame", level="warning", peer=sender, error=f"{len(body)} bytes > {self.max_frame}"
            )
            return
        envelope = self._opened(body, sender)
        if envelope is not None:
            assert self._deliver is not None
            self._deliver(*envelope)

    def _sender(self, header: bytes) -> str:
        """The node id a frame header names, or "" if refused (logged once per header)."""
        try:
            hello: Any = decode(header, 4096)
            why = self._refusal(hello)
        except CodecError as e:
            hello, why = None, f"malformed sender header: {e}"
        if len(self._senders) >= _MAX_SENDERS:
            self._senders.clear()
        if why:
            self._log("refused", level="warning", inbox=self.inbox, reason=why)
            self._senders[header] = ""
            return ""
        if hello.node_id not in self.peers:
            self.add_peer(hello.node_id)
            self._log("joined", peer=hello.node_id)
        self._senders[header] = hello.node_id
        return str(hello.node_id)

    def _refusal(self, hello: Any) -> str:
        why = hello_refusal(hello, self.cluster, self.node_id)
        if why:
            return why
        if hello.node_id not in self.peers and not self.accept_joins:
            return (
                f"node id {hello.node_id!r} is not a known peer of {self.node_id!r}; add it to the peer list"
            )
        return ""

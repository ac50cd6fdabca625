"""The transport family over real sockets: TCP with TLS and with mutual TLS, WebSocket (ws and
wss) and Redis (a real redis-server). The same specification runs against each member: frames
arrive both ways, batched; a foreign cluster is refused; malformed and oversized frames are
dropped and counted while the link keeps working; a restarted peer is reached again; a
JobClient reaches the node. Then what only one member has."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio_websocket
from troupe_testkit.redis_server import RedisServer

from actors import ActorRef, message
from actors.jobs.protocol import StoreReply, StoreRequest
from transport.base import Transport
from transport.codec import encode, frame
from transport.events import EventLog
from transport.jobs_client import JobClient, JobError
from transport.redis_conn import RedisConn
from transport.redis_transport import RedisTransport, inbox_key
from transport.service_settings import TlsSettings
from transport.tcp import PROTOCOL_VERSION, Hello, TcpTransport
from transport.tls import client_context, server_context
from transport.transports import NodeLinks
from transport.ws import WsTransport

LOOP = "127.0.0.1"
KINDS = ("tcp-tls", "tcp-mtls", "ws", "wss", "redis")


@message("test.transports.Note")
@dataclass(frozen=True, slots=True)
class Note:
    seq: int
    text: str


@dataclass
class Node:
    transport: Any
    got: list[tuple[ActorRef, ActorRef, Any]] = field(default_factory=list)

    def deliver(self, src: ActorRef, dst: ActorRef, msg: Any) -> None:
        self.got.append((src, dst, msg))

    @property
    def id(self) -> str:
        return str(self.transport.node_id)

    @property
    def port(self) -> int:
        return int(self.transport.listen_address[1])

    def notes(self) -> list[Note]:
        return [m for _s, _d, m in self.got if isinstance(m, Note)]


class Net:
    """Makes transports of one kind that can reach each other, on one event log."""

    def __init__(self, kind: str, pki: Any, redis: RedisServer) -> None:
        self.kind = kind
        self.pki = pki
        self.redis = redis
        self.events = EventLog()
        self.cluster = f"c-{uuid.uuid4().hex[:8]}"
        self.prefix = {"ws": "ws", "wss": "ws", "redis": "redis"}.get(kind, "tcp")

    def tls(self) -> TlsSettings | None:
        if self.kind in ("tcp-tls", "wss"):
            return self.pki.tls()
        if self.kind == "tcp-mtls":
            return self.pki.tls(mutual=True)
        return None

    def make(self, node_id: str, cluster: str | None = None, port: int = 0, **kw: Any) -> Transport:
        cluster = cluster or self.cluster
        if self.kind == "redis":
            return RedisTransport(
                node_id,
                cluster,
                [],
                port=self.redis.port,
                events=self.events,
                backoff_max=0.2,
                pop_timeout=0.2,
                **kw,
            )
        tls = kw.pop("tls", self.tls())
        cls = WsTransport if self.kind in ("ws", "wss") else TcpTransport
        ssl = {} if tls is None else {"ssl_server": server_context(tls), "ssl_client": client_context(tls)}
        return cls(node_id, cluster, (LOOP, port), {}, events=self.events, backoff_max=0.2, **ssl, **kw)

    async def start(self, nursery: trio.Nursery, node_id: str, **kw: Any) -> Node:
        node = Node(self.make(node_id, **kw))
        await node.transport.start(nursery, node.deliver)
        return node

    def link(self, *nodes: Node) -> None:
        for a in nodes:
            for b in nodes:
                if a is not b:
                    if self.kind == "redis":
                        a.transport.add_peer(b.id)
                    else:
                        a.transport.add_peer(b.id, (LOOP, b.port))

    def find(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return self.events.find(f"{self.prefix}.{kind}", **match)


@pytest.fixture(params=KINDS)
def net(request: pytest.FixtureRequest, pki: Any, redis_server: RedisServer) -> Net:
    return Net(request.param, pki, redis_server)


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return True
    return pred()


def refs(a: str, b: str) -> tuple[ActorRef, ActorRef]:
    return ActorRef(a, "x"), ActorRef(b, "x")


async def send_until(node: Node, to: Node, note: Note, timeout: float = 15.0) -> bool:
    """Send ``note`` every 50 ms until ``to`` has it (links may be reconnecting)."""
    with trio.move_on_after(timeout):
        while note not in to.notes():
            node.transport.send(*refs(node.id, to.id), note)
            await trio.sleep(0.05)
        return True
    return False


# --- the same specification for every member -------------------------------------------------


async def test_frames_arrive_both_ways(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        a, b = await net.start(nursery, "a"), await net.start(nursery, "b")
        net.link(a, b)
        assert a.transport.send(*refs("a", "b"), Note(1, "hello"))
        assert await wait_for(lambda: len(b.got) == 1)
        assert b.got[0] == (*refs("a", "b"), Note(1, "hello"))
        assert b.transport.send(*refs("b", "a"), Note(2, "back"))
        assert await wait_for(lambda: a.notes() == [Note(2, "back")])
        if net.kind != "redis":
            assert net.find("link_up", node="b", peer="a", direction="in")
        nursery.cancel_scope.cancel()


async def test_many_frames_are_batched_and_arrive_in_order(net: Net) -> None:
    n = 5000
    async with trio.open_nursery() as nursery:
        a, b = await net.start(nursery, "a", outbox_size=n), await net.start(nursery, "b")
        net.link(a, b)
        t0 = trio.current_time()
        for i in range(n):
            a.transport.send(*refs("a", "b"), Note(i, "payload"))
        assert await wait_for(lambda: len(b.got) == n, timeout=30)
        elapsed = trio.current_time() - t0
        assert [m.seq for m in b.notes()] == list(range(n))
        stats = a.transport.stats
        assert stats.sent == n and stats.dropped_outbox_full == 0 and b.transport.stats.received == n
        assert stats.batches < n / 10, stats
        print(f"{net.kind}: {n} frames in {elapsed:.3f} s = {n / elapsed:,.0f}/s in {stats.batches} batches")
        nursery.cancel_scope.cancel()


async def test_a_full_outbox_drops_the_oldest_and_counts(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        a, b = await net.start(nursery, "a", outbox_size=10), await net.start(nursery, "b")
        net.link(a, b)
        results = [a.transport.send(*refs("a", "b"), Note(i, "")) for i in range(25)]
        assert results.count(False) == 15 and a.transport.stats.dropped_outbox_full == 15
        assert await wait_for(lambda: len(b.got) == 10)
        assert [m.seq for m in b.notes()] == list(range(15, 25))
        nursery.cancel_scope.cancel()


async def test_a_peer_of_another_cluster_is_refused(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        b = await net.start(nursery, "b")
        if net.kind == "redis":
            # Given a sender whose frames say cluster "blue", pushing into b's inbox
            mallory = net.make("a", cluster="blue")
            assert isinstance(mallory, RedisTransport)
            mallory.cluster = net.cluster  # its header still says "blue"; the key is b's
            a = Node(mallory)
            await mallory.start(nursery, a.deliver)
            mallory.add_peer("b")
            b.transport.add_peer("a")
        else:
            a = await net.start(nursery, "a", cluster="blue")
            net.link(a, b)
        for i in range(3):
            a.transport.send(*refs("a", "b"), Note(i, "hi"))
        assert await wait_for(lambda: b.transport.stats.connections_refused >= 1)
        refusals = net.find("refused", node="b")
        assert (
            refusals and f"cluster 'blue' is not this node's cluster '{net.cluster}'" in refusals[0]["reason"]
        )
        if net.kind != "redis":
            assert await wait_for(lambda: bool(net.find("connect_failed", node="a", peer="b")))
            assert "refused us" in net.find("connect_failed", node="a")[0]["error"]
        await trio.sleep(0.3)
        assert b.got == []
        nursery.cancel_scope.cancel()


async def test_malformed_and_oversized_frames_are_dropped_and_the_link_keeps_working(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        a, b = await net.start(nursery, "a"), await net.start(nursery, "b", max_frame=2000)
        net.link(a, b)
        # A frame whose field has the wrong type: dropped, counted, logged; the link stays
        a.transport.send(*refs("a", "b"), Note("not-an-int", "x"))  # type: ignore[arg-type]
        a.transport.send(*refs("a", "b"), Note(1, "after the bad one"))
        assert await wait_for(lambda: Note(1, "after the bad one") in b.notes())
        assert b.transport.stats.dropped_malformed == 1
        assert "expected int" in net.find("bad_frame", node="b")[0]["error"]
        # A frame over b's limit: dropped and counted (TCP and WebSocket close that link, since
        # a stream cannot be resynchronised after it, and a reconnects)
        a.transport.send(*refs("a", "b"), Note(2, "x" * 5000))
        assert await wait_for(lambda: b.transport.stats.dropped_too_large == 1)
        assert await send_until(a, b, Note(3, "still linked"))
        assert Note(2, "x" * 5000) not in b.notes()
        nursery.cancel_scope.cancel()


async def test_a_restarted_peer_is_reached_again(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        a = await net.start(nursery, "a")
        async with trio.open_nursery() as b_nursery:
            b = await net.start(b_nursery, "b")
            net.link(a, b)
            port = 0 if net.kind == "redis" else b.port
            a.transport.send(*refs("a", "b"), Note(1, "first"))
            assert await wait_for(lambda: len(b.got) == 1)
            await b.transport.aclose()
        if net.kind != "redis":
            assert await wait_for(lambda: bool(net.find("link_down", node="a", peer="b", direction="out")))
        a.transport.send(*refs("a", "b"), Note(2, "while b is down"))
        await trio.sleep(0.3)
        async with trio.open_nursery() as b_nursery:
            b2 = await net.start(b_nursery, "b", port=port)
            net.link(a, b2)
            assert await send_until(a, b2, Note(3, "again")), "a never reached the restarted b"
            if net.kind == "redis":  # frames for b's previous life were dropped at its start
                assert Note(2, "while b is down") not in b2.notes()
                assert b2.transport.stats.extra["stale_dropped"] >= 1
            else:
                assert len(net.find("link_up", node="a", peer="b", direction="out")) >= 2
            b_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_a_job_client_reaches_the_node(net: Net) -> None:
    async with trio.open_nursery() as nursery:
        peers = net.make("n1")
        if isinstance(peers, RedisTransport):
            tls = None
            clients = TcpTransport("n1", net.cluster, (LOOP, 0), {}, accept_joins=True, clients_only=True)
            node = Node(NodeLinks(peers, clients))
        else:
            tls = net.tls()
            peers.accept_joins = True
            node = Node(peers)

        def answer(src: ActorRef, dst: ActorRef, msg: Any) -> None:
            if isinstance(msg, StoreRequest):
                node.transport.send(dst, src, StoreReply(msg.req, {"node": "n1", "op": msg.command["op"]}))

        await node.transport.start(nursery, answer)
        opts: dict[str, Any] = {}
        if tls is not None:
            opts = {"ca_file": tls.ca_file}
            if tls.mutual:
                opts.update(cert_file=net.pki.cert, key_file=net.pki.key)
        async with JobClient(f"{LOOP}:{node.port}", cluster=net.cluster, timeout=10, **opts) as jobs:
            assert await jobs.request({"op": "stats"}) == {"node": "n1", "op": "stats"}
            assert await jobs.request({"op": "list"}) == {"node": "n1", "op": "list"}
        nursery.cancel_scope.cancel()


# --- TLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp-mtls", "wss"])
async def test_mutual_tls_refuses_a_peer_with_a_certificate_from_another_ca(
    kind: str, pki: Any, redis_server: RedisServer
) -> None:
    net = Net(kind, pki, redis_server)
    mutual = pki.tls(mutual=True)
    async with trio.open_nursery() as nursery:
        b = await net.start(nursery, "b", tls=mutual)
        intruder = await net.start(nursery, "a", tls=pki.intruder())
        net.link(intruder, b)
        intruder.transport.send(*refs("a", "b"), Note(1, "let me in"))
        assert await wait_for(lambda: bool(net.find("tls_failed", node="b")))
        assert "certificate verify failed" in net.find("tls_failed", node="b")[0]["error"]
        assert await wait_for(lambda: bool(net.find("connect_failed", node="a", peer="b")))
        assert b.transport.stats.connections_refused >= 1
        # Given a member of the cluster, Expect b to go on serving it
        member = await net.start(nursery, "m", tls=mutual)
        net.link(member, b)
        assert await send_until(member, b, Note(2, "member"))
        assert all(src.node == "m" for src, _d, _m in b.got)
        # And a job client without a certificate is refused in one line
        with pytest.raises(JobError, match=f"no node answered within 2 s .*{b.port}"):
            async with JobClient(f"{LOOP}:{b.port}", cluster=net.cluster, timeout=2, ca_file=pki.ca) as jobs:
                await jobs.stats()
        nursery.cancel_scope.cancel()


async def test_the_dialler_checks_the_peers_host_name(pki: Any, redis_server: RedisServer) -> None:
    # Given b with a certificate that names only "localhost", dialled at 127.0.0.1
    net = Net("tcp-tls", pki, redis_server)
    async with trio.open_nursery() as nursery:
        wrong_name = TlsSettings(True, pki.localhost_cert, pki.localhost_key, pki.ca, False)
        b = await net.start(nursery, "b", tls=wrong_name)
        a = await net.start(nursery, "a")
        net.link(a, b)
        a.transport.send(*refs("a", "b"), Note(1, "hi"))
        assert await wait_for(lambda: bool(net.find("connect_failed", node="a", peer="b")))
        error = net.find("connect_failed", node="a")[0]["error"]
        assert "certificate verify failed" in error and "127.0.0.1" in error, error
        await trio.sleep(0.2)
        assert b.got == []
        nursery.cancel_scope.cancel()


async def test_plain_tcp_to_a_tls_listener_is_refused_and_the_listener_keeps_serving(
    pki: Any, redis_server: RedisServer
) -> None:
    net = Net("tcp-tls", pki, redis_server)
    async with trio.open_nursery() as nursery:
        b = await net.start(nursery, "b")
        plain = await net.start(nursery, "p", tls=None)
        net.link(plain, b)
        plain.transport.send(*refs("p", "b"), Note(1, "in clear"))
        assert await wait_for(lambda: bool(net.find("tls_failed", node="b")))
        a = await net.start(nursery, "a")
        net.link(a, b)
        assert await send_until(a, b, Note(2, "encrypted"))
        assert [src.node for src, _d, _m in b.got] == ["a"]
        nursery.cancel_scope.cancel()


# --- WebSocket ---------------------------------------------------------------------------------


async def test_websocket_refuses_text_messages_plain_tcp_nodes_and_other_paths(
    pki: Any, redis_server: RedisServer
) -> None:
    net = Net("ws", pki, redis_server)
    async with trio.open_nursery() as nursery:
        b = await net.start(nursery, "b", accept_joins=True)
        # A text message after a good handshake: counted as malformed, that link closes
        # (over our own socket: trio-websocket's client leaks its socket when the server hangs up)
        raw = await trio.open_tcp_stream(LOOP, b.port)
        async with trio.open_nursery() as conn:
            ws = await trio_websocket.wrap_client_stream(conn, raw, f"{LOOP}:{b.port}", "/")
            await ws.send_message(frame(encode(Hello(net.cluster, "m", PROTOCOL_VERSION, f"{LOOP}:9"))))
            await ws.get_message()  # b's Hello
            await ws.send_message("not binary")
            with pytest.raises(trio_websocket.ConnectionClosed), trio.fail_after(5):
                await ws.get_message()
        await raw.aclose()
        assert b.transport.stats.dropped_malformed == 1
        # A path other than / is rejected (a raw request: trio-websocket's client leaks its
        # socket when rejected)
        stream = await trio.open_tcp_stream(LOOP, b.port)
        await stream.send_all(
            b"GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with trio.fail_after(5):
            assert (await stream.receive_some(100)).startswith(b"HTTP/1.1 404")
        await stream.aclose()
        assert await wait_for(
            lambda: any("path '/other'" in r["reason"] for r in net.find("refused", node="b"))
        )
        # A node speaking plain TCP (TRANSPORT=tcp in a WebSocket cluster) is refused, named
        tcp = Node(TcpTransport("t", net.cluster, (LOOP, 0), {"b": (LOOP, b.port)}, events=net.events))
        await tcp.transport.start(nursery, tcp.deliver)
        tcp.transport.send(*refs("t", "b"), Note(1, "hi"))
        assert await wait_for(
            lambda: any("check TRANSPORT" in r["reason"] for r in net.find("refused", node="b"))
        )
        assert await wait_for(lambda: bool(net.events.find("tcp.connect_failed", node="t")))
        assert "refused us" in net.events.find("tcp.connect_failed", node="t")[0]["error"]
        assert b.got == []
        nursery.cancel_scope.cancel()


# --- Redis -------------------------------------------------------------------------------------


async def test_a_dead_nodes_inbox_is_bounded_and_expires(pki: Any, redis_server: RedisServer) -> None:
    net = Net("redis", pki, redis_server)
    async with trio.open_nursery() as nursery:
        a = await net.start(nursery, "a", inbox_limit=10, inbox_ttl=60)
        a.transport.add_peer("ghost")  # never reads its inbox
        for i in range(50):
            a.transport.send(*refs("a", "ghost"), Note(i, "into the void"))
            await trio.sleep(0)
        assert await wait_for(lambda: a.transport.stats.sent == 50)
        conn = RedisConn(port=redis_server.port)
        key = inbox_key(net.cluster, "ghost")
        length, ttl = await conn.pipeline([("LLEN", key), ("PTTL", key)])
        assert length == 10 and 0 < ttl <= 60_000
        assert a.transport.stats.extra["inbox_trimmed"] == 40
        assert len(net.find("inbox_trimmed", node="a", peer="ghost")) == 1
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_redis_down_is_one_line_per_task_and_links_recover(pki: Any, redis_server: RedisServer) -> None:
    net = Net("redis", pki, redis_server)
    async with trio.open_nursery() as nursery:
        a, b = await net.start(nursery, "a"), await net.start(nursery, "b")
        net.link(a, b)
        assert await send_until(a, b, Note(1, "before"))
        # When Redis dies, Expect one error line per task, sends that do not block, no crash
        redis_server.kill()
        for i in range(20):
            a.transport.send(*refs("a", "b"), Note(100 + i, "while down"))
            await trio.sleep(0.05)
        assert await wait_for(lambda: len(net.find("unavailable", node="a")) == 2)
        await trio.sleep(1.0)  # several retries later: still one line each
        assert {r["role"] for r in net.find("unavailable", node="a")} == {"reader", "writer"}
        assert len(net.find("unavailable", node="a")) == 2
        assert f"127.0.0.1:{redis_server.port}" in net.find("unavailable", node="a")[0]["error"]
        # When it is back, Expect both tasks to recover and frames to flow again
        redis_server.start()
        assert await send_until(a, b, Note(2, "after"), timeout=20)
        assert await wait_for(lambda: len(net.find("recovered", node="a")) == 2)
        nursery.cancel_scope.cancel()


async def test_a_burst_waits_in_the_outbox_instead_of_being_trimmed(
    pki: Any, redis_server: RedisServer
) -> None:
    # Given a reader that takes 100 frames per pop and inboxes bounded to 1,000 frames
    net = Net("redis", pki, redis_server)
    n = 20_000
    async with trio.open_nursery() as nursery:
        a = await net.start(nursery, "a", outbox_size=n, inbox_limit=1000)
        b = await net.start(nursery, "b", pop_count=100)
        net.link(a, b)
        # When a burst far over the inbox bound is sent at once
        for i in range(n):
            a.transport.send(*refs("a", "b"), Note(i, "burst"))
        # Expect every frame to arrive, in order: the writer paused while b's inbox was half full
        assert await wait_for(lambda: len(b.got) == n, timeout=30)
        assert [m.seq for m in b.notes()] == list(range(n))
        assert a.transport.stats.extra["inbox_trimmed"] == 0 and a.transport.stats.dropped_outbox_full == 0
        nursery.cancel_scope.cancel()


async def test_a_redis_node_is_ready_only_once_its_stale_inbox_is_cleared(
    pki: Any, redis_server: RedisServer
) -> None:
    # Given frames left in b's inbox by its previous life
    net = Net("redis", pki, redis_server)
    conn = RedisConn("127.0.0.1", redis_server.port)
    try:
        await conn.execute("RPUSH", inbox_key(net.cluster, "b"), b"old-1", b"old-2", b"old-3")
    finally:
        await conn.aclose()
    async with trio.open_nursery() as nursery:
        # When b starts
        b = await net.start(nursery, "b")
        # Expect the stale frames gone already: a frame a peer pushes from now on is never cleared
        assert b.transport.stats.extra["stale_dropped"] == 3
        nursery.cancel_scope.cancel()

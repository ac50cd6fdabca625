"""The TCP transport on loopback: delivery, batching, handshake refusals, hostile input, reconnect."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import trio

from actors import ActorRef, message
from transport.codec import encode, encode_envelope, frame
from transport.events import EventLog
from transport.tcp import PROTOCOL_VERSION, Hello, TcpTransport, parse_address

LOOP = "127.0.0.1"


@message("test.tcp.Note")
@dataclass(frozen=True, slots=True)
class Note:
    seq: int
    text: str


@dataclass
class Node:
    transport: TcpTransport
    got: list[tuple[ActorRef, ActorRef, Any]] = field(default_factory=list)

    def deliver(self, src: ActorRef, dst: ActorRef, msg: Any) -> None:
        self.got.append((src, dst, msg))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport.listen_address is not None
        return self.transport.listen_address


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return True
    return False


async def start(
    nursery: trio.Nursery, node_id: str, events: EventLog, cluster: str = "c", port: int = 0, **kw: Any
) -> Node:
    node = Node(TcpTransport(node_id, cluster, (LOOP, port), {}, events=events, **kw))
    await node.transport.start(nursery, node.deliver)
    return node


def link(*nodes: Node) -> None:
    for a in nodes:
        for b in nodes:
            a.transport.add_peer(b.transport.node_id, b.address)


def refs(a: str, b: str) -> tuple[ActorRef, ActorRef]:
    return ActorRef(a, "x"), ActorRef(b, "x")


async def test_frames_arrive_between_two_nodes() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a, b = await start(nursery, "a", events), await start(nursery, "b", events)
        link(a, b)
        src, dst = refs("a", "b")
        assert a.transport.send(src, dst, Note(1, "hello"))
        assert await wait_for(lambda: len(b.got) == 1)
        assert b.got[0] == (src, dst, Note(1, "hello"))
        b.transport.send(dst, src, Note(2, "back"))
        assert await wait_for(lambda: len(a.got) == 1)
        assert events.find("tcp.link_up", node="b", peer="a", direction="in")
        nursery.cancel_scope.cancel()


async def test_many_sends_are_batched_and_all_arrive_in_order() -> None:
    events = EventLog()
    n = 20_000
    async with trio.open_nursery() as nursery:
        a, b = await start(nursery, "a", events), await start(nursery, "b", events, outbox_size=n)
        a.transport.outbox_size = n
        link(a, b)
        src, dst = refs("a", "b")
        t0 = trio.current_time()
        for i in range(n):
            a.transport.send(src, dst, Note(i, "payload"))
        assert await wait_for(lambda: len(b.got) == n, timeout=30)
        elapsed = trio.current_time() - t0
        assert [m.seq for _s, _d, m in b.got] == list(range(n))
        stats = a.transport.stats
        assert stats.sent == n and stats.dropped_outbox_full == 0
        assert stats.batches < n / 10, stats  # many frames per send_all
        print(f"{n} messages in {elapsed:.3f} s = {n / elapsed:,.0f} msg/s in {stats.batches} writes")
        nursery.cancel_scope.cancel()


async def test_write_through_sends_a_lone_frame_at_once_and_batches_bursts() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, "a", events, write_through=True)
        b = await start(nursery, "b", events)
        link(a, b)
        src, dst = refs("a", "b")
        a.transport.send(src, dst, Note(0, "connect"))
        assert await wait_for(lambda: len(b.got) == 1)
        await trio.sleep(0.01)  # the writer is idle again
        # Given an idle connection, When a frame is sent, Expect it written before send returns
        stats = a.transport.stats
        before = (stats.sent, stats.batches)
        a.transport.send(src, dst, Note(1, "now"))
        assert (stats.sent, stats.batches) == (before[0] + 1, before[1] + 1)
        # When 200 more follow at once, Expect them batched by the writer, all in order
        for i in range(2, 202):
            a.transport.send(src, dst, Note(i, "burst"))
        assert await wait_for(lambda: len(b.got) == 202)
        assert [m.seq for _s, _d, m in b.got] == list(range(202))
        assert stats.batches - before[1] < 20, stats
        # A frame larger than the kernel takes at once is finished by the writer, intact
        await trio.sleep(0.01)
        big = "x" * (3 << 20)
        before = stats.batches
        a.transport.send(src, dst, Note(202, big))
        a.transport.send(src, dst, Note(203, "after"))
        assert await wait_for(lambda: len(b.got) == 204, timeout=30)
        assert b.got[202][2] == Note(202, big) and b.got[203][2] == Note(203, "after")
        assert stats.batches - before >= 2  # part written by send, the rest by the writer
        nursery.cancel_scope.cancel()


async def test_a_full_outbox_drops_the_oldest_and_counts() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a, b = await start(nursery, "a", events, outbox_size=10), await start(nursery, "b", events)
        link(a, b)
        src, dst = refs("a", "b")
        results = [a.transport.send(src, dst, Note(i, "")) for i in range(25)]
        assert results.count(False) == 15 and a.transport.stats.dropped_outbox_full == 15
        assert await wait_for(lambda: len(b.got) == 10)
        assert [m.seq for _s, _d, m in b.got] == list(range(15, 25))
        nursery.cancel_scope.cancel()


async def test_a_peer_of_another_cluster_is_refused() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, "a", events, cluster="blue")
        b = await start(nursery, "b", events, cluster="green")
        link(a, b)
        a.transport.send(*refs("a", "b"), Note(1, "hi"))
        assert await wait_for(lambda: bool(events.find("tcp.refused", node="b")))
        assert "cluster 'blue' is not this node's cluster 'green'" in events.find("tcp.refused")[0]["reason"]
        assert await wait_for(lambda: bool(events.find("tcp.connect_failed", node="a", peer="b")))
        assert "refused us" in events.find("tcp.connect_failed")[0]["error"]
        await trio.sleep(0.2)
        assert b.got == [] and b.transport.stats.connections_refused >= 1
        nursery.cancel_scope.cancel()


async def test_an_unknown_node_id_is_refused() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a, b = await start(nursery, "a", events), await start(nursery, "b", events)
        a.transport.add_peer("b", b.address)  # b does not know a
        a.transport.send(*refs("a", "b"), Note(1, "hi"))
        assert await wait_for(lambda: bool(events.find("tcp.refused", node="b")))
        assert "not a known peer" in events.find("tcp.refused")[0]["reason"]
        nursery.cancel_scope.cancel()


async def raw_connect(address: tuple[str, int]) -> trio.SocketStream:
    return await trio.open_tcp_stream(*address)


async def closed_by_peer(stream: trio.SocketStream, timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_hostile_input_is_dropped_and_the_node_keeps_serving_good_peers() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a, b = await start(nursery, "a", events), await start(nursery, "b", events)
        link(a, b)
        b.transport.add_peer("mallory", ("127.0.0.1", 9))  # known id, so its handshake passes
        hello = frame(encode(Hello("c", "mallory", PROTOCOL_VERSION, "127.0.0.1:1")))

        # Garbage instead of a handshake: closed.
        s1 = await raw_connect(b.address)
        await s1.send_all(b"\x00\x00\x00\x05hello-this-is-not-msgpack")
        assert await closed_by_peer(s1)
        # An oversized length prefix before the handshake: closed.
        s2 = await raw_connect(b.address)
        await s2.send_all(b"\xff\xff\xff\xff")
        assert await closed_by_peer(s2)

        # After a good handshake, malformed-but-framed bodies are dropped; the connection stays.
        s3 = await raw_connect(b.address)
        await s3.send_all(hello)
        bad_bodies = [
            b"\xc1",  # never-used msgpack byte
            msgpack.packb([1, 2, 3]),  # not an envelope
            msgpack.packb(["mallory", "x", "b", "x", ["test.tcp.Note", "not-int", "t"]]),  # wrong type
            msgpack.packb(["mallory", "x", "b", "x", ["no.such.Tag"]]),  # unknown tag
            encode_envelope(ActorRef("a", "x"), ActorRef("b", "x"), Note(0, "spoofed source")),
        ]
        await s3.send_all(b"".join(frame(body) for body in bad_bodies))
        good = encode_envelope(ActorRef("mallory", "x"), ActorRef("b", "x"), Note(7, "ok"))
        await s3.send_all(frame(good))
        assert await wait_for(lambda: any(m == Note(7, "ok") for _s, _d, m in b.got))
        assert b.transport.stats.dropped_malformed == len(bad_bodies)
        assert len(events.find("tcp.bad_frame", node="b")) == len(bad_bodies)
        # Then an oversized length prefix: this connection is closed.
        await s3.send_all(b"\x7f\xff\xff\xff")
        assert await closed_by_peer(s3)
        assert events.find("tcp.bad_stream", node="b")

        # The node still talks to a good peer.
        a.transport.send(*refs("a", "b"), Note(8, "still here"))
        assert await wait_for(lambda: any(m == Note(8, "still here") for _s, _d, m in b.got))
        for s in (s1, s2, s3):
            await s.aclose()
        nursery.cancel_scope.cancel()


async def test_reconnects_after_the_peer_restarts() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, "a", events, backoff_max=0.2)
        b_events = EventLog()
        async with trio.open_nursery() as b_nursery:
            b = await start(b_nursery, "b", b_events)
            link(a, b)
            port = b.address[1]
            a.transport.send(*refs("a", "b"), Note(1, "first"))
            assert await wait_for(lambda: len(b.got) == 1)
            await b.transport.aclose()
        assert await wait_for(lambda: bool(events.find("tcp.link_down", node="a", peer="b")))
        # b comes back on the same port; a keeps sending until it gets through
        async with trio.open_nursery() as b_nursery:
            b2 = await start(b_nursery, "b", EventLog(), port=port)
            b2.transport.add_peer("a", a.address)
            i = 2
            with trio.move_on_after(15):
                while not b2.got:
                    a.transport.send(*refs("a", "b"), Note(i, "again"))
                    i += 1
                    await trio.sleep(0.05)
            assert b2.got, "a never reconnected to the restarted b"
            assert len(events.find("tcp.link_up", node="a", peer="b", direction="out")) >= 2
            b_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7001") == ("127.0.0.1", 7001)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("nohost", ":80", "h:99999", "h:x"):
        try:
            parse_address(bad)
        except ValueError as e:
            assert "host:port" in str(e)
        else:
            raise AssertionError(bad)


async def test_a_new_node_joins_at_run_time_when_joins_are_accepted() -> None:
    # Given a node that knows no peers but accepts joins, and a newcomer that knows it
    events = EventLog()
    async with trio.open_nursery() as nursery:
        old = await start(nursery, "old", events, accept_joins=True)
        new = await start(nursery, "new", events)
        new.transport.add_peer("old", old.address)
        # When the newcomer sends first
        assert new.transport.send(*refs("new", "old"), Note(1, "hi"))
        assert await wait_for(lambda: len(old.got) == 1)
        # Expect the old node to have learnt the newcomer's advertised address and answer
        assert old.transport.peers["new"] == new.address
        assert events.find("tcp.joined", node="old", peer="new")
        assert old.transport.send(*refs("old", "new"), Note(2, "welcome"))
        assert await wait_for(lambda: len(new.got) == 1)
        nursery.cancel_scope.cancel()


async def test_an_unknown_node_is_refused_when_joins_are_not_accepted() -> None:
    events = EventLog()
    async with trio.open_nursery() as nursery:
        old = await start(nursery, "old", events)
        new = await start(nursery, "new", events)
        new.transport.add_peer("old", old.address)
        new.transport.send(*refs("new", "old"), Note(1, "hi"))
        assert await wait_for(lambda: bool(events.find("tcp.refused", node="old")))
        await trio.sleep(0.2)
        assert old.got == [] and "new" not in old.transport.peers
        nursery.cancel_scope.cancel()

"""The store service: a backend answering StoreRequests as the actor ``store`` of a real runtime.

Given / When / Expect, over the memory transport: requests from a local actor and from another
node, batching, malformed commands, stray messages, a backend that goes away and comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import Actor, ActorRef, Context, message
from actors.jobs import Job
from actors.jobs._plain import job_to_plain
from actors.jobs.protocol import STORE, StoreReply, StoreRequest
from transport.events import EventLog
from transport.memory import MemoryHub
from transport.runtime import NodeRuntime
from transport.store_service import StoreService
from transport.stores import MemoryJobStore, SqliteJobStore, StoreUnavailable


@message("test.store.Ask")
@dataclass(frozen=True, slots=True)
class Ask:
    """Tells the client actor to send one StoreRequest to a store."""

    node: str
    req: int
    command: Any


@message("test.store.Stray")
@dataclass(frozen=True, slots=True)
class Stray:
    text: str


class Client(Actor):
    """Sends StoreRequests when asked, and keeps every StoreReply by request number."""

    def __init__(self) -> None:
        self.replies: dict[int, Any] = {}
        self.repeats = 0
        self.senders: set[str] = set()

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Ask):
            ctx.send(ActorRef(msg.node, STORE), StoreRequest(msg.req, msg.command))
        elif isinstance(msg, StoreReply):
            self.repeats += msg.req in self.replies
            self.replies[msg.req] = msg.result
            self.senders.add(str(ctx.sender))


def submit(job_id: str) -> dict[str, Any]:
    return {"op": "submit", "job": job_to_plain(Job.create(job_id, "email", {"to": job_id}, now=1.0))}


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.005)
        return True
    return False


def client_bp(node_id: str) -> Mapping[str, Actor]:
    return {"client": Client()}


async def start(
    nursery: trio.Nursery, hub: MemoryHub, node_id: str, events: EventLog, **kw: Any
) -> tuple[NodeRuntime, Client]:
    rt = NodeRuntime(node_id, client_bp, hub.transport(node_id), events=events, seed=1, **kw)
    runtime: NodeRuntime = await nursery.start(rt.serve)
    client = runtime.actor("client")
    assert isinstance(client, Client)
    return runtime, client


class Recording:
    """A backend wrapper that records batch sizes and can be switched off."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.down = False
        self.closed = False

    async def open(self) -> None:
        await self.inner.open()

    async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(len(commands))
        if self.down:
            await trio.sleep(0)
            raise StoreUnavailable("redis at 127.0.0.1:6379 refused the connection")
        result: list[dict[str, Any]] = await self.inner.execute(commands)
        return result

    async def close(self) -> None:
        self.closed = True
        await self.inner.close()


# ------------------------------------------------------------------ serving


async def test_local_and_remote_requesters_get_durable_replies(tmp_path: Path) -> None:
    # Given node n1 hosting StoreService(SqliteJobStore) and a client on n1 and on n2
    hub, events = MemoryHub(), EventLog()
    backend = SqliteJobStore(tmp_path / "jobs.sqlite3")
    async with trio.open_nursery() as nursery:
        n1, local = await start(nursery, hub, "n1", events)
        n2, remote = await start(nursery, hub, "n2", events)
        await nursery.start(StoreService(backend).run, n1)
        # When each asks for submits and a read
        for i in range(5):
            n1.tell(ActorRef("n1", "client"), Ask("n1", i, submit(f"l{i}")))
            n2.tell(ActorRef("n2", "client"), Ask("n1", i, submit(f"r{i}")))
        assert await wait_for(lambda: len(local.replies) == 5 and len(remote.replies) == 5)
        # Expect one reply per request, from store@n1, each submit created and already on disk
        assert all(r["created"] for r in local.replies.values())
        assert all(r["created"] for r in remote.replies.values())
        assert local.senders == remote.senders == {"store@n1"}
        assert local.repeats == remote.repeats == 0
        assert backend._conn is not None
        on_disk = backend._conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        assert on_disk == 10
        nursery.cancel_scope.cancel()


async def test_queued_requests_are_batched_up_to_max_batch() -> None:
    hub, events = MemoryHub(), EventLog()
    backend = Recording(MemoryJobStore())
    async with trio.open_nursery() as nursery:
        n1, client = await start(nursery, hub, "n1", events, mailbox_size=2000)
        service = StoreService(backend, max_batch=64)
        await nursery.start(service.run, n1)
        # When 300 requests arrive at once
        for i in range(300):
            n1.tell(ActorRef("n1", STORE), StoreRequest(i, submit(f"j{i}")), sender=ActorRef("n1", "client"))
        assert await wait_for(lambda: len(client.replies) == 300)
        # Expect few batches of at most 64, and every request answered with its own result
        assert max(backend.batches) == 64 and len(backend.batches) <= 10
        assert sum(backend.batches) == 300 == service.requests
        assert all(client.replies[i]["job"]["id"] == f"j{i}" for i in range(300))
        nursery.cancel_scope.cancel()


async def test_malformed_commands_get_errors_and_the_service_keeps_serving(tmp_path: Path) -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        n1, client = await start(nursery, hub, "n1", events)
        await nursery.start(StoreService(SqliteJobStore(tmp_path / "jobs.sqlite3")).run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        n1.tell(store, StoreRequest(1, "not a map"), sender=me)
        n1.tell(store, StoreRequest(2, {"op": "launch"}), sender=me)
        n1.tell(store, StoreRequest(3, {"op": "submit", "job": {"id": "x"}}), sender=me)
        n1.tell(store, Stray("hello"), sender=me)  # not a request: dropped, reported
        n1.tell(store, StoreRequest(4, submit("ok")), sender=me)
        assert await wait_for(lambda: len(client.replies) == 4)
        for req in (1, 2, 3):
            assert set(client.replies[req]) == {"error"} and "\n" not in client.replies[req]["error"]
        assert "unknown command op 'launch'" in client.replies[2]["error"]
        assert client.replies[4]["created"] is True
        dropped = events.find("store.dropped")
        assert len(dropped) == 1 and dropped[0]["message"] == "Stray"
        nursery.cancel_scope.cancel()


async def test_an_unavailable_backend_gets_error_replies_then_recovers() -> None:
    hub, events = MemoryHub(), EventLog()
    backend = Recording(MemoryJobStore())
    async with trio.open_nursery() as nursery:
        n1, client = await start(nursery, hub, "n1", events)
        await nursery.start(StoreService(backend).run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        # When the backend is down
        backend.down = True
        for i in range(3):
            n1.tell(store, StoreRequest(i, submit(f"j{i}")), sender=me)
        assert await wait_for(lambda: len(client.replies) == 3)
        # Expect every request answered "store unavailable: <why>", nothing applied
        for i in range(3):
            assert client.replies[i] == {
                "error": "store unavailable: redis at 127.0.0.1:6379 refused the connection"
            }
        assert events.find("store.unavailable")
        assert backend.inner.machine.jobs == {}
        # When it is back, Expect the same requests (resent) to go through
        backend.down = False
        for i in range(3):
            n1.tell(store, StoreRequest(10 + i, submit(f"j{i}")), sender=me)
        assert await wait_for(lambda: len(client.replies) == 6)
        assert all(client.replies[10 + i]["created"] for i in range(3))
        nursery.cancel_scope.cancel()


async def test_a_backend_bug_is_an_error_reply_not_a_dead_service() -> None:
    class Buggy(Recording):
        async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if any(c.get("op") == "stats" for c in commands if isinstance(c, dict)):
                raise KeyError("oops")
            return await super().execute(commands)

    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        n1, client = await start(nursery, hub, "n1", events)
        await nursery.start(StoreService(Buggy(MemoryJobStore())).run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        n1.tell(store, StoreRequest(1, {"op": "stats"}), sender=me)
        assert await wait_for(lambda: 1 in client.replies)
        assert client.replies[1] == {"error": "store error: KeyError: 'oops'"}
        n1.tell(store, StoreRequest(2, submit("a")), sender=me)
        assert await wait_for(lambda: 2 in client.replies)
        assert client.replies[2]["created"] is True
        assert events.find("store.error")
        nursery.cancel_scope.cancel()


async def test_a_full_service_channel_drops_and_counts() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        n1, client = await start(nursery, hub, "n1", events)
        await nursery.start(StoreService(MemoryJobStore(), capacity=4).run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        accepted = [n1.tell(store, StoreRequest(i, {"op": "stats"}), sender=me) for i in range(10)]
        assert accepted.count(True) in (4, 5)  # a waiting receiver may take one directly
        assert n1.stats.dropped_mailbox_full == accepted.count(False)
        assert n1.stats.per_actor_dropped[STORE] == accepted.count(False)
        assert len(events.find("runtime.mailbox_full", actor=STORE)) == 1
        assert await wait_for(lambda: len(client.replies) == accepted.count(True))
        nursery.cancel_scope.cancel()


async def test_the_service_ends_with_the_runtime_and_closes_its_backend() -> None:
    hub, events = MemoryHub(), EventLog()
    backend = Recording(MemoryJobStore())
    async with trio.open_nursery() as nursery:
        n1, _client = await start(nursery, hub, "n1", events)
        done = trio.Event()

        async def serve_store(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await StoreService(backend).run(n1, task_status=task_status)
            done.set()

        await nursery.start(serve_store)
        # the name is taken while the service runs
        with pytest.raises(ValueError, match="already taken"):
            n1.add_service(STORE)
        n1.stop()
        assert await wait_for(done.is_set)
        assert backend.closed
        # and free again afterwards
        n1.add_service(STORE)
        n1.remove_service(STORE)


async def test_a_backend_that_cannot_open_releases_the_name(tmp_path: Path) -> None:
    hub, events = MemoryHub(), EventLog()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    async with trio.open_nursery() as nursery:
        n1, _client = await start(nursery, hub, "n1", events)
        with pytest.raises(StoreUnavailable, match="cannot open sqlite job store"):
            await StoreService(SqliteJobStore(blocker / "jobs.sqlite3")).run(n1)
        n1.add_service(STORE)  # released
        nursery.cancel_scope.cancel()

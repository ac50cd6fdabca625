"""The store service over the Redis store: a lone request is sent as it is delivered.

Given / When / Expect, against a private ``redis-server`` (never the system one on 6379).
"""

from __future__ import annotations

from collections.abc import Mapping

import trio
import trio.testing
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from actors import Actor, ActorRef
from actors.jobs.protocol import STORE, StoreRequest
from transport.events import EventLog
from transport.memory import MemoryHub
from transport.runtime import NodeRuntime
from transport.store_service import StoreService
from transport.stores.redis_store import RedisJobStore

from .test_store_service import Client, submit, wait_for

redis_server = redis_server_fixture()


def client_bp(node_id: str) -> Mapping[str, Actor]:
    return {"client": Client()}


async def test_lone_requests_are_sent_as_delivered_and_bursts_are_queued(redis_server: RedisServer) -> None:
    hub, events = MemoryHub(), EventLog()
    lanes = [RedisJobStore(port=redis_server.port, prefix="begun") for _ in range(2)]
    service = StoreService(lanes)
    async with trio.open_nursery() as nursery:
        rt = NodeRuntime("n1", client_bp, hub.transport("n1"), events=events, seed=1, mailbox_size=1000)
        n1: NodeRuntime = await nursery.start(rt.serve)
        client = n1.actor("client")
        assert isinstance(client, Client)
        await nursery.start(service.run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        # Given idle lanes, When requests come one at a time, Expect each sent as it is
        # delivered (begun) and answered as execute answers it
        for i in range(5):
            await trio.testing.wait_all_tasks_blocked()
            n1.tell(store, StoreRequest(i, submit(f"lone{i}")), sender=me)
            assert await wait_for(lambda req=i: req in client.replies)
        assert service.begun == 5
        assert all(
            client.replies[i]["created"] and client.replies[i]["job"]["id"] == f"lone{i}" for i in range(5)
        )
        # a known job submitted again is answered from Redis, not created twice
        await trio.testing.wait_all_tasks_blocked()
        n1.tell(store, StoreRequest(5, submit("lone0")), sender=me)
        assert await wait_for(lambda: 5 in client.replies)
        assert client.replies[5]["created"] is False and service.begun == 6
        # When 300 arrive at once, Expect at most one begun per idle lane, the rest batched
        for i in range(100, 400):
            n1.tell(store, StoreRequest(i, submit(f"burst{i}")), sender=me)
        assert await wait_for(lambda: len(client.replies) == 306)
        assert service.begun <= 6 + len(lanes)
        assert all(client.replies[i]["job"]["id"] == f"burst{i}" for i in range(100, 400))
        assert client.repeats == 0
        nursery.cancel_scope.cancel()


async def test_a_begun_request_to_a_restarted_redis_gets_an_answer(
    redis_server: RedisServer,
) -> None:
    hub, events = MemoryHub(), EventLog()
    service = StoreService(RedisJobStore(port=redis_server.port, prefix="gone"))
    async with trio.open_nursery() as nursery:
        rt = NodeRuntime("n1", client_bp, hub.transport("n1"), events=events, seed=1)
        n1: NodeRuntime = await nursery.start(rt.serve)
        client = n1.actor("client")
        assert isinstance(client, Client)
        await nursery.start(service.run, n1)
        me, store = ActorRef("n1", "client"), ActorRef("n1", STORE)
        redis_server.restart()
        # When a request meets the dropped connection, Expect an error reply (nothing lost:
        # the requester resends) and the next request to be served on a new connection
        await trio.testing.wait_all_tasks_blocked()
        n1.tell(store, StoreRequest(1, submit("a")), sender=me)
        assert await wait_for(lambda: 1 in client.replies)
        first = client.replies[1]
        assert first.get("created") is True or "store unavailable" in first.get("error", "")
        await trio.testing.wait_all_tasks_blocked()
        n1.tell(store, StoreRequest(2, submit("a")), sender=me)
        assert await wait_for(lambda: 2 in client.replies)
        assert client.replies[2]["job"]["id"] == "a"
        nursery.cancel_scope.cancel()

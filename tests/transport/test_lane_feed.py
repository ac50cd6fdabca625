"""The lane feed in one process: a ticket runs on the node's worker, and a silent server is left.

Given / When / Expect, with the module's own ``redis-server`` and a node runtime on the memory
transport whose only job actor is a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from actors import Actor, ActorRef
from actors.jobs.config import JobsConfig
from actors.jobs.messages import WORKER
from actors.jobs.worker import Worker
from transport.events import EventLog
from transport.jobs_client import new_job
from transport.lane_feed import LaneFeed
from transport.memory import MemoryHub
from transport.redis_conn import RedisConn
from transport.runtime import NodeRuntime
from transport.stores.redis_store import RedisJobStore

redis_server = redis_server_fixture(fsync=False)


def blueprint(node_id: str) -> Mapping[str, Actor]:
    return {WORKER: Worker(JobsConfig(), ActorRef(node_id, "store"))}


async def lane_node(
    redis_server: RedisServer, events: EventLog
) -> tuple[RedisConn, NodeRuntime, LaneFeed, list[Any]]:
    """An empty Redis, and node n1 with a worker whose processor ``t`` records its payloads
    (in the list returned) and a lane feed of one slot; the caller starts both."""
    conn = RedisConn(port=redis_server.port)
    await conn.execute("FLUSHALL")
    ran: list[Any] = []

    async def record(payload: Any) -> None:
        ran.append(payload)

    transport = MemoryHub().transport("n1")
    runtime = NodeRuntime("n1", blueprint, transport, events=events, processors={"t": record})
    feed = LaneFeed(
        port=redis_server.port, worker="n1", slots=1, lease=20.0, refresh=0.2, alive_for=1.0, stuck=0.3
    )
    return conn, runtime, feed, ran


async def test_a_ticket_runs_the_job_in_the_feed_and_a_silent_server_is_dropped(
    redis_server: RedisServer,
) -> None:
    events = EventLog()
    seen: list[str] = []
    events.subscribe(lambda r: seen.append(r["kind"]))
    conn, runtime, feed, ran = await lane_node(redis_server, events)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.serve)
        await nursery.start(feed.run, runtime)
        # When a producer's job is dispatched to n1 through the store
        store = RedisJobStore(port=redis_server.port)
        await store.open()
        (result,) = await store.execute(
            [{"op": "submit", "job": new_job("t", {"k": 1}, max_retries=0), "direct": True}]
        )
        assert result["lane"] == "dispatched"
        # Expect the worker to run it, from the feed's ticket
        with trio.fail_after(5):
            while not ran:
                await trio.sleep(0.01)
        assert ran == [{"k": 1}] and feed.started == 1
        # When the waiting connection talks to a server that takes BLPOP and never answers
        silent = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = silent[0].socket.getsockname()[1]
        nursery.start_soon(_swallow, silent[0])
        feed.waiting.abort()
        feed.waiting.port = port
        # Expect the watchdog to drop it and say so in one line, and the feed to go on
        with trio.fail_after(5):
            while "lanefeed.unavailable" not in seen:
                await trio.sleep(0.05)
        feed.waiting.port = redis_server.port
        feed.waiting.abort()
        # And once the first job's credit is back, the next one runs too
        with trio.fail_after(5):
            while await conn.execute("HGET", "troupe:lane_free", "n1") != b"1":
                await trio.sleep(0.02)
        (again,) = await store.execute(
            [{"op": "submit", "job": new_job("t", {"k": 2}, max_retries=0), "direct": True}]
        )
        assert again["lane"] == "dispatched"
        with trio.fail_after(5):
            while len(ran) < 2:
                await trio.sleep(0.01)
        assert ran == [{"k": 1}, {"k": 2}]
        await store.close()
        runtime.stop()
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    await conn.aclose()


async def test_the_feed_reuses_its_tasks_from_job_to_job(redis_server: RedisServer) -> None:
    conn, runtime, feed, ran = await lane_node(redis_server, EventLog())
    store = RedisJobStore(port=redis_server.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.serve)
        await nursery.start(feed.run, runtime)
        await store.open()
        # When 20 producer jobs run on the lane one after the other
        for k in range(20):
            with trio.fail_after(5):
                while await conn.execute("HGET", "troupe:lane_free", "n1") != b"1":
                    await trio.sleep(0.01)
            (result,) = await store.execute(
                [{"op": "submit", "job": new_job("t", {"k": k}, max_retries=0), "direct": True}]
            )
            assert result["lane"] == "dispatched"
            with trio.fail_after(5):
                while len(ran) <= k:
                    await trio.sleep(0.01)
        # Expect each to have run once, by two tasks taking turns (not one new task per job)
        assert ran == [{"k": k} for k in range(20)] and feed.started == 20
        assert feed.tasks == 2
        await store.close()
        runtime.stop()
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    await conn.aclose()


async def _swallow(listener: trio.SocketListener) -> None:
    streams: list[trio.SocketStream] = []
    try:
        while True:
            streams.append(await listener.accept())  # kept open, never answered
    finally:
        for stream in streams:
            stream.socket.close()
        listener.socket.close()

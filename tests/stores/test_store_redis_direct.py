"""The direct lane in the Redis store: a producer's submit dispatched at once to a node's lane list.

Given / When / Expect, on a private ``redis-server``. A dispatched direct submit must write the
very record the machine writes for a gateway's fast-lane dispatch to the same worker, lease and
time; credits bound how many jobs a node gets; priority order, idempotency and delays hold;
the bookkeeping commands leave the job counters alone.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from actors.jobs import Job
from actors.jobs._plain import job_to_plain
from actors.jobs.machine import JobMachine
from transport.redis_conn import RedisConn
from transport.stores.redis_store import lane_key, lane_ticket, nudge_key

from .test_store_redis import POLICY, fresh_store

redis_server = redis_server_fixture()

T0 = 1_700_000_000.25
LEASE = 20.0


def direct(job_id: str, now: float = T0, **kw: Any) -> dict[str, Any]:
    payload = kw.pop("payload", {"id": job_id, "blob": b"\x00\x01", "n": [1, 2.5, None]})
    job = job_to_plain(Job.create(job_id, "t", payload, now=now, **kw))
    return {"op": "submit", "job": job, "direct": True}


def lane_open(
    worker: str, free: int = 2, alive_until: float = T0 + 3, lease: float = LEASE
) -> dict[str, Any]:
    return {"op": "lane_open", "worker": worker, "free": free, "lease": lease, "alive_until": alive_until}


def credit(worker: str, freed: int, slots: int = 2, alive_until: float = T0 + 3) -> dict[str, Any]:
    return {"op": "lane_credit", "worker": worker, "freed": freed, "slots": slots, "alive_until": alive_until}


async def tickets(server: RedisServer, worker: str) -> list[Any]:
    conn = RedisConn(port=server.port)
    try:
        return [lane_ticket(raw) for raw in await conn.execute("LRANGE", lane_key("troupe", worker), 0, -1)]
    finally:
        await conn.aclose()


async def redis_call(server: RedisServer, *args: Any) -> Any:
    conn = RedisConn(port=server.port)
    try:
        return await conn.execute(*args)
    finally:
        await conn.aclose()


async def test_a_direct_submit_writes_what_the_machine_writes_for_a_lane_dispatch(
    redis_server: RedisServer,
) -> None:
    async with fresh_store(redis_server) as store:
        # Given a node n1 registered with two credits
        await store.execute([lane_open("n1")])
        # When a producer submits a job due now
        (result,) = await store.execute([direct("a", priority=7)])
        # Expect it dispatched to n1 under n1's lease, exactly as the machine's lane would
        ref = JobMachine(POLICY)
        lane = {"epoch": 0, "worker": "n1", "at": T0, "lease_until": T0 + LEASE}
        want = ref.apply(1, {**direct("a", priority=7), "direct": False, "lane": lane})
        assert result["lane"] == "dispatched" and result["worker"] == "n1"
        assert result["job"] == want["job"]
        (stored,) = await store.execute([{"op": "get", "id": "a"}])
        assert stored["job"] == want["job"]
        # And its ticket waits in n1's list, with the payload as submitted
        (ticket,) = await tickets(redis_server, "n1")
        got = (ticket.id, ticket.attempt, ticket.type, ticket.priority, ticket.timeout)
        assert got == ("a", 1, "t", 7, 30.0)
        assert ticket.payload == {"id": "a", "blob": b"\x00\x01", "n": [1, 2.5, None]}


async def test_credits_bound_what_a_node_is_given_and_come_back_once(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        await store.execute([lane_open("n1", free=2)])
        # When three jobs are submitted to a node with two credits
        results = await store.execute([direct(f"j{i}", now=T0 + i * 0.001) for i in range(3)])
        # Expect two dispatched and the third queued (with one nudge for the leader)
        assert [r["lane"] for r in results] == ["dispatched", "dispatched", "queued"]
        assert results[2]["job"]["status"] == "PENDING"
        assert await redis_call(redis_server, "LRANGE", nudge_key("troupe"), 0, -1) == [b"1"]
        # When n1 counts one job freed, twice (a resent credit)
        assert (await store.execute([credit("n1", 1), credit("n1", 1)])) == [{"ok": True}, {"ok": True}]
        # Expect exactly one credit back, and never more than its slots
        assert await redis_call(redis_server, "HGET", "troupe:lane_free", "n1") == b"1"
        await store.execute([credit("n1", 9)])
        assert await redis_call(redis_server, "HGET", "troupe:lane_free", "n1") == b"2"
        # And a worker never registered is told so (it opens again)
        assert await store.execute([credit("n9", 1)]) == [{"ok": False}]


async def test_the_direct_lane_keeps_priority_order(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        # Given a ready job of priority 5 queued while no node had a credit
        await store.execute([direct("old", priority=5)])
        await store.execute([lane_open("n1")])
        # When jobs of equal and lower priority arrive: they queue behind it (FIFO, priority)
        same, low = await store.execute([direct("same", priority=5), direct("low", priority=2)])
        assert (same["lane"], low["lane"]) == ("queued", "queued")
        # When a more urgent job arrives: it is dispatched ahead of them
        (high,) = await store.execute([direct("high", priority=9)])
        assert high["lane"] == "dispatched"
        assert [t.id for t in await tickets(redis_server, "n1")] == ["high"]


async def test_only_live_registered_nodes_are_chosen(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        # Given n1 whose registration ran out before the submit, and n2 alive with more credits
        await store.execute([lane_open("n1", free=5, alive_until=T0 - 1), lane_open("n2", free=1)])
        (first,) = await store.execute([direct("a")])
        assert first["worker"] == "n2"
        # When n2 closes its registration: nothing is dispatched any more
        await store.execute([{"op": "lane_close", "worker": "n2"}])
        (second,) = await store.execute([direct("b", now=T0 + 0.5)])
        assert second["lane"] == "queued"
        # And the node with the most credits is picked among the live ones
        await store.execute([lane_open("n3", free=1), lane_open("n4", free=3)])
        (third,) = await store.execute([direct("c", now=T0 + 0.6)])
        assert third["lane"] == "queued"  # b still heads the ready queue: FIFO holds
        assert (await store.execute([direct("d", now=T0 + 0.7, priority=9)]))[0]["worker"] == "n4"


async def test_idempotent_and_delayed_direct_submits(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        await store.execute([lane_open("n1", free=3)])
        # When the same job is submitted twice (a lost reply, resent)
        first, again = await store.execute([direct("a"), direct("a")])
        # Expect one dispatch, one ticket, and the second answer is the job as stored
        assert first["created"] and not again["created"]
        assert again["job"] == first["job"]
        assert len(await tickets(redis_server, "n1")) == 1
        # When a job is scheduled for later: it waits in the delayed set, nobody is nudged
        (later,) = await store.execute([direct("b", scheduled_at=T0 + 60)])
        assert later["lane"] == "queued" and later["job"]["scheduled_at"] == T0 + 60
        assert await redis_call(redis_server, "LLEN", nudge_key("troupe")) == 0
        assert (await store.execute([{"op": "stats"}]))[0]["delayed"] == 1


async def test_lane_bookkeeping_leaves_the_job_counters_alone(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        await store.execute([direct("a")])
        ops = await redis_call(redis_server, "HGET", "troupe:meta", "ops")
        await store.execute([lane_open("n1"), credit("n1", 1), {"op": "lane_close", "worker": "n1"}])
        assert await redis_call(redis_server, "HGET", "troupe:meta", "ops") == ops


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ({**direct("a"), "direct": "yes"}, "direct must be true or false"),
        (
            {**direct("a"), "lane": {"epoch": 1, "worker": "n1", "at": T0, "lease_until": T0 + 1}},
            "either lane",
        ),
        ({**lane_open("n1"), "free": -1}, "free >= 0"),
        ({"op": "lane_credit", "worker": "n1"}, "freed"),
    ],
)
async def test_malformed_lane_commands_are_refused_in_one_line(
    redis_server: RedisServer, command: dict[str, Any], error: str
) -> None:
    async with fresh_store(redis_server) as store:
        (result,) = await store.execute([command])
        assert error in result["error"] and "\n" not in result["error"]
        assert (await store.execute([{"op": "stats"}]))[0]["total"] == 0


def test_a_ticket_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a direct-lane ticket"):
        lane_ticket(b"\x93\x01\x02\x03")
    with pytest.raises(ValueError, match="not a direct-lane ticket"):
        lane_ticket(msgpack.packb([b"id", b"t", b"\xc1", b"1.0", 5]))


async def test_a_store_without_the_lane_registered_queues_direct_submits(redis_server: RedisServer) -> None:
    async with fresh_store(redis_server) as store:
        # Given nobody registered: a direct submit is an ordinary submit and nudges the leader once
        results = await store.execute([direct("a"), direct("b", now=T0 + 1)])
        assert [r["lane"] for r in results] == ["queued", "queued"]
        assert await redis_call(redis_server, "LLEN", nudge_key("troupe")) == 1
        # And the leader's scheduler finds them ready, in order
        (ready,) = await store.execute([{"op": "ready", "at": T0 + 2, "limit": 10}])
        assert [j[0] for j in ready["jobs"]] == ["a", "b"]


async def test_a_job_object_is_submitted_as_its_plain_record_would_be(redis_server: RedisServer) -> None:
    # Given the same new job twice: as a Job (a producer's, checked when made) and as its record
    made = Job.create("obj", "t", {"k": [1, 2]}, now=T0, priority=8, max_retries=2)
    plain = {**job_to_plain(made), "id": "rec"}
    async with fresh_store(redis_server) as store:
        # When each is submitted straight to the store
        by_object, by_record = await store.execute(
            [{"op": "submit", "job": made, "direct": True}, {"op": "submit", "job": plain, "direct": True}]
        )
        # Expect the same result and the same stored job, but for the id
        assert by_object["created"] and by_object["job"] == {**by_record["job"], "id": "obj"}
        got = await store.execute([{"op": "get", "id": "obj"}, {"op": "get", "id": "rec"}])
        assert got[0]["job"] == {**got[1]["job"], "id": "obj"}
        # And anything else in its place is still refused in one line
        (bad,) = await store.execute([{"op": "submit", "job": "obj", "direct": True}])
        assert bad["error"].startswith("submit: ") and "\n" not in bad["error"]

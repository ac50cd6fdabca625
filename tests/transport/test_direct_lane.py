"""The direct lane on real processes: a producer submits straight to Redis, a node runs the job.

Given / When / Expect, with a ``redis-server`` of the module's own and node processes on the
``redis`` store. Credits bound a node's direct jobs and come back; a job that found no credit
is queued and the leader, nudged through Redis, runs it; a node with the lane off never
registers; a node stopped gracefully closes its registration; a producer's bad input and an
unreachable Redis are one-line errors.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from transport.bench_processors import FLUSH_ENV, LOG_ENV, read_starts
from transport.cluster import free_ports
from transport.jobs_client import JobError
from transport.redis_conn import RedisConn
from transport.redis_producer import RedisProducer
from transport.testing import NodeProc, node_cmd, poll

redis_server = redis_server_fixture(fsync=False)


async def redis_call(port: int, *args: Any) -> Any:
    conn = RedisConn(port=port)
    try:
        return await conn.execute(*args)
    finally:
        await conn.aclose()


def flush(port: int) -> None:
    trio.run(redis_call, port, "FLUSHALL")


def start_node(tmp: Path, redis_port: int, *extra: str) -> NodeProc:
    (port,) = free_ports(1)
    argv = node_cmd(
        "--id", "n1", "--listen", f"127.0.0.1:{port}", "--cluster", "dl", "--data-dir", str(tmp / "data"),
        "--store", "redis", "--redis-port", str(redis_port), "--election-timeout", "300ms",
        "--election-interval", "50ms", "--worker-heartbeat", "500ms", "--worker-offline-after", "1.5s",
        "--jobs-module", "transport.bench_processors", "--log-json", *extra,
    )  # fmt: skip
    node = NodeProc("n1", argv, tmp, {LOG_ENV: str(tmp / "n1.starts"), FLUSH_ENV: "0"})
    node.start()
    assert poll(lambda: bool(node.find("leader.changed", leader="n1")), 30), node.lines[-20:]
    return node


@pytest.fixture
def node(tmp_path: Path, redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[NodeProc]:
    flush(redis_server.port)
    extra: tuple[str, ...] = getattr(request, "param", ("--direct-lane-slots", "1"))
    proc = start_node(tmp_path, redis_server.port, *extra)
    try:
        yield proc
    finally:
        proc.kill()


def registered(port: int) -> list[bytes]:
    return list(trio.run(redis_call, port, "ZRANGE", "troupe:lane_alive", 0, -1))


async def submit_all(port: int, specs: list[tuple[str, Any]], pause: float = 0.0) -> list[dict[str, Any]]:
    out = []
    async with RedisProducer(port=port) as producer:
        for jtype, payload in specs:
            out.append(await producer.submit(jtype, payload))
            await trio.sleep(pause)
    return out


async def wait_done(port: int, ids: list[str], timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    async with RedisProducer(port=port) as producer:
        with trio.fail_after(timeout):
            while True:
                jobs = {i: (await producer.request({"op": "get", "id": i}))["job"] for i in ids}
                if all(j["status"] == "SUCCESS" for j in jobs.values()):
                    return jobs
                await trio.sleep(0.05)


def test_a_direct_job_starts_on_the_node_and_credits_come_back(
    tmp_path: Path, redis_server: RedisServer, node: NodeProc
) -> None:
    port = redis_server.port
    # Given a node with one direct-lane slot, registered in Redis
    assert poll(lambda: registered(port) == [b"n1"], 10), node.lines[-20:]
    # When a long job and then a short one are submitted straight to Redis
    first, second = trio.run(submit_all, port, [("bench.work", {"key": "a", "seconds": 0.5}), ("bench", "b")])
    # Expect the first dispatched to n1 at its submit, the second queued (no credit left)
    assert first["status"] == "RUNNING" and first["attempts"][0]["worker"] == "n1"
    assert second["status"] == "PENDING"
    # And both run once: the second through the leader, whose feed took the store's nudge
    assert poll(lambda: trio.run(redis_call, port, "LLEN", "troupe:nudge") == 0, 5)
    jobs = trio.run(wait_done, port, [first["id"], second["id"]])
    assert jobs[second["id"]]["attempts"][0]["started"] < jobs[first["id"]]["attempts"][0]["finished"]
    # When the first's slot is free again: the next direct submit is dispatched at once
    time.sleep(1.2)
    (third,) = trio.run(submit_all, port, [("bench", "c")])
    assert third["status"] == "RUNNING"
    trio.run(wait_done, port, [third["id"]])
    starts = read_starts([tmp_path / "n1.starts"])
    assert {k: len(v) for k, v in starts.items() if k in "abc"} == {"a": 1, "b": 1, "c": 1}
    # And a graceful stop closes the registration
    assert node.terminate() == 0
    assert registered(port) == []


@pytest.mark.parametrize("node", [("--direct-lane-slots", "0")], indirect=True)
def test_a_node_with_the_direct_lane_off_never_registers_yet_runs_direct_submits(
    redis_server: RedisServer, node: NodeProc
) -> None:
    port = redis_server.port
    jobs = trio.run(submit_all, port, [("bench", f"k{i}") for i in range(5)], 0.05)
    assert {j["status"] for j in jobs} == {"PENDING"}
    trio.run(wait_done, port, [j["id"] for j in jobs])
    assert registered(port) == []


def test_a_registration_redis_lost_is_opened_again(redis_server: RedisServer, node: NodeProc) -> None:
    port = redis_server.port
    assert poll(lambda: registered(port) == [b"n1"], 10)
    # When Redis loses the registration (a FLUSHALL, as a restart without persistence would)
    flush(port)
    # Expect the node to register again within a refresh, and the lane to work
    assert poll(lambda: registered(port) == [b"n1"], 10), node.lines[-20:]
    assert poll(lambda: bool(node.find("lanefeed.reopened")), 5)
    (job,) = trio.run(submit_all, port, [("bench", "x")])
    assert job["status"] == "RUNNING"
    trio.run(wait_done, port, [job["id"]])


async def test_a_producer_refuses_bad_input_and_an_unreachable_redis_in_one_line(
    redis_server: RedisServer,
) -> None:
    async with RedisProducer(port=redis_server.port) as producer:
        with pytest.raises(JobError, match="priority") as bad:
            await producer.submit("email", {}, priority=42)
        assert "\n" not in str(bad.value)
        with pytest.raises(JobError, match="unknown command op"):
            await producer.request({"op": "explode"})
    (dead,) = free_ports(1)
    with pytest.raises(JobError, match=f"127.0.0.1:{dead}") as down:
        await RedisProducer(port=dead).open()
    assert "\n" not in str(down.value)


async def test_concurrent_submits_are_each_acknowledged_once(redis_server: RedisServer) -> None:
    await redis_call(redis_server.port, "FLUSHALL")
    async with RedisProducer(port=redis_server.port, connections=2) as producer:
        results: list[dict[str, Any]] = []

        async def one(i: int) -> None:
            results.append(await producer.submit("t", i, id=f"c{i:03d}"))

        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(one, i)
        stats = await producer.request({"op": "stats"})
    assert sorted(r["id"] for r in results) == [f"c{i:03d}" for i in range(300)]
    assert stats["total"] == 300 and stats["by_status"]["PENDING"] == 300

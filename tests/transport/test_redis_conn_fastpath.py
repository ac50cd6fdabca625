"""The trio Redis connection's fast path: one scheduler pass per round trip, and still correct.

Given / When / Expect, against a private ``redis-server`` (never the system one on 6379): shared
connections keep replies in step, cancellation anywhere drops the connection cleanly, big
pipelines cross the socket buffers, and the reply timeout (a watchdog task, not a cancel scope
per call) still fires.
"""

from __future__ import annotations

import pytest
import trio
from troupe_testkit.redis_server import RedisServer, redis_server_fixture

from transport.redis_conn import RedisConn, RedisUnavailable

redis_server = redis_server_fixture(fsync=False)


class _Steps(trio.abc.Instrument):
    """Counts the steps (scheduler passes) one task takes."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_an_uncontended_call_passes_through_the_scheduler_once(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("PING")  # connected, watchdog started
    steps = _Steps(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(steps)
    try:
        for _ in range(20):
            assert await conn.execute("PING") == b"PONG"
    finally:
        trio.lowlevel.remove_instrument(steps)
        await conn.aclose()
    assert steps.steps == 20  # one wait for the reply per call, nothing else


async def test_fifty_tasks_sharing_one_connection_get_their_own_replies(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    wrong: list[tuple[int, int, object]] = []

    async def worker(i: int) -> None:
        for n in range(100):
            value = f"{i}:{n}".encode()
            assert await conn.execute("SET", f"fast:own:{i}", value) == b"OK"
            got = await conn.execute("GET", f"fast:own:{i}")
            if got != value:
                wrong.append((i, n, got))

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(worker, i)
    assert wrong == []
    assert conn.connected  # nothing went out of step, so nothing was dropped
    await conn.aclose()


async def test_a_call_cancelled_in_the_middle_leaves_the_next_call_working(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("DEL", "fast:list")
    results: list[tuple[int, int, bytes]] = []

    async def busy(i: int) -> None:
        for n in range(50):
            results.append((i, n, await conn.execute("ECHO", f"{i}:{n}")))

    # Given other tasks using the connection, When one call is cancelled while Redis holds it
    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(busy, i)
        with trio.move_on_after(0.05) as scope:
            await conn.execute("BLPOP", "fast:list", "5")
        assert scope.cancelled_caught
    # Expect every other call answered with its own reply (some after a reconnect)
    assert sorted(results) == sorted((i, n, f"{i}:{n}".encode()) for i in range(5) for n in range(50))
    assert await conn.execute("ECHO", "after") == b"after"
    # a call cancelled before it starts sends nothing and keeps the connection
    await conn.execute("SET", "fast:count", 0)
    with trio.CancelScope() as scope:
        scope.cancel()
        await conn.execute("INCR", "fast:count")
    assert conn.connected and await conn.execute("GET", "fast:count") == b"0"
    await conn.aclose()


async def test_a_call_cancelled_while_sending_drops_the_connection(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("PING")
    big = b"x" * (32 << 20)  # far more than the socket buffers: the send has to wait
    with trio.move_on_after(0.001):
        await conn.execute("SET", "fast:big", big)
    # half a request may be on the wire: the connection must not be reused
    assert not conn.connected
    assert await conn.execute("ECHO", "clean") == b"clean"
    await conn.execute("DEL", "fast:big")
    await conn.aclose()


async def test_a_large_pipeline_crosses_the_socket_buffers(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    value = bytes(range(256)) * 4  # 1 KiB
    # 10,000 commands going out (10 MiB of request) and 10,000 replies coming back (10 MiB)
    sets = [("SET", f"fast:p:{i}", value + str(i).encode()) for i in range(10_000)]
    assert await conn.pipeline(sets) == [b"OK"] * 10_000
    replies = await conn.pipeline([("GET", f"fast:p:{i}") for i in range(10_000)])
    assert replies == [value + str(i).encode() for i in range(10_000)]
    assert sum(map(len, replies)) > 64 * 1024
    assert await conn.execute("PING") == b"PONG"
    await conn.pipeline(
        [("DEL", *[f"fast:p:{i}" for i in range(j, j + 1000)]) for j in range(0, 10_000, 1000)]
    )
    await conn.aclose()


async def test_the_reply_timeout_fires_then_the_connection_comes_back(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port, db=1, timeout=0.2)
    await conn.execute("SET", "fast:db1", "one")
    start = trio.current_time()
    with pytest.raises(RedisUnavailable, match=r"no reply within 0\.2s"):
        await conn.execute("BLPOP", "fast:never", "3")
    assert 0.15 < trio.current_time() - start < 2.0
    assert not conn.connected
    assert await conn.execute("GET", "fast:db1") == b"one"  # reconnected, SELECT 1 again
    await conn.aclose()


async def test_a_lowered_timeout_takes_effect_at_once(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port, timeout=30.0)
    await conn.execute("PING")  # the watchdog sleeps towards a 30 s deadline
    conn.timeout = 0.2
    start = trio.current_time()
    with pytest.raises(RedisUnavailable, match=r"no reply within 0\.2s"):
        await conn.execute("BLPOP", "fast:never", "3")
    assert trio.current_time() - start < 2.0
    conn.timeout = None  # no deadline: a blocking call waits as long as it takes
    assert await conn.execute("BLPOP", "fast:never", "0.3") is None
    await conn.aclose()


def test_a_connection_used_in_a_second_trio_run_still_times_out(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port, timeout=0.2)

    async def first() -> None:
        assert await conn.execute("PING") == b"PONG"

    async def second() -> None:
        # the first run's watchdog ended with it; this run must get its own
        with pytest.raises(RedisUnavailable, match=r"no reply within 0\.2s"):
            with trio.fail_after(2):
                await conn.execute("BLPOP", "fast:never", "3")
        assert await conn.execute("PING") == b"PONG"
        await conn.aclose()

    trio.run(first)
    trio.run(second)

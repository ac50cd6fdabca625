"""The trio Redis connection: pipelines, error replies, scripts, reconnects and timeouts.

Given / When / Expect, against a private ``redis-server`` (never the system one on 6379).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from troupe_testkit.redis_server import RedisServer, free_port, redis_server_fixture

from transport.redis_conn import Function, RedisConn, RedisReplyError, RedisUnavailable, Script

redis_server = redis_server_fixture()


async def test_execute_and_pipeline_answer_in_order(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    assert await conn.execute("SET", "conn:k", b"\x00v\xff") == b"OK"
    assert await conn.execute("GET", "conn:k") == b"\x00v\xff"
    # a pipeline of many commands is one round trip with every reply in order
    await conn.execute("DEL", "conn:n")
    replies = await conn.pipeline([("INCR", "conn:n") for _ in range(500)])
    assert replies == list(range(1, 501))
    assert await conn.pipeline([]) == []
    await conn.aclose()


async def test_error_reply_is_raised_and_the_connection_stays_usable(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("SET", "conn:text", "abc")
    with pytest.raises(RedisReplyError) as info:
        await conn.execute("INCR", "conn:text")
    assert info.value.code == "ERR"
    # Given raise_errors=False, the error is returned in its place and later replies still match
    replies = await conn.pipeline(
        [("INCR", "conn:text"), ("SET", "conn:x", "1"), ("GET", "conn:x")], raise_errors=False
    )
    assert isinstance(replies[0], RedisReplyError) and replies[1:] == [b"OK", b"1"]
    assert await conn.execute("PING") == b"PONG"
    await conn.aclose()


async def test_evalsha_loads_a_script_the_server_lost(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    script = Script("return {KEYS[1], ARGV[1], 42}")
    assert await conn.evalsha(script, ["k"], ["a"]) == [b"k", b"a", 42]
    # When the server forgets every script, Expect EVALSHA to load it again by itself
    await conn.execute("SCRIPT", "FLUSH")
    calls = [script.command(["k"], [str(i)]) for i in range(3)]
    assert await conn.pipeline(calls) == [[b"k", str(i).encode(), 42] for i in range(3)]
    # a failing script raises its error reply
    with pytest.raises(RedisReplyError, match="boom"):
        await conn.evalsha(Script("return redis.error_reply('boom')"))
    await conn.aclose()


async def test_fcall_loads_a_function_library_the_server_lost(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    body = "local function f(keys, args) return {keys[1], args[1], redis.call('INCR', 'conn:f')} end\n"
    fn = conn.register(Function("conn_f", f"#!lua name=conn_f\n{body}redis.register_function('conn_f', f)\n"))
    await conn.execute("DEL", "conn:f")
    # Given a server that never saw the library, Expect the first FCALL to load it
    assert await conn.execute(*fn.command(["k"], ["a"])) == [b"k", b"a", 1]
    # When the server forgets every function, Expect FCALL to load it again, in order
    await conn.execute("FUNCTION", "FLUSH")
    calls = [fn.command(["k"], [str(i)]) for i in range(3)]
    assert await conn.pipeline(calls) == [[b"k", str(i).encode(), 2 + i] for i in range(3)]
    # an unknown function that nobody registered is an error, not a reload
    with pytest.raises(RedisReplyError, match="Function not found"):
        await conn.execute("FCALL", "conn_nobody", 0)
    with pytest.raises(ValueError, match="must start with"):
        Function("x", "return 1")
    await conn.aclose()


async def test_tasks_share_one_connection(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("DEL", *[f"conn:t{i}" for i in range(8)])

    async def bump(i: int) -> None:
        for _ in range(50):
            await conn.pipeline([("INCR", f"conn:t{i}"), ("INCR", f"conn:t{i}")])

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(bump, i)
    assert await conn.pipeline([("GET", f"conn:t{i}") for i in range(8)]) == [b"100"] * 8
    await conn.aclose()


async def test_a_cancelled_call_drops_the_connection_and_replies_stay_in_step(
    redis_server: RedisServer,
) -> None:
    conn = RedisConn(port=redis_server.port)
    with trio.move_on_after(0.1):
        await conn.execute("BLPOP", "conn:never", "5")  # cancelled while Redis still holds it
    assert not conn.connected
    # Expect the next call on a fresh connection, answered with its own reply
    assert await conn.execute("ECHO", "mine") == b"mine"
    await conn.aclose()


async def test_reconnects_after_the_server_restarts(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port, db=2)
    await conn.execute("SET", "conn:durable", "yes")
    # When the server crashes and comes back on the same port and files
    redis_server.restart()
    # Expect at most one failed call (the old connection is dead), then normal service
    try:
        value = await conn.execute("GET", "conn:durable")
    except RedisUnavailable as e:
        assert str(e).startswith(f"redis at 127.0.0.1:{redis_server.port}")
        value = await conn.execute("GET", "conn:durable")
    assert value == b"yes"  # db 2 was selected again, and the acknowledged write was on disk
    await conn.aclose()


async def test_unreachable_server_fails_fast_in_one_line() -> None:
    port = free_port()
    conn = RedisConn(port=port)
    with trio.fail_after(5):
        with pytest.raises(RedisUnavailable) as info:
            await conn.execute("PING")
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text and "unreachable" in text and "\n" not in text
    assert isinstance(info.value, OSError)


async def test_a_silent_server_times_out() -> None:
    # Given a listener that accepts connections and never answers
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:

        async def accept_and_ignore(stream: trio.SocketStream) -> None:
            await trio.sleep_forever()

        nursery.start_soon(trio.serve_listeners, accept_and_ignore, listeners)
        conn = RedisConn(port=port, timeout=0.2)
        with pytest.raises(RedisUnavailable, match=r"no reply within 0\.2s") as info:
            await conn.execute("PING")
        assert "\n" not in str(info.value) and not conn.connected
        nursery.cancel_scope.cancel()


async def test_password_and_database(redis_server: RedisServer) -> None:
    admin = RedisConn(port=redis_server.port)
    await admin.execute("CONFIG", "SET", "requirepass", "s3cret")  # this connection stays logged in
    try:
        conn = RedisConn(port=redis_server.port, db=3, password="s3cret")
        await conn.execute("SET", "conn:db", "three")
        other = RedisConn(port=redis_server.port, db=0, password="s3cret")
        assert await other.execute("GET", "conn:db") is None  # another database
        with pytest.raises(RedisReplyError, match=f"127.0.0.1:{redis_server.port} refused AUTH") as info:
            await RedisConn(port=redis_server.port, password="wrong").execute("PING")
        assert info.value.code == "WRONGPASS"
        await conn.aclose()
        await other.aclose()
    finally:
        await admin.execute("CONFIG", "SET", "requirepass", "")
        await admin.aclose()


async def test_while_waiting_runs_after_the_send_and_before_the_replies(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    await conn.execute("DEL", "conn:ww")
    seen: list[object] = []

    # Given a hook, Expect it to run once per call (not per reply) and the replies unchanged
    def hook() -> None:
        seen.append("hook")

    replies = await conn.pipeline([("INCR", "conn:ww"), ("BLPOP", "conn:none", "0.05")], while_waiting=hook)
    assert replies == [1, None] and seen == ["hook"]

    # When the hook raises, Expect the error to propagate and the connection to stay in step
    def broken() -> None:
        raise ZeroDivisionError("bug in the hook")

    with pytest.raises(ZeroDivisionError):
        await conn.pipeline([("INCR", "conn:ww")], while_waiting=broken)
    assert await conn.execute("INCR", "conn:ww") == 3
    await conn.aclose()


async def test_a_begun_call_is_finished_by_another_task(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port)
    # Given a connection not yet open, Expect begin to send nothing (pipeline connects)
    assert conn.begin([("SET", "conn:b", "0")]) is None
    await conn.connect()
    await conn.execute("DEL", "conn:b")
    # When one call is begun from synchronous code, Expect the connection busy until finished:
    # a second begin refuses, and a pipeline of another task waits its turn
    flight = conn.begin([("INCR", "conn:b"), ("INCR", "conn:b")])
    assert flight is not None
    assert conn.begin([("INCR", "conn:b")]) is None
    later: list[Any] = []

    async def other() -> None:
        later.extend(await conn.pipeline([("INCR", "conn:b")]))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.testing.wait_all_tasks_blocked()
        assert later == []
        finished: list[Any] = []

        async def finisher() -> None:
            finished.extend(await conn.finish(flight))

        nursery.start_soon(finisher)
    assert finished == [1, 2] and later == [3]
    await conn.aclose()


async def test_a_begun_call_whose_server_went_away_fails_in_one_line(redis_server: RedisServer) -> None:
    conn = RedisConn(port=redis_server.port, timeout=5.0)
    await conn.execute("SET", "conn:gone", "1")
    redis_server.restart()
    # Given a connection the server dropped, When a call is begun on it, Expect finish to raise
    # RedisUnavailable (or begin to refuse at once), then the next call to reconnect
    flight = conn.begin([("GET", "conn:gone")])
    if flight is not None:
        with pytest.raises(RedisUnavailable, match=f"redis at 127.0.0.1:{redis_server.port}"):
            await conn.finish(flight)
    assert await conn.execute("GET", "conn:gone") == b"1"
    await conn.aclose()

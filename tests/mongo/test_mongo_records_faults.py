"""The records when MongoDB misbehaves, on an in-process node (heartbeat only, no job engine):
an unusable URI ends the records in one line and the node runs on; MongoDB away with a full
buffer drops the oldest records, counts them, says it once, and what the buffer kept arrives
when MongoDB comes back.

Given / When / Expect."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from pymongo import MongoClient

from transport import mongo_records
from transport.cli import build_parser
from transport.events import EventLog
from transport.gateway_bridge import GatewayBridge
from transport.memory import MemoryHub
from transport.mongo_records import run_records
from transport.mongo_server import MongoServer
from transport.node_cli import NodeSettings, node_blueprint, resolve_settings
from transport.node_handle import NodeHandle
from transport.runtime import NodeRuntime
from transport.server_process import free_port


def _settings(uri: str, tmp: str) -> NodeSettings:
    args = build_parser().parse_args(
        [
            "node", "--id", "n1", "--listen", "127.0.0.1:7001", "--data-dir", tmp, "--election", "none",
            "--mongodb-uri", uri, "--mongodb-database", "faults", "--mongodb-snapshot-interval", "200ms",
            "--mongodb-timeout", "500ms",
        ]
    )  # fmt: skip
    return resolve_settings(args, {})


async def _until(pred: Any, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.05)
        return
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


async def _node(nursery: trio.Nursery, settings: NodeSettings, tmp: Any) -> NodeHandle:
    events = EventLog()
    transport = MemoryHub().transport("n1")
    runtime = NodeRuntime("n1", node_blueprint(settings), transport, data_dir=tmp, events=events)
    await nursery.start(runtime.serve)
    handle = NodeHandle(settings, runtime, events, transport, GatewayBridge(runtime), time.time())
    await nursery.start(handle.bridge.run)
    return handle


async def test_an_unusable_uri_ends_the_records_in_one_line_and_the_node_runs_on(tmp_path: Any) -> None:
    settings = _settings("mongodb://127.0.0.1:not-a-port", str(tmp_path))
    async with trio.open_nursery() as nursery:
        handle = await _node(nursery, settings, tmp_path)
        with trio.fail_after(10):
            await run_records(handle)  # returns: the records are off
        [line] = handle.events.find("mongo.disabled")
        assert "MONGODB_URI" in line["error"] and "\n" not in line["error"]
        assert handle.runtime.running
        handle.runtime.stop()


async def test_mongodb_away_with_a_full_buffer_keeps_the_newest_and_counts_the_rest(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mongo_records, "BUFFER_CAPACITY", 30)
    server = MongoServer(port=free_port())
    settings = _settings(server.uri, str(tmp_path))
    try:
        async with trio.open_nursery() as nursery:
            # Given a node whose MongoDB is away
            handle = await _node(nursery, settings, tmp_path)
            events = handle.events
            await nursery.start(run_records, handle)
            await _until(lambda: events.find("mongo.unavailable"), 10, "mongo.unavailable")

            # When 100 leader changes happen while it is away (more than the buffer holds)
            started = trio.current_time()
            for epoch in range(1, 101):
                events.emit("n1", "election", "leader.changed", {"leader": f"n{epoch % 3}", "epoch": epoch})
            assert trio.current_time() - started < 0.5  # the node is not slowed

            # Expect the drops counted in one line, and MongoDB's absence said once
            await _until(lambda: events.find("mongo.dropped"), 5, "mongo.dropped")
            assert events.find("mongo.dropped")[0]["ops"] >= 70
            await trio.sleep(1.5)
            assert len(events.find("mongo.unavailable")) == 1

            # When MongoDB comes back
            await trio.to_thread.run_sync(server.start)
            await _until(lambda: events.find("mongo.recovered"), 15, "mongo.recovered")

            # Expect the newest changes the buffer kept to arrive, the oldest to be gone
            client: MongoClient[dict[str, Any]] = MongoClient(server.uri)
            elections = client["faults"]["elections"]

            def epochs() -> set[int]:
                return {d["epoch"] for d in elections.find({"node": "n1"})}

            with trio.fail_after(10):
                while 100 not in await trio.to_thread.run_sync(epochs):
                    await trio.sleep(0.1)
            kept = await trio.to_thread.run_sync(epochs)
            assert 1 not in kept and len(kept) < 30 and set(range(100 - len(kept) + 1, 101)) == kept
            assert await trio.to_thread.run_sync(lambda: client["faults"]["nodes"].find_one({"_id": "n1"}))
            assert len(events.find("mongo.unavailable")) == 1
            client.close()
            handle.runtime.stop()
    finally:
        server.close()

"""The MongoDB records of an in-process node (runtime, memory hub, job engine with the memory
store, gateway bridge) against a real mongoeco server: the node's own job events alone (no
sweeps) bring every job's final status and attempt history, the leader change, the node and
metrics snapshots to MongoDB, and a graceful stop marks the node stopped.

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
from transport.jobs_client import new_job
from transport.memory import MemoryHub
from transport.mongo_docs import INDEXES
from transport.mongo_records import run_records
from transport.mongo_server import MongoServer
from transport.node_cli import NodeSettings, node_blueprint, resolve_settings, serve_store
from transport.node_handle import NodeHandle
from transport.processors import load_modules, registry
from transport.runtime import NodeRuntime

DB = "inproc"
SPECS: list[dict[str, Any]] = (
    [{"type": "noop", "payload": {"i": i}, "max_retries": 0} for i in range(6)]
    + [{"type": "email", "payload": {"to": f"u{i}@example.com"}, "max_retries": 1} for i in range(4)]
    + [{"type": "flaky", "payload": {"fail_rate": 0.5}, "max_retries": 6} for _ in range(4)]
    + [{"type": "broken", "max_retries": 1} for _ in range(4)]
    + [{"type": "sleep", "payload": {"seconds": 1.0}, "max_retries": 0} for _ in range(2)]
)


def _settings(uri: str, tmp: str) -> NodeSettings:
    args = build_parser().parse_args(
        [
            "node", "--id", "n1", "--listen", "127.0.0.1:7001", "--data-dir", tmp, "--store", "memory",
            "--election-timeout", "300ms", "--election-interval", "50ms", "--retry-base-delay", "100ms",
            "--retry-max-delay", "300ms", "--jobs-module", "transport.demo_jobs",
            "--mongodb-uri", uri, "--mongodb-database", DB, "--mongodb-snapshot-interval", "500ms",
            "--mongodb-timeout", "5s",
        ]
    )  # fmt: skip
    settings = resolve_settings(args, {})
    load_modules(settings.job_modules)
    return settings


async def _until(pred: Any, timeout: float, what: str) -> Any:
    with trio.move_on_after(timeout):
        while True:
            value = await pred()
            if value:
                return value
            await trio.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


async def test_job_events_alone_bring_every_job_to_mongodb(
    mongo_server: MongoServer,
    mongo_client: MongoClient[dict[str, Any]],
    records: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongo_records, "sweep_interval", lambda _interval: 3600.0)  # events only
    settings = _settings(mongo_server.uri, str(tmp_path))
    db = mongo_client[DB]

    def read(collection: str, **query: Any) -> list[dict[str, Any]]:
        return list(db[collection].find(query))

    async def find(collection: str, **query: Any) -> list[dict[str, Any]]:
        return await trio.to_thread.run_sync(lambda: read(collection, **query))

    # Given one in-process node with the memory store and its records
    events = EventLog()
    transport = MemoryHub().transport("n1")
    runtime = NodeRuntime(
        "n1", node_blueprint(settings), transport, data_dir=tmp_path, events=events, processors=registry()
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.serve)
        nursery.start_soon(serve_store, runtime, settings)
        handle = NodeHandle(settings, runtime, events, transport, GatewayBridge(runtime), time.time())
        await nursery.start(handle.bridge.run)
        await nursery.start(run_records, handle)
        await _until(lambda: _async(events.find("leader.changed", leader="n1")), 15, "a leader")

        # When 20 jobs are submitted, failing ones included, and all settle
        ids = []
        for spec in SPECS:
            spec = dict(spec)
            job = new_job(spec.pop("type"), spec.pop("payload", None), **spec)
            reply = await handle.bridge.request({"op": "submit", "job": job})
            assert reply.get("created") is True, reply
            ids.append(job["id"])

        async def settled() -> bool:
            stats = await handle.bridge.request({"op": "stats"})
            by = stats.get("by_status", {})
            return stats.get("total") == 20 and not (by["PENDING"] or by["RUNNING"] or by["RETRYING"])

        await _until(settled, 30, "the jobs to settle")
        jobs = (await handle.bridge.request({"op": "list", "limit": 100}))["jobs"]
        assert sorted(j["id"] for j in jobs) == sorted(ids)
        assert {j["status"] for j in jobs if j["type"] == "broken"} == {"DEAD"}

        # Expect MongoDB to hold every job as the store does, with its attempt history
        async def all_recorded() -> bool:
            docs = {d["_id"]: d for d in await find("jobs")}
            return not records.mismatches(docs, jobs)

        await _until(all_recorded, 20, "every job in MongoDB as in the store")
        docs = {d["_id"]: d for d in await find("jobs")}
        assert len(docs) == 20
        broken = [d for d in docs.values() if d["type"] == "broken"]
        assert all(len(d["attempts"]) == 2 and d["error"] and d["outcome"] == "FAILED" for d in broken)
        assert {d["recorded_by"] for d in docs.values()} == {"n1"}
        # And the leader change, the node and metrics snapshots
        elections = await find("elections", node="n1")
        assert elections and elections[-1]["leader"] == "n1" and elections[-1]["algorithm"] == "raft"
        [node] = await find("nodes", _id="n1")
        assert node["store"] == "memory" and node["election"] == "raft" and node["workers"] > 0
        await _until(lambda: _len_at_least(find("metrics", node="n1"), 2), 10, "two metrics snapshots")
        snapshot = (await find("metrics", node="n1"))[-1]
        assert snapshot["store"]["total"] == 20 and snapshot["runtime"]["jobs_run"] >= 20
        assert snapshot["records"]["sweeps"] == 0 and snapshot["records"]["written"] >= 20
        for collection, specs in INDEXES.items():
            info = await trio.to_thread.run_sync(db[collection].index_information)
            assert len(info) == len(specs) + 1, (collection, info)
        assert not events.find("mongo.unavailable")

        # When the node stops gracefully
        runtime.stop()
    # Expect its document to say so
    [node] = await find("nodes", _id="n1")
    assert node["status"] == "stopped"


async def _async(value: Any) -> Any:
    return value


async def _len_at_least(docs: Any, n: int) -> bool:
    return len(await docs) >= n

"""MongoDB records of real ``troupe node`` processes (``MONGODB_URI`` set) against a real
mongoeco server: a two-node Raft cluster records every job with the store's final status and
attempt history, both nodes, the leader change and metrics snapshots; a node whose MongoDB is
down at start runs anyway, says so in one line, and its records arrive once MongoDB starts.

Given / When / Expect. The nodes print only what a production node prints (no
``--log-verbose``), so successful jobs reach MongoDB through the leader's sweeps. Every
process is killed in a ``finally``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from transport.cluster import free_ports
from transport.jobs_client import SyncJobClient
from transport.mongo_docs import INDEXES
from transport.mongo_server import MongoServer
from transport.server_process import free_port
from transport.testing import NodeProc, dump, node_cmd, poll

BATCH: list[dict[str, Any]] = (
    [{"type": "noop", "payload": {"i": i}} for i in range(6)]
    + [{"type": "email", "payload": {"to": f"u{i}@example.com"}, "priority": "high"} for i in range(4)]
    + [{"type": "flaky", "payload": {"fail_rate": 0.5}, "max_retries": 6} for _ in range(4)]
    + [{"type": "broken", "max_retries": 1} for _ in range(4)]
    + [{"type": "sleep", "payload": {"seconds": 0.3}} for _ in range(2)]
)
ACTIVE = ("PENDING", "RUNNING", "RETRYING")


def _argv(nid: str, port: int, tmp: Path, store: str, peers: dict[str, int]) -> list[str]:
    argv = node_cmd(
        "--id", nid, "--listen", f"127.0.0.1:{port}", "--cluster", "mg", "--data-dir", str(tmp),
        "--interval", "0.5", "--suspect-after", "1", "--dead-after", "2", "--store", store,
        "--election-timeout", "500ms", "--election-interval", "100ms", "--worker-heartbeat", "300ms",
        "--worker-offline-after", "1s", "--retry-base-delay", "100ms", "--retry-max-delay", "300ms",
        "--jobs-module", "transport.demo_jobs", "--log-json",
    )  # fmt: skip
    for other, other_port in peers.items():
        argv += ["--peer", f"{other}=127.0.0.1:{other_port}"]
    return argv


def _env(uri: str, database: str) -> dict[str, str]:
    return {
        "MONGODB_URI": uri,
        "MONGODB_DATABASE": database,
        "MONGODB_SNAPSHOT_INTERVAL": "1s",
        "MONGODB_TIMEOUT": "1s",
        "HTTP_ENABLED": "false",
        "METRICS_ENABLED": "false",
    }


def _settle(jobs: SyncJobClient, n: int) -> list[dict[str, Any]]:
    submitted = jobs.submit_many(BATCH[:n])
    assert len(submitted) == n
    stats = jobs.wait_idle(timeout=40)
    assert stats["total"] == n, stats
    listed, total = jobs.list(limit=1000)
    assert total == n
    return listed


def _docs(client: MongoClient[dict[str, Any]], database: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in client[database]["jobs"].find()}


@pytest.fixture
def cluster(tmp_path: Path, mongo_server: MongoServer) -> Iterator[dict[str, NodeProc]]:
    ports = dict(zip(("n1", "n2"), free_ports(2), strict=True))
    nodes = {
        nid: NodeProc(
            nid,
            _argv(nid, port, tmp_path, "raft", {o: p for o, p in ports.items() if o != nid}),
            tmp_path,
            _env(mongo_server.uri, "cluster"),
        )
        for nid, port in ports.items()
    }
    try:
        for node in nodes.values():
            node.start()
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


@pytest.mark.slow
def test_a_cluster_records_jobs_nodes_elections_and_metrics(
    cluster: dict[str, NodeProc], mongo_client: MongoClient[dict[str, Any]], records: Any
) -> None:
    # Given two nodes that agree on a leader
    def leader() -> str | None:
        views = {
            n.find("leader.changed")[-1]["leader"] if n.find("leader.changed") else None
            for n in cluster.values()
        }
        return views.pop() if len(views) == 1 else None

    assert poll(lambda: all(n.find("node.ready") for n in cluster.values()) and leader() is not None, 30), (
        dump(cluster)
    )
    addresses = [r["listen"] for n in cluster.values() for r in n.find("node.ready")]

    # When 20 jobs, failing ones included, are submitted and settle
    with SyncJobClient(addresses, cluster="mg", timeout=20) as jobs:
        listed = _settle(jobs, 20)
    assert {j["status"] for j in listed if j["type"] == "broken"} == {"DEAD"}
    assert {j["status"] for j in listed if j["type"] in ("noop", "email", "sleep")} == {"SUCCESS"}

    # Expect MongoDB to hold every job as the store does, attempt history included
    assert poll(lambda: not records.mismatches(_docs(mongo_client, "cluster"), listed), 25), (
        records.mismatches(_docs(mongo_client, "cluster"), listed),
        dump(cluster),
    )
    docs = _docs(mongo_client, "cluster")
    assert len(docs) == 20
    assert all(len(d["attempts"]) == 2 for d in docs.values() if d["type"] == "broken")
    workers = {a["node"] for d in docs.values() for a in d["attempts"]}
    assert workers <= {"n1", "n2"} and workers
    db = mongo_client["cluster"]
    # And both nodes, each one's view of the leader change, and metrics snapshots of both
    nodes = {d["_id"]: d for d in db["nodes"].find()}
    assert set(nodes) == {"n1", "n2"}, nodes
    assert all(
        d["status"] == "running" and d["election"] == "raft" and d["store"] == "raft" for d in nodes.values()
    )
    assert {d["listen"] for d in nodes.values()} == set(addresses)
    current = leader()
    for nid in ("n1", "n2"):
        assert db["elections"].find_one({"node": nid, "leader": current}) is not None, nid
    assert poll(lambda: all(db["metrics"].count_documents({"node": n}) >= 2 for n in ("n1", "n2")), 10)
    snapshot = db["metrics"].find_one({"node": current}, sort=[("at", -1)])
    assert snapshot is not None and snapshot["leader"] is True and snapshot["records"]["sweeps"] > 0
    for collection, specs in INDEXES.items():
        assert len(db[collection].index_information()) == len(specs) + 1, collection
    assert not any(n.find("mongo.unavailable") for n in cluster.values())

    # When a node stops gracefully, expect its document to say so
    assert cluster["n2"].terminate() == 0
    assert poll(lambda: (db["nodes"].find_one({"_id": "n2"}) or {}).get("status") == "stopped", 10)


@pytest.mark.slow
def test_mongodb_down_at_start_then_up_the_records_arrive(tmp_path: Path, records: Any) -> None:
    # Given a node whose MongoDB does not run yet
    port, node_port = free_port(), free_port()
    server = MongoServer(port=port)
    node = NodeProc("n1", _argv("n1", node_port, tmp_path, "memory", {}), tmp_path, _env(server.uri, "late"))
    try:
        node.start()
        # Expect it to start anyway and to say once that MongoDB is unavailable
        assert poll(lambda: node.find("node.ready") and node.find("mongo.unavailable"), 30), node.lines[-20:]
        assert node.find("leader.changed") or poll(lambda: node.find("leader.changed"), 15)
        with SyncJobClient([f"127.0.0.1:{node_port}"], cluster="mg", timeout=20) as jobs:
            listed = _settle(jobs, 8)
        time.sleep(2)  # a few failed retries
        assert len(node.find("mongo.unavailable")) == 1, node.lines[-20:]
        assert node.proc is not None and node.proc.poll() is None

        # When MongoDB starts
        server.start()
        # Expect the node to say so and its records to arrive
        assert poll(lambda: node.find("mongo.recovered"), 20), node.lines[-20:]
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=10_000)
        try:
            assert poll(lambda: not records.mismatches(_docs(client, "late"), listed), 20), (
                records.mismatches(_docs(client, "late"), listed)
            )
            db = client["late"]
            assert db["nodes"].find_one({"_id": "n1"}) is not None
            assert db["elections"].find_one({"node": "n1", "leader": "n1"}) is not None
            assert len(db["jobs"].index_information()) == len(INDEXES["jobs"]) + 1
        finally:
            client.close()
        assert len(node.find("mongo.unavailable")) == 1
    finally:
        node.kill()
        server.close()

"""Three real ``troupe node`` processes per transport: ``TRANSPORT=websocket`` (Raft store),
``TRANSPORT=redis`` through a test-started redis-server (SQLite store) and TCP with mutual TLS
(certificates from trustme; Raft store). Each cluster elects a leader, runs 50 demo jobs to
completion through a JobClient, and declares a SIGKILLed node dead (``peer.dead``). Every
process is killed in a ``finally``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from troupe_testkit.redis_server import RedisServer

from transport.jobs_client import SyncJobClient
from transport.testing import NodeProc, agreed_leader, cluster_procs, dump, listen_address, poll, running

IDS = ("n1", "n2", "n3")
JOBS = 50


class Setup:
    """How one kind of cluster is started, and how a client reaches it."""

    def __init__(self, kind: str, pki: Any, redis: RedisServer) -> None:
        self.kind = kind
        self.store = "sqlite" if kind == "redis" else "raft"
        self.env: dict[str, str] = {"TRANSPORT": "tcp" if kind == "tcp-mtls" else kind}
        self.client: dict[str, Any] = {}
        if kind == "redis":
            self.env["REDIS_ADDR"] = f"127.0.0.1:{redis.port}"
        if kind == "tcp-mtls":
            self.env.update(
                TLS_ENABLED="true",
                TLS_MUTUAL="true",
                TLS_CERT_FILE=str(pki.cert),
                TLS_KEY_FILE=str(pki.key),
                TLS_CA_FILE=str(pki.ca),
            )
            self.client = {"ca_file": pki.ca, "cert_file": pki.cert, "key_file": pki.key}


@pytest.fixture(params=["websocket", "redis", "tcp-mtls"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Any, redis_server: RedisServer
) -> Iterator[tuple[Setup, dict[str, NodeProc]]]:
    setup = Setup(request.param, pki, redis_server)
    procs = cluster_procs(
        list(IDS), tmp_path, "--cluster", f"tp-{request.param}",
        "--data-dir", str(tmp_path), "--interval", "0.5", "--suspect-after", "1", "--dead-after", "2",
        "--store", setup.store, "--election-timeout", "500ms", "--election-interval", "100ms",
        "--worker-heartbeat", "300ms", "--worker-offline-after", "1s", "--retry-base-delay", "100ms",
        "--jobs-module", "transport.demo_jobs", "--log-json", env=setup.env,
    )  # fmt: skip
    with running(procs) as nodes:
        yield setup, nodes


def _batch() -> list[dict[str, Any]]:
    kinds: list[dict[str, Any]] = [
        {"type": "noop", "payload": {"n": 1}},
        {"type": "email", "payload": {"to": "a@example.com"}, "priority": "high"},
        {"type": "resize", "payload": {"width": 16, "height": 12}},
        {"type": "sleep", "payload": {"seconds": 0.05}},
    ]
    return [kinds[i % len(kinds)] for i in range(JOBS)]


@pytest.mark.slow
def test_a_cluster_runs_jobs_and_declares_a_killed_node_dead(
    cluster: tuple[Setup, dict[str, NodeProc], dict[str, int]],
) -> None:
    setup, nodes = cluster
    # Given three nodes on this transport that agree on a leader
    assert poll(lambda: all(n.find("node.ready") for n in nodes.values()), 30), dump(nodes)
    assert {n.find("node.ready")[0]["transport"] for n in nodes.values()} == {setup.env["TRANSPORT"]}
    assert poll(lambda: agreed_leader(nodes) is not None, 30), dump(nodes)
    leader = agreed_leader(nodes)

    # When 50 jobs are submitted through a JobClient (plain TCP to NODE_LISTEN, TLS if on)
    addresses = [listen_address(nodes[n]) for n in IDS]
    with SyncJobClient(addresses, cluster=f"tp-{setup.kind}", timeout=20, **setup.client) as jobs:
        started = time.monotonic()
        submitted = jobs.submit_many(_batch())
        stats = jobs.wait_idle(timeout=60)
        elapsed = time.monotonic() - started
        # Expect every one to succeed
        assert stats["total"] == JOBS and stats["by_status"].get("SUCCESS") == JOBS, stats
        everything, total = jobs.list(limit=100)
        assert total == JOBS and {j["id"] for j in everything} == {j["id"] for j in submitted}
        workers = {j["attempts"][-1]["worker"] for j in everything}
        print(f"{setup.kind}: {JOBS} jobs in {elapsed:.2f} s on workers {sorted(workers)}")

    # When a node that is neither the leader nor the SQLite store's host is SIGKILLed
    victim = next(n for n in reversed(IDS) if n != leader and n != "n1")
    killed = time.time()
    nodes[victim].kill()
    # Expect the others to declare it dead
    survivors = [n for n in IDS if n != victim]
    assert poll(lambda: all(nodes[s].find("peer.dead", since=killed, peer=victim) for s in survivors), 20), (
        dump(nodes)
    )
    # And the links were of the kind asked for, without refusals
    links = {"websocket": "ws", "tcp-mtls": "tcp"}.get(setup.kind)
    for s in survivors:
        node = nodes[s]
        assert node.proc is not None and node.proc.poll() is None
        assert (
            not node.find("tcp.tls_failed")
            and not node.find("tcp.refused")
            and not node.find("redis.refused")
        )
        peers_dialled = {r["peer"] for r in node.find(f"{links or 'tcp'}.link_up", direction="out")}
        if links is None:  # redis: nodes never dial each other; TCP only carries clients
            assert peers_dialled == set(), peers_dialled
        else:
            assert peers_dialled == set(IDS) - {s}, peers_dialled

"""The job engine on three real ``troupe node`` processes with the Raft store: a mixed batch of
jobs, failing ones included, all settle as their types should, even when a node that is not the
leader is SIGKILLed while it runs jobs. Every process is killed in a ``finally``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from transport.cluster import free_ports
from transport.jobs_client import SyncJobClient
from transport.testing import (
    NodeProc,
    agreed_leader,
    cluster_procs,
    dump,
    listen_address,
    node_cmd,
    poll,
    running,
)

IDS = ["n1", "n2", "n3"]
MUST_SUCCEED = {"noop", "sleep", "email", "resize"}
MUST_DIE = {"broken", "slow"}


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, NodeProc]]:
    procs = cluster_procs(
        IDS, tmp_path, "--cluster", "jp",
        "--data-dir", str(tmp_path), "--interval", "0.5", "--suspect-after", "1", "--dead-after", "2",
        "--store", "raft", "--election-timeout", "500ms", "--election-interval", "100ms",
        "--worker-heartbeat", "300ms", "--worker-offline-after", "1s", "--retry-base-delay", "100ms",
        "--retry-max-delay", "500ms", "--jobs-module", "transport.demo_jobs", "--log-json",
    )  # fmt: skip
    with running(procs) as started:
        yield started


def _batch(n: int) -> list[dict[str, Any]]:
    kinds: list[dict[str, Any]] = [
        {"type": "noop"},
        {"type": "email", "payload": {"to": "a@example.com"}, "priority": "high"},
        {"type": "resize", "payload": {"width": 32, "height": 24}},
        {"type": "sleep", "payload": {"seconds": 0.8}},  # long enough to be running at the kill
        {"type": "flaky", "payload": {"fail_rate": 0.3}, "max_retries": 6},
        {"type": "broken", "max_retries": 1},
        {"type": "slow", "payload": {"seconds": 5}, "timeout": 0.2, "max_retries": 1},
        {"type": "noop", "priority": 9},
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


@pytest.mark.slow
def test_mixed_jobs_settle_while_a_follower_is_sigkilled(nodes: dict[str, NodeProc]) -> None:
    # Given three nodes that agree on a leader
    assert poll(lambda: agreed_leader(nodes) is not None, 30), dump(nodes, 12)
    leader = agreed_leader(nodes)
    victim = next(n for n in IDS if n != leader)
    addresses = [listen_address(nodes[n]) for n in IDS]

    with SyncJobClient(addresses, cluster="jp", timeout=20) as jobs:
        # When 200 jobs of mixed types are submitted
        submitted = jobs.submit_many(_batch(200))
        assert len(submitted) == 200
        kinds = {j["id"]: j["type"] for j in submitted}

        # And the victim is SIGKILLed while it runs some of them (0.8 s sleeps: still running)
        held: list[str] = []

        def victim_busy() -> bool:
            running, _ = jobs.list(status="RUNNING", limit=1000)
            held[:] = [
                j["id"] for j in running if j["attempts"][-1]["worker"] == victim and j["type"] == "sleep"
            ]
            return bool(held)

        assert poll(victim_busy, 20), dump(nodes, 12)
        killed_at = time.time()
        nodes[victim].kill()

        # Expect every job to settle, each type as it should
        stats = jobs.wait_idle(timeout=60)
        assert stats["total"] == 200, stats
        everything, total = jobs.list(limit=1000)
        assert total == 200
        for job in everything:
            kind = kinds[job["id"]]
            if kind in MUST_SUCCEED:
                assert job["status"] == "SUCCESS", job
            elif kind in MUST_DIE:
                assert job["status"] == "DEAD", job
            else:
                assert job["status"] in ("SUCCESS", "DEAD"), job

        # And the jobs the victim held lost their lease and ran again on a survivor
        by_id = {j["id"]: j for j in everything}
        for jid in held:
            attempts = by_id[jid]["attempts"]
            # a job seen running may still have finished and been reported just before the kill
            if any(
                a["worker"] == victim and a["outcome"] != "LEASE_EXPIRED" and (a["finished"] or 0) < killed_at
                for a in attempts
            ):
                continue
            lost = [a for a in attempts if a["worker"] == victim and a["outcome"] == "LEASE_EXPIRED"]
            assert lost, attempts
            assert lost[0]["finished"] >= killed_at
            if kinds[jid] in MUST_SUCCEED:
                assert attempts[-1]["worker"] != victim and attempts[-1]["outcome"] == "SUCCESS"
        dead, dead_total = jobs.dlq_list(limit=1000)
        assert dead_total == stats["dlq"] == sum(1 for j in everything if j["status"] == "DEAD")
        assert {kinds[j["id"]] for j in dead} <= MUST_DIE | {"flaky"}

    # And the survivors stop cleanly
    for nid, node in nodes.items():
        if nid != victim:
            assert node.terminate() == 0


@pytest.mark.slow
def test_a_node_keeps_running_while_redis_is_down_and_recovers(tmp_path: Path) -> None:
    from troupe_testkit.redis_server import RedisServer

    from transport.jobs_client import JobError

    redis = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    port = free_ports(1)[0]
    argv = node_cmd(
        "--id", "r1", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path), "--cluster", "rd",
        "--store", "redis", "--redis-port", str(redis.port), "--election-timeout", "300ms",
        "--election-interval", "50ms", "--jobs-module", "transport.demo_jobs", "--log-json",
    )  # fmt: skip
    node = NodeProc("r1", argv, tmp_path)
    try:
        # Given a node whose Redis is not running: one error line, and the node keeps running
        node.start()
        assert poll(lambda: bool(node.find("store.unavailable")), 15), "\n".join(node.lines[-20:])
        assert poll(lambda: bool(node.find("leader.changed", leader="r1")), 15)
        time.sleep(1.5)  # several retries later
        assert node.proc is not None and node.proc.poll() is None
        lines = node.find("store.unavailable")
        assert len(lines) == 1 and f"127.0.0.1:{redis.port}" in lines[0]["error"], lines

        with SyncJobClient(f"127.0.0.1:{port}", cluster="rd", timeout=2) as jobs:
            with pytest.raises(JobError, match="no node answered within 2 s"):
                jobs.stats()

            # When Redis starts, Expect the store to recover and jobs to run
            redis.start()
            assert poll(lambda: bool(node.find("store.recovered")), 15), "\n".join(node.lines[-20:])
            job = jobs.submit("noop", {"x": 1})
            jobs.wait_idle(timeout=15)
            assert (jobs.get(job["id"]) or {}).get("status") == "SUCCESS"

            # When Redis crashes, Expect one-line errors while it is down, then service again
            redis.kill()
            with pytest.raises(JobError, match="store unavailable") as e:
                jobs.submit("noop")
            assert "\n" not in str(e.value)
            assert node.proc.poll() is None
            redis.start()
            again = jobs.submit("noop")
            jobs.wait_idle(timeout=15)
            assert (jobs.get(again["id"]) or {}).get("status") == "SUCCESS"
        assert node.terminate() == 0
    finally:
        node.kill()
        redis.close()

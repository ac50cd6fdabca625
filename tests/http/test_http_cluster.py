"""The HTTP API of three real ``troupe node`` processes (Raft store): every job, dead-letter,
stats and cluster route answers the same through a follower as through the leader. Every
process is killed in a ``finally``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from transport.testing import NodeProc, cluster_procs, poll, running

IDS = ["n1", "n2", "n3"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, NodeProc]]:
    procs = cluster_procs(
        IDS, tmp_path, "--cluster", "web",
        "--data-dir", str(tmp_path), "--interval", "0.3", "--suspect-after", "1", "--dead-after", "2",
        "--store", "raft", "--election-timeout", "500ms", "--election-interval", "100ms",
        "--worker-heartbeat", "300ms", "--worker-offline-after", "1s", "--retry-base-delay", "100ms",
        "--retry-max-delay", "200ms", "--jobs-module", "transport.demo_jobs", "--log-json",
    )  # fmt: skip
    with running(procs) as nodes:
        yield nodes


def _urls(nodes: dict[str, NodeProc]) -> dict[str, str]:
    ready = poll(lambda: all(n.find("node.ready") for n in nodes.values()), 40)
    assert ready, "\n".join(line for n in nodes.values() for line in n.lines[-10:])
    return {
        nid: f"http://127.0.0.1:{n.find('node.ready')[0]['http'].rpartition(':')[2]}"
        for nid, n in nodes.items()
    }


def _agreed_leader(urls: dict[str, str]) -> str | None:
    try:
        views = {httpx.get(f"{u}/api/v1/leader", timeout=5).json()["leader"] for u in urls.values()}
    except httpx.HTTPError:
        return None
    return views.pop() if len(views) == 1 and None not in views else None


def _settled(http: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def done() -> bool:
        nonlocal job
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        return job["status"] in ("SUCCESS", "DEAD", "CANCELLED")

    assert poll(done, 30), job
    return job


@pytest.mark.slow
def test_every_route_through_a_follower_and_the_leader(cluster: dict[str, NodeProc]) -> None:
    urls = _urls(cluster)
    assert poll(lambda: _agreed_leader(urls) is not None, 40)
    leader_id = _agreed_leader(urls)
    assert leader_id is not None
    follower_id = next(n for n in IDS if n != leader_id)
    with (
        httpx.Client(base_url=urls[leader_id], timeout=20) as leader,
        httpx.Client(base_url=urls[follower_id], timeout=20) as follower,
    ):
        # Given jobs submitted through the follower, each is visible through the leader
        ok = follower.post("/api/v1/jobs", json={"type": "noop", "priority": "low"})
        assert ok.status_code == 201, ok.text
        assert _settled(leader, ok.json()["id"])["status"] == "SUCCESS"
        later = leader.post("/api/v1/jobs", json={"type": "noop", "delay_seconds": 600}).json()["id"]
        r = follower.post(f"/api/v1/jobs/{later}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
        dead = follower.post("/api/v1/jobs", json={"type": "broken", "max_retries": 0}).json()["id"]
        assert _settled(leader, dead)["status"] == "DEAD"

        # Listing, the dead-letter queue and stats agree from both sides
        for http in (leader, follower):
            page = http.get("/api/v1/jobs", params={"status": "cancelled"}).json()
            assert [j["id"] for j in page["jobs"]] == [later] and page["total"] == 1
            assert [j["id"] for j in http.get("/api/v1/dlq").json()["jobs"]] == [dead]
            stats = http.get("/api/v1/stats").json()
            assert stats["total"] == 3 and stats["dlq"] == 1 and stats["leader"] == leader_id
        assert follower.post("/api/v1/dlq/requeue", json={"ids": [dead]}).json() == {"requeued": [dead]}
        assert _settled(leader, dead)["requeue_count"] == 1
        assert leader.post("/api/v1/dlq/purge", json={"ids": [dead]}).json()["ids"] == [dead]
        assert follower.get(f"/api/v1/jobs/{dead}").status_code == 404
        assert follower.delete(f"/api/v1/jobs/{ok.json()['id']}").status_code == 409  # finished already

        # The cluster as the follower sees it: three live nodes, one leader, three workers online
        leader_view = follower.get("/api/v1/leader").json()
        assert leader_view["algorithm"] == "raft" and leader_view["term"] == leader_view["epoch"] >= 1
        assert leader_view["node_id"] == follower_id and not leader_view["is_leader"]

        def all_alive() -> bool:
            nodes = follower.get("/api/v1/nodes").json()["nodes"]
            return [(n["id"], n["state"]) for n in nodes] == [(i, "alive") for i in IDS]

        assert poll(all_alive, 20)
        nodes = follower.get("/api/v1/nodes").json()
        assert [n["id"] for n in nodes["nodes"] if n["leader"]] == [leader_id]
        assert [n["id"] for n in nodes["nodes"] if n["self"]] == [follower_id]

        def three_workers() -> bool:
            workers = follower.get("/api/v1/workers").json()
            return [(w["id"], w["state"]) for w in workers.get("workers", [])] == [(i, "ONLINE") for i in IDS]

        assert poll(three_workers, 20), follower.get("/api/v1/workers").text
        assert follower.get("/api/v1/workers").json()["leader"] == leader_id
        for url in urls.values():
            assert poll(lambda url=url: httpx.get(f"{url}/health").json()["status"] == "ok", 20), url

        # When the leader is killed, the follower follows a new leader and sees the old one dead
        cluster[leader_id].kill()

        def new_leader() -> bool:
            return follower.get("/api/v1/leader").json()["leader"] not in (None, leader_id)

        def old_leader_dead() -> bool:
            nodes = follower.get("/api/v1/nodes").json()["nodes"]
            return {n["id"]: n["state"] for n in nodes}[leader_id] == "dead"

        assert poll(new_leader, 30)
        assert poll(lambda: follower.get("/health").json()["status"] == "ok", 30)
        assert poll(old_leader_dead, 30), follower.get("/api/v1/nodes").text
        assert follower.post("/api/v1/jobs", json={"type": "noop"}).status_code == 201

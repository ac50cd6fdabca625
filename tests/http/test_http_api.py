"""The HTTP API of one real node (in this test's trio run, on a real socket): every route, the
shapes the references give, and clear 4xx answers naming the field for bad requests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import trio

from transport.jobs_client import new_job

StartNode = Callable[..., AbstractAsyncContextManager[Any]]


async def _settle(http: httpx.AsyncClient, job_id: str, timeout: float = 15) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            job: dict[str, Any] = (await http.get(f"/api/v1/jobs/{job_id}")).json()
            if job["status"] in ("SUCCESS", "DEAD", "FAILED", "CANCELLED"):
                return job
            await trio.sleep(0.05)


async def test_submit_get_list_cancel_and_stats(start_node: StartNode) -> None:
    async with start_node() as node, node.client() as http:
        # Given the reference's job
        body = {
            "type": "email",
            "priority": 5,
            "payload": {"recipient": "user@example.com", "subject": "Test Job"},
            "max_retries": 3,
        }
        # When it is submitted
        r = await http.post("/api/v1/jobs", json=body)
        # Expect 201 with the job as the store recorded it
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["type"] == "email" and job["priority"] == 5 and job["max_retries"] == 3
        assert (
            job["status"] in ("PENDING", "RUNNING")
            and job["retry_count"] == 0
            and job["payload"] == body["payload"]
        )
        assert job["created_at"].endswith("Z")
        # and the demo email processor sends it (it takes the reference's "recipient")
        sent = await _settle(http, job["id"])
        assert sent["status"] == "SUCCESS", sent
        r = await http.post("/api/v1/jobs", json={"type": "noop", "timeout_seconds": 5})
        done = await _settle(http, r.json()["id"])
        assert done["status"] == "SUCCESS" and done["attempts"][0]["outcome"] == "SUCCESS"
        assert done["timeout_seconds"] == 5 and done["max_retries"] == 3  # the node's MAX_RETRIES

        # A delayed job waits; it can be cancelled, and cancelling twice is a conflict
        r = await http.post("/api/v1/jobs", json={"type": "noop", "delay_seconds": 3600, "priority": "high"})
        assert r.status_code == 201 and r.json()["priority"] == 8
        later = r.json()["id"]
        assert r.json()["scheduled_at"] is not None
        r = await http.post(f"/api/v1/jobs/{later}/cancel", json={"reason": "not needed"})
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
        r = await http.post(f"/api/v1/jobs/{later}/cancel")
        assert r.status_code == 409 and "cannot be cancelled" in r.json()["error"]

        # The same idempotency key gives the first job back with 200
        keyed = {"type": "noop", "idempotency_key": "k-1", "scheduled_at": "2999-01-01T00:00:00Z"}
        first = await http.post("/api/v1/jobs", json=keyed)
        again = await http.post("/api/v1/jobs", json=keyed)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        assert first.json()["scheduled_at"].startswith("2999-01-01T00:00:00")

        # Listing filters by status in any case, and by type; paging reports the total
        r = await http.get("/api/v1/jobs", params={"status": "pending", "limit": 10})
        page = r.json()
        assert r.status_code == 200 and [j["id"] for j in page["jobs"]] == [first.json()["id"]]
        assert (page["limit"], page["offset"], page["total"]) == (10, 0, 1)
        r = await http.get("/api/v1/jobs", params={"type": "noop", "status": "completed"})
        assert [j["id"] for j in r.json()["jobs"]] == [done["id"]]
        r = await http.get("/api/v1/jobs", params={"limit": 1, "offset": 1})
        assert r.json()["total"] == 4 and [j["id"] for j in r.json()["jobs"]] == [done["id"]]

        # DELETE (admin) cancels and keeps the record
        r = await http.delete(f"/api/v1/jobs/{first.json()['id']}")
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED"
        assert (await http.get(f"/api/v1/jobs/{first.json()['id']}")).status_code == 200

        r = await http.get("/api/v1/stats")
        stats = r.json()
        assert r.status_code == 200 and stats["total"] == 4 and stats["node_id"] == "n1"
        assert stats["by_status"]["SUCCESS"] == 2 and stats["by_status"]["CANCELLED"] == 2

        # Unknown jobs are 404 for get, cancel and delete
        for method, path in (("GET", "/x"), ("POST", "/x/cancel"), ("DELETE", "/x")):
            r = await http.request(method, f"/api/v1/jobs{path}")
            assert r.status_code == 404 and "no job 'x'" in r.json()["error"], (method, r.text)


async def test_dead_letter_queue_requeue_and_purge(start_node: StartNode) -> None:
    async with start_node() as node, node.client() as http:
        ids = []
        for _ in range(2):
            r = await http.post("/api/v1/jobs", json={"type": "broken", "max_retries": 0})
            ids.append(r.json()["id"])
        for jid in ids:
            assert (await _settle(http, jid))["status"] == "DEAD"
        r = await http.get("/api/v1/dlq")
        assert r.status_code == 200 and sorted(j["id"] for j in r.json()["jobs"]) == sorted(ids)
        assert r.json()["jobs"][0]["error"]

        r = await http.post("/api/v1/dlq/requeue", json={"ids": [ids[0], "unknown"]})
        assert r.status_code == 200 and r.json() == {"requeued": [ids[0]]}
        assert (await _settle(http, ids[0]))["requeue_count"] == 1

        r = await http.post("/api/v1/dlq/purge")  # no body: all of them
        assert r.status_code == 200 and sorted(r.json()["ids"]) == sorted(ids)
        assert (await http.get(f"/api/v1/jobs/{ids[1]}")).status_code == 404
        assert (await http.get("/api/v1/dlq")).json()["total"] == 0


async def test_cluster_routes(start_node: StartNode) -> None:
    async with start_node({}, "--workers", "3") as node, node.client() as http:
        r = await http.get("/health")
        health = r.json()
        assert r.status_code == 200 and health["status"] == "ok" and health["store_reachable"] is True
        assert health["node_id"] == "n1" and health["leader"] == "n1" and health["uptime_seconds"] >= 0

        leader = (await http.get("/api/v1/leader")).json()
        assert leader["leader"] == "n1" and leader["algorithm"] == "bully" and leader["is_leader"]
        assert leader["epoch"] >= 1 and leader["term"] is None

        nodes = (await http.get("/api/v1/nodes")).json()
        assert nodes["node_id"] == "n1" and nodes["leader"] == "n1"
        assert nodes["nodes"] == [
            {"id": "n1", "address": "127.0.0.1:7999", "state": "alive", "leader": True, "self": True}
        ]

        with trio.fail_after(10):  # the pool's first status reaches the balancer
            while not (workers := (await http.get("/api/v1/workers")).json())["workers"]:
                await trio.sleep(0.05)
        assert workers["leader"] == "n1" and workers["strategy"] == "round_robin"
        w = workers["workers"][0]
        assert (w["id"], w["node"], w["capacity"], w["state"]) == ("n1", "n1", 3, "ONLINE")
        assert w["silent_seconds"] < 5 and w["last_seen"].endswith("Z")

        r = await http.get("/api/v1/election/algorithms/Raft")
        raft = r.json()
        assert r.status_code == 200 and raft["name"] == "raft" and raft["properties"]["needs_quorum"]
        assert raft["defaults"]["election_timeout"] == 1.0 and raft["in_use"] is False
        assert (await http.get("/api/v1/election/algorithms/bully")).json()["in_use"] is True
        r = await http.get("/api/v1/election/algorithms/paxos")
        assert r.status_code == 404 and "paxos" in r.json()["error"]


async def test_a_worker_seen_busy_by_the_leaders_balancer(start_node: StartNode) -> None:
    # the fast lane is off: every job is routed by the balancer and counts in its load
    async with start_node(None, "--fast-lane-slots", "0") as node, node.client() as http:
        r = await http.post("/api/v1/jobs", json={"type": "sleep", "payload": {"seconds": 3}})
        jid = r.json()["id"]
        with trio.fail_after(10):
            while True:
                workers = (await http.get("/api/v1/workers")).json()["workers"]
                if workers and jid in workers[0]["held"]:
                    break
                await trio.sleep(0.05)
        assert workers[0]["load"] >= 1


async def _expect_400(http: httpx.AsyncClient, body: Any, field: str, **kwargs: Any) -> None:
    r = (
        await http.post("/api/v1/jobs", json=body, **kwargs)
        if body is not None
        else await http.post("/api/v1/jobs", **kwargs)
    )
    assert r.status_code == 400, (body, r.text)
    assert r.json()["error"].startswith(field), (body, r.json())
    assert "\n" not in r.json()["error"]


async def test_bad_requests_get_400_naming_the_field(start_node: StartNode) -> None:
    async with start_node() as node, node.client() as http:
        await _expect_400(http, {"payload": {}}, "type: is required")
        await _expect_400(http, {"type": "   "}, "type:")
        await _expect_400(
            http, {"type": "email", "priority": 11}, "priority: must be 1-10 or high/normal/low"
        )
        await _expect_400(
            http, {"type": "email", "priority": "urgent"}, "priority: must be 1-10 or high/normal/low"
        )
        await _expect_400(http, {"type": "email", "max_retries": -1}, "max_retries:")
        await _expect_400(http, {"type": "email", "max_retries": "3"}, "max_retries:")
        await _expect_400(http, {"type": "email", "timeout_seconds": 0}, "timeout_seconds:")
        await _expect_400(http, {"type": "email", "scheduled_at": "tomorrow"}, "scheduled_at:")
        await _expect_400(
            http, {"type": "e", "scheduled_at": "2030-01-01T00:00:00Z", "delay_seconds": 1}, "scheduled_at:"
        )
        await _expect_400(http, {"type": "email", "max_retry": 3}, "max_retry: is not a known field")
        await _expect_400(http, [1, 2], "body:")
        await _expect_400(http, None, "body:", content=b"{not json")
        await _expect_400(http, None, "payload: number out of range", content=b'{"type":"e","payload":NaN}')
        await _expect_400(
            http, None, "payload.x: number out of range", content=b'{"type":"e","payload":{"x":1e999}}'
        )
        await _expect_400(
            http, {"type": "e", "payload": [2**64]}, "payload[0]: integer out of the 64-bit range"
        )
        await _expect_400(http, None, "body:", content=b'{"type":"e","payload":' + b"9" * 5000 + b"}")
        await _expect_400(
            http, None, "payload.s: not valid Unicode", content=b'{"type":"e","payload":{"s":"\\ud800"}}'
        )
        deep: Any = 1
        for _ in range(100):
            deep = [deep]
        await _expect_400(http, {"type": "e", "payload": deep}, "payload")
        await _expect_400(
            http,
            None,
            "body: nested deeper",
            content=b'{"type":"e","payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        )
        for params, field in (
            ({"limit": 0}, "limit:"),
            ({"offset": -1}, "offset:"),
            ({"status": "lost"}, "status:"),
        ):
            r = await http.get("/api/v1/jobs", params=params)
            assert r.status_code == 400 and r.json()["error"].startswith(field), r.text
        r = await http.post("/api/v1/dlq/requeue", json={"ids": "all"})
        assert r.status_code == 400 and r.json()["error"].startswith("ids:")
        r = await http.patch("/api/v1/jobs")
        assert r.status_code == 405 and "not allowed" in r.json()["error"]
        r = await http.get("/nowhere")
        assert r.status_code == 404 and r.json() == {"error": "not found: GET /nowhere"}
        # the node is still fine, and none of those made a job
        assert (await http.get("/api/v1/stats")).json()["total"] == 0
        # a payload at the depth limit is kept and comes back as it was sent
        ok: Any = "leaf"
        for _ in range(60):
            ok = {"k": ok}
        r = await http.post("/api/v1/jobs", json={"type": "noop", "payload": {"big": 2**63, "deep": ok}})
        assert r.status_code == 201, r.text
        assert (await http.get(f"/api/v1/jobs/{r.json()['id']}")).json()["payload"] == {
            "big": 2**63,
            "deep": ok,
        }


async def test_oversized_bodies_get_413(start_node: StartNode) -> None:
    async with start_node({"HTTP_MAX_BODY": "4096"}) as node, node.client() as http:
        big = {"type": "noop", "payload": "x" * 5000}
        r = await http.post("/api/v1/jobs", json=big)
        assert r.status_code == 413 and "4096" in r.json()["error"]

        async def chunks() -> Any:  # no Content-Length: chunked transfer encoding
            for _ in range(20):
                yield b"x" * 1000

        r = await http.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = await http.post("/api/v1/jobs", json={"type": "noop", "payload": "x" * 3000})
        assert r.status_code == 201


async def test_an_unreachable_store_is_503_and_health_degraded(start_node: StartNode) -> None:
    async with start_node() as node, node.client() as http:
        # Given a node whose store stops answering (its service is gone)
        node.handle.runtime.remove_service("store")
        # Expect health to say so, and store routes to answer 503 with the reason
        health = (await http.get("/health")).json()
        assert health["status"] == "degraded" and health["store_reachable"] is False
        assert any(p.startswith("store: store unavailable") for p in health["problems"]), health
        r = await http.get("/api/v1/stats")
        assert r.status_code == 503 and r.json()["error"].startswith("store unavailable"), r.text
        # While the routes that need no store still answer
        assert (await http.get("/api/v1/leader")).json()["leader"] == "n1"


async def test_payloads_json_cannot_hold_are_shown_safely(start_node: StartNode) -> None:
    async with start_node() as node, node.client() as http:
        # Given a job the Python API stored with bytes and a NaN in its payload
        job = new_job("noop", {"raw": b"\xff\x00", "x": float("nan")}, delay=3600)
        assert "error" not in await node.handle.bridge.request({"op": "submit", "job": job})
        # Expect the HTTP API to render it (bytes as base64, NaN as null) rather than fail
        r = await http.get(f"/api/v1/jobs/{job['id']}")
        assert r.status_code == 200 and r.json()["payload"] == {"raw": "/wA=", "x": None}
        assert (await http.get("/api/v1/jobs")).status_code == 200

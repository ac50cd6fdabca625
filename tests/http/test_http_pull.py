"""The pull API over HTTP on one real node whose only workers are pull workers: register,
heartbeat, take a job, report it, and the refusals (unknown worker 404, a job not held 409,
no job 204, bad values 400)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

StartNode = Callable[..., AbstractAsyncContextManager[Any]]


async def test_a_pull_worker_takes_and_reports_jobs(start_node: StartNode) -> None:
    async with start_node(pool=False) as node, node.client() as http:
        # Given a registered worker
        r = await http.post("/workers/register", json={"hostname": "box-1", "capacity": 2, "worker_id": "w1"})
        assert r.status_code == 200, r.text
        reg = r.json()
        assert reg["worker_id"] == "w1" and reg["status"] == "ONLINE" and reg["heartbeat_interval"] > 0
        assert (await http.post("/workers/heartbeat", json={"worker_id": "w1", "load": 0})).json()[
            "status"
        ] == "ONLINE"

        # When nothing is queued a short poll answers 204
        r = await http.post("/jobs/next", json={"worker_id": "w1", "wait": 0.1})
        assert r.status_code == 204 and r.content == b""

        # When two jobs are submitted, the worker takes both and reports them
        ok = (await http.post("/api/v1/jobs", json={"type": "anything", "payload": {"n": 1}})).json()["id"]
        bad = (await http.post("/api/v1/jobs", json={"type": "fail", "max_retries": 0})).json()["id"]
        taken: dict[str, dict[str, Any]] = {}
        with trio.fail_after(15):
            while len(taken) < 2:
                r = await http.post("/jobs/next", json={"worker_id": "w1", "wait": 2})
                if r.status_code == 200:
                    taken[r.json()["id"]] = r.json()
        assert set(taken) == {ok, bad} and taken[ok]["payload"] == {"n": 1} and taken[ok]["attempt"] == 1
        r = await http.post(
            "/jobs/report",
            json={
                "worker_id": "w1",
                "job_id": ok,
                "attempt": 1,
                "status": "SUCCESS",
                "result": {"done": True},
            },
        )
        assert r.status_code == 200 and r.json()["accepted"] is True, r.text
        r = await http.post(
            "/jobs/report",
            json={"worker_id": "w1", "job_id": bad, "attempt": 1, "status": "FAILED", "error": "boom"},
        )
        assert r.status_code == 200 and r.json()["accepted"] is True, r.text

        # Expect the store to record both outcomes
        assert (await http.get(f"/api/v1/jobs/{ok}")).json()["status"] == "SUCCESS"
        failed = (await http.get(f"/api/v1/jobs/{bad}")).json()
        assert failed["status"] == "DEAD" and failed["error"] == "boom"
        assert failed["attempts"][0]["worker"] == "n1/pull-w1"

        # And the worker is listed here, and by the leader's balancer
        listed = (await http.get("/workers")).json()["workers"]
        assert [w["worker_id"] for w in listed] == ["w1"] and listed[0]["status"] == "ONLINE"
        engine = (await http.get("/api/v1/workers")).json()["workers"]
        assert [(w["id"], w["node"], w["capacity"]) for w in engine] == [("n1/pull-w1", "n1", 2)]


async def test_pull_refusals(start_node: StartNode) -> None:
    async with start_node(pool=False) as node, node.client() as http:
        r = await http.post("/workers/heartbeat", json={"worker_id": "ghost"})
        assert r.status_code == 404 and "ghost" in r.json()["error"]
        r = await http.post("/jobs/next", json={"worker_id": "ghost"})
        assert r.status_code == 404
        await http.post("/workers/register", json={"hostname": "h", "worker_id": "w2"})
        r = await http.post(
            "/jobs/report", json={"worker_id": "w2", "job_id": "j", "attempt": 1, "status": "SUCCESS"}
        )
        assert r.status_code == 409 and r.json()["error"]
        for body, field in (
            ({"hostname": "h", "capacity": 0}, "capacity:"),
            ({"hostname": ""}, "hostname:"),
            ({"hostname": "h", "worker_id": "bad id!"}, "worker_id"),
        ):
            r = await http.post("/workers/register", json=body)
            assert r.status_code == 400 and field in r.json()["error"], (body, r.text)
        r = await http.post("/jobs/next", json={"worker_id": "w2", "wait": 31})
        assert r.status_code == 400 and r.json()["error"].startswith("wait:")
        r = await http.post(
            "/jobs/report", json={"worker_id": "w2", "job_id": "j", "attempt": 1, "status": "DONE"}
        )
        assert r.status_code == 400 and r.json()["error"].startswith("status:")

"""Pull workers over the real job engine, in process: three ``NodeRuntime``s on a memory hub (two
engine nodes without built-in workers, and the memory store's node), a ``NodeHandle`` built by hand
for each engine node, and ``PullWorkers`` driven as the HTTP routes drive it.

Each test reads Given / When / Expect. Worker timings are short (heartbeat 0.2 s, offline after
0.8 s, so a lease lasts 1 s) and every wait is generous for a loaded 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from actors.jobs import RetryPolicy
from actors.jobs.blueprint import jobs_blueprint
from actors.jobs.config import JobsConfig
from transport.events import EventLog
from transport.gateway_bridge import GatewayBridge
from transport.jobs_client import new_job
from transport.memory import MemoryHub
from transport.node_cli import NodeSettings
from transport.node_handle import NodeHandle
from transport.pull_workers import PullError, PullWorkers
from transport.runtime import NodeRuntime

ENGINE = ("n1", "n2")
STORE_NODE = "s"
CONFIG = JobsConfig(
    heartbeat_interval=0.2,
    offline_after=0.8,
    policy=RetryPolicy(base_delay=0.05, max_delay=0.2),
)


@dataclass
class Cluster:
    events: EventLog
    runtimes: dict[str, NodeRuntime]
    pulls: dict[str, PullWorkers]
    handles: dict[str, NodeHandle] = field(default_factory=dict)

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        result = await self.handles["n1"].bridge.request(command)
        assert "error" not in result, result
        return result

    async def submit(self, type_: str, payload: Any = None, **kw: Any) -> str:
        result = await self.ask({"op": "submit", "job": new_job(type_, payload, **kw)})
        return str(result["job"]["id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        result = await self.ask({"op": "get", "id": job_id})
        job: dict[str, Any] = result["job"]
        return job

    async def until_job(
        self, job_id: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> Any:
        with trio.fail_after(timeout):
            while not pred(job := await self.job(job_id)):
                await trio.sleep(0.05)
        return job


@pytest.fixture
async def cluster(nursery: trio.Nursery) -> AsyncIterator[Cluster]:
    hub, events = MemoryHub(), EventLog()
    bp = jobs_blueprint(
        ENGINE,
        config=CONFIG,
        store="memory",
        store_node=STORE_NODE,
        election_timeout=0.3,
        interval=0.05,
        workers=(),
    )
    runtimes: dict[str, NodeRuntime] = {}
    for nid in (STORE_NODE, *ENGINE):
        rt = NodeRuntime(nid, bp, hub.transport(nid), events=events)
        runtimes[nid] = await nursery.start(rt.serve)
    c = Cluster(events, runtimes, {})
    for nid in ENGINE:
        settings = NodeSettings(
            node_id=nid,
            listen=("127.0.0.1", 0),
            peers={o: ("127.0.0.1", 0) for o in ENGINE if o != nid},
            store="memory",
            store_node=STORE_NODE,
            jobs=CONFIG,
        )
        bridge = GatewayBridge(runtimes[nid])
        await nursery.start(bridge.run)
        handle = NodeHandle(settings, runtimes[nid], events, runtimes[nid].transport, bridge, time.time())
        c.handles[nid] = handle
        c.pulls[nid] = PullWorkers(handle)
        await nursery.start(c.pulls[nid].run)
    with trio.fail_after(10):  # a leader everyone agrees on, so tests measure the workers
        while len({r.get("leader") for r in events.find("leader.changed")} - {None}) != 1 or {
            r["node"] for r in events.find("leader.changed")
        } != set(ENGINE):
            await trio.sleep(0.02)
    yield c
    for rt in runtimes.values():
        rt.crash()


async def keep_alive(pulls: PullWorkers, worker_id: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The external worker's heartbeat loop."""
    task_status.started()
    while True:
        pulls.heartbeat(worker_id, load=0)
        await trio.sleep(0.1)


def settled(status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda job: bool(job["status"] == status)


# ------------------------------------------------------------------ the happy path and failures


async def test_a_pulled_job_succeeds_and_a_failed_one_is_retried_then_dead(cluster: Cluster) -> None:
    pulls = cluster.pulls["n1"]
    # Given a registered worker
    reg = pulls.register("w1", "host-a", capacity=1)
    assert reg == {
        "worker_id": "w1",
        "status": "ONLINE",
        "heartbeat_interval": 0.2,
        "offline_after": 0.8,
        "capacity": 1,
        "node": "n1",
    }
    async with trio.open_nursery() as beats:
        await beats.start(keep_alive, pulls, "w1")
        # When a job is submitted, Expect next to hand it out with what the worker needs
        ok_id = await cluster.submit("email", {"to": "a@x.io"}, priority="high", timeout=30)
        got = await pulls.next("w1", wait=10)
        assert got == {
            "id": ok_id,
            "type": "email",
            "payload": {"to": "a@x.io"},
            "attempt": 1,
            "priority": 8,
            "timeout_seconds": 30,
        }
        assert [w["held"] for w in pulls.list()] == [1]
        # When it reports success, Expect the store to record it under the pull worker's id
        answer = await pulls.report("w1", ok_id, 1, True, result={"sent": True})
        assert answer == {"accepted": True, "job_id": ok_id, "attempt": 1, "status": "SUCCESS"}
        job = await cluster.job(ok_id)
        assert job["status"] == "SUCCESS" and [a["worker"] for a in job["attempts"]] == ["n1/pull-w1"]
        # And a repeated report is answered the same; a contradicting one is refused
        assert await pulls.report("w1", ok_id, 1, True) == answer
        with pytest.raises(PullError, match="already reported as a success") as refused:
            await pulls.report("w1", ok_id, 1, False, error="second thoughts")
        assert refused.value.status == 409

        # When a job with one retry fails twice, Expect RETRYING then DEAD, each error kept
        bad_id = await cluster.submit("resize", {"w": 1}, max_retries=1)
        first = await pulls.next("w1", wait=10)
        assert first is not None and (first["id"], first["attempt"]) == (bad_id, 1)
        answer = await pulls.report("w1", bad_id, 1, False, error="disk full")
        assert answer["accepted"] and answer["status"] == "RETRYING"
        second = await pulls.next("w1", wait=10)
        assert second is not None and (second["id"], second["attempt"]) == (bad_id, 2)
        answer = await pulls.report("w1", bad_id, 2, False, error="disk still full")
        assert answer["accepted"] and answer["status"] == "DEAD"
        job = await cluster.job(bad_id)
        assert [a["error"] for a in job["attempts"]] == ["disk full", "disk still full"]
        assert {a["worker"] for a in job["attempts"]} == {"n1/pull-w1"}
        beats.cancel_scope.cancel()
    # And the list shows the worker with what it reported
    (row,) = pulls.list()
    assert row["worker_id"] == "w1" and row["hostname"] == "host-a" and row["status"] == "ONLINE"
    assert row["capacity"] == 1 and row["held"] == 0 and row["queued"] == 0 and row["load"] == 0
    assert abs(row["last_heartbeat"] - time.time()) < 5 and row["engine_id"] == "n1/pull-w1"


async def test_next_hands_out_the_most_urgent_job_and_reregistering_resizes(cluster: Cluster) -> None:
    pulls = cluster.pulls["n2"]
    # Given a worker that registered with room for three jobs and three jobs submitted
    pulls.register("w3", "host-c", capacity=3)
    ids = [await cluster.submit("noop", {"i": i}, priority=p) for i, p in enumerate(("low", 10, "normal"))]
    with trio.fail_after(10):
        while pulls.list()[0]["queued"] < 3:
            await trio.sleep(0.02)
    # When it takes them, Expect the most urgent first
    order = [(await pulls.next("w3", wait=5) or {}).get("id") for _ in range(3)]
    assert order == [ids[1], ids[2], ids[0]]
    # And with nothing queued, next waits and then answers None
    started = trio.current_time()
    assert await pulls.next("w3", wait=0.3) is None
    assert trio.current_time() - started >= 0.29
    for i, jid in enumerate(order):
        assert (await pulls.report("w3", jid, 1, True))["accepted"], i
    # When it registers again with another capacity, Expect the leader's balancer to see it
    again = pulls.register("w3", "host-c2", capacity=5)
    assert again["worker_id"] == "w3" and again["capacity"] == 5
    leader = cluster.events.find("leader.changed")[-1]["leader"]

    def balancer_capacity() -> int:
        balancer: Any = cluster.runtimes[leader].actor("balancer")
        return int(balancer.pool.get("n2/pull-w3").capacity)

    with trio.fail_after(5):
        while balancer_capacity() != 5:
            await trio.sleep(0.02)
    assert pulls.list()[0]["hostname"] == "host-c2"
    # And registering with no id makes a new worker with a fresh id
    fresh = pulls.register(None, "host-d")
    assert fresh["worker_id"] != "w3" and len(fresh["worker_id"]) == 36
    assert {w["worker_id"] for w in pulls.list()} == {"w3", fresh["worker_id"]}


# ------------------------------------------------------------------ exclusivity and failover


async def test_a_silent_worker_goes_offline_and_its_job_runs_on_another(cluster: Cluster) -> None:
    p1, p2 = cluster.pulls["n1"], cluster.pulls["n2"]
    # Given one worker on each engine node, both heartbeating, and one job
    p1.register("alpha", "host-a")
    p2.register("beta", "host-b")
    by_id = {"alpha": p1, "beta": p2}
    async with trio.open_nursery() as nursery:
        stop_alpha, stop_beta = trio.CancelScope(), trio.CancelScope()

        async def beat(scope: trio.CancelScope, wid: str) -> None:
            with scope:
                await keep_alive(by_id[wid], wid)

        nursery.start_soon(beat, stop_alpha, "alpha")
        nursery.start_soon(beat, stop_beta, "beta")
        job_id = await cluster.submit("sleep", {"seconds": 99}, timeout=60)

        # When both poll at once, Expect exactly one of them gets it
        got: dict[str, Any] = {}

        async def poll(wid: str) -> None:
            got[wid] = await by_id[wid].next(wid, wait=2)

        async with trio.open_nursery() as polls:
            polls.start_soon(poll, "alpha")
            polls.start_soon(poll, "beta")
        holders = [w for w, j in got.items() if j is not None]
        assert len(holders) == 1 and got[holders[0]]["id"] == job_id, got
        holder = holders[0]
        other = "beta" if holder == "alpha" else "alpha"
        # And while the holder heartbeats for twice its lease, the other never gets the job
        assert await by_id[other].next(other, wait=2.0) is None
        job = await cluster.job(job_id)
        assert job["status"] == "RUNNING" and len(job["attempts"]) == 1

        # When the holder falls silent, Expect it OFFLINE, and the job requeued and run by the other
        (stop_alpha if holder == "alpha" else stop_beta).cancel()
        second = None
        with trio.fail_after(20):
            while second is None:
                second = await by_id[other].next(other, wait=1)
        assert (second["id"], second["attempt"]) == (job_id, 2)
        assert [w["status"] for w in by_id[holder].list()] == ["OFFLINE"]
        assert (await by_id[other].report(other, job_id, 2, True))["status"] == "SUCCESS"
        job = await cluster.job(job_id)
        first, last = job["attempts"]
        assert first["worker"] == by_id[holder].engine_id(holder) and first["outcome"] == "LEASE_EXPIRED"
        assert last["worker"] == by_id[other].engine_id(other) and last["outcome"] == "SUCCESS"
        assert cluster.events.find("pull.offline", worker=holder)

        # And the holder's late report is refused, saying why; calling again brings it back
        with pytest.raises(PullError, match="went offline") as late:
            await by_id[holder].report(holder, job_id, 1, True)
        assert late.value.status == 409
        assert [w["status"] for w in by_id[holder].list()] == ["ONLINE"]
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ cancels, timeouts, refusals


async def test_cancelled_jobs_leave_the_queue_and_their_reports_are_refused(cluster: Cluster) -> None:
    pulls = cluster.pulls["n1"]
    # Given a worker with two slots holding one job and with another queued
    pulls.register("w2", "host-b", capacity=2)
    async with trio.open_nursery() as beats:
        await beats.start(keep_alive, pulls, "w2")
        held_id = await cluster.submit("noop", priority="high")
        queued_id = await cluster.submit("noop", priority="low")
        with trio.fail_after(10):
            while pulls.list()[0]["queued"] < 2:
                await trio.sleep(0.02)
        taken = await pulls.next("w2", wait=5)
        assert taken is not None and taken["id"] == held_id
        # When both are cancelled
        for jid in (held_id, queued_id):
            await cluster.ask({"op": "cancel", "id": jid, "at": time.time(), "reason": "user changed mind"})
        # Expect both dropped: nothing held, nothing queued, next has nothing
        with trio.fail_after(10):
            while (pulls.list()[0]["held"], pulls.list()[0]["queued"]) != (0, 0):
                await trio.sleep(0.02)
        assert await pulls.next("w2", wait=0.3) is None
        # And a report of the cancelled job is refused, saying why
        with pytest.raises(PullError, match=r"cancelled: .*lease was taken away") as refused:
            await pulls.report("w2", held_id, 1, True)
        assert refused.value.status == 409
        assert (await cluster.job(held_id))["status"] == "CANCELLED"
        assert (await cluster.job(queued_id))["status"] == "CANCELLED"
        # And reports of jobs not yet taken, never given, or from unknown workers are refused too
        waiting_id = await cluster.submit("noop")
        with trio.fail_after(10):
            while pulls.list()[0]["queued"] < 1:
                await trio.sleep(0.02)
        with pytest.raises(PullError, match="was not handed to worker w2 yet") as early:
            await pulls.report("w2", waiting_id, 1, True)
        assert early.value.status == 409
        with pytest.raises(PullError, match="does not hold job nope attempt 1") as nope:
            await pulls.report("w2", "nope", 1, True)
        assert nope.value.status == 409
        with pytest.raises(PullError, match="unknown worker 'ghost'") as ghost:
            await pulls.report("ghost", held_id, 1, True)
        assert ghost.value.status == 404
        beats.cancel_scope.cancel()


async def test_a_job_not_reported_within_its_timeout_fails_and_is_retried(cluster: Cluster) -> None:
    pulls = cluster.pulls["n2"]
    # Given a heartbeating worker that takes a job with a 0.5 s timeout and never reports it
    pulls.register("slowpoke", "host-s")
    async with trio.open_nursery() as beats:
        await beats.start(keep_alive, pulls, "slowpoke")
        jid = await cluster.submit("sleep", timeout=0.5, max_retries=2)
        first = await pulls.next("slowpoke", wait=10)
        assert first is not None and first["timeout_seconds"] == 0.5
        # Expect the attempt failed with a timeout and the job retried
        job = await cluster.until_job(jid, lambda j: j["attempts"][0]["finished"] is not None)
        assert job["attempts"][0]["outcome"] == "FAILED" and "timeout" in job["attempts"][0]["error"]
        with pytest.raises(PullError, match="timeout") as late:
            await pulls.report("slowpoke", jid, 1, True)
        assert late.value.status == 409
        # When the retry is taken and reported in time, Expect SUCCESS on attempt 2
        second = await pulls.next("slowpoke", wait=10)
        assert second is not None and (second["id"], second["attempt"]) == (jid, 2)
        assert (await pulls.report("slowpoke", jid, 2, True))["status"] == "SUCCESS"
        beats.cancel_scope.cancel()


async def test_bad_arguments_get_one_line_400s_and_change_nothing(cluster: Cluster) -> None:
    pulls = cluster.pulls["n1"]
    pulls.register("ok-id_1.2", "h")
    bad_calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: pulls.register("", "h"), "worker_id must be 1 to 64"),
        (lambda: pulls.register("a b", "h"), "worker_id must be 1 to 64"),
        (lambda: pulls.register("x" * 65, "h"), "worker_id must be 1 to 64"),
        (lambda: pulls.register("w/1", "h"), "worker_id must be 1 to 64"),
        (lambda: pulls.register(7, "h"), "worker_id must be 1 to 64"),  # type: ignore[arg-type]
        (lambda: pulls.register("w", ""), "hostname must be 1 to 255"),
        (lambda: pulls.register("w", "h\nx"), "hostname must be 1 to 255"),
        (lambda: pulls.register("w", "h", capacity=0), "capacity must be an integer from 1 to 1000"),
        (lambda: pulls.register("w", "h", capacity=1001), "capacity must be an integer from 1 to 1000"),
        (lambda: pulls.register("w", "h", capacity=True), "capacity must be an integer"),
        (lambda: pulls.register("w", "h", capacity=1.5), "capacity must be an integer"),  # type: ignore[arg-type]
        (lambda: pulls.heartbeat("ok-id_1.2", load=-1), "load must be an integer from 0"),
        (lambda: pulls.heartbeat("ok-id_1.2", load="3"), "load must be an integer"),  # type: ignore[arg-type]
        (lambda: pulls.heartbeat("bad id"), "worker_id must be 1 to 64"),
    ]
    for call, text in bad_calls:
        with pytest.raises(PullError) as e:
            call()
        assert e.value.status == 400 and text in str(e.value) and "\n" not in str(e.value), (text, e.value)
    bad_async: list[tuple[Callable[[], Any], str]] = [
        (lambda: pulls.next("ok-id_1.2", wait=31), "wait must be a number of seconds from 0 to 30"),
        (lambda: pulls.next("ok-id_1.2", wait=-1), "wait must be a number"),
        (lambda: pulls.next("ok-id_1.2", wait=float("nan")), "wait must be a number"),
        (lambda: pulls.next("ok-id_1.2", wait="1"), "wait must be a number"),  # type: ignore[arg-type]
        (lambda: pulls.report("ok-id_1.2", "", 1, True), "job_id must be"),
        (lambda: pulls.report("ok-id_1.2", "j", 0, True), "attempt must be an integer from 1"),
        (lambda: pulls.report("ok-id_1.2", "j", 1, "yes"), "ok must be true or false"),  # type: ignore[arg-type]
        (lambda: pulls.report("ok-id_1.2", "j", 1, False, error=5), "error must be a string"),  # type: ignore[arg-type]
        (lambda: pulls.report("ok-id_1.2", "j", 1, False, error="x" * 10_001), "error must be a string"),
    ]
    for acall, text in bad_async:
        with pytest.raises(PullError) as e:
            await acall()
        assert e.value.status == 400 and text in str(e.value) and "\n" not in str(e.value), (text, e.value)
    # Unknown workers are 404 on every call that names one
    for acall in (lambda: pulls.next("nobody"), lambda: pulls.report("nobody", "j", 1, True)):
        with pytest.raises(PullError, match="unknown worker 'nobody'") as e:
            await acall()
        assert e.value.status == 404
    with pytest.raises(PullError, match="register it first") as e:
        pulls.heartbeat("nobody")
    assert e.value.status == 404
    # And nothing changed: one worker, as registered
    (row,) = pulls.list()
    assert (row["worker_id"], row["hostname"], row["capacity"], row["status"]) == (
        "ok-id_1.2",
        "h",
        1,
        "ONLINE",
    )

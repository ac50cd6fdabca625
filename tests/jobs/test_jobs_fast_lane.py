"""The fast lane: a gateway asks the store to dispatch a job at submit, to its own node's worker.

What is proven here, actor by actor and then in the simulator:

- the machine dispatches a lane submit only if the token holds and the job heads the ready
  queue (strict priority and FIFO), and answers a stale token ``fenced`` and a job behind
  another ``queued``, changing nothing but the new job;
- the gateway adds ``lane`` only while it has a free slot and knows the leader's token, strips a
  client's own ``lane``, hands a dispatched job to its worker (``RunJobs(lane=True)``, no
  nudge), and gets the slot back when the store queued or refused it, failed, did not answer,
  or when the worker says the job ended (:class:`LaneFreed`);
- the worker counts lane jobs apart (``lane`` in its status, so the balancer leaves them out of
  the load) and frees the slot when the job ends;
- in simulated clusters the lane is used, and every job engine checker (fencing, priority
  order, leases, ...) still finds nothing, crashes and partitions included.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import sim
from actors import ActorRef, Context, JobDone, Send
from actors.elections._common import LeaderChanged
from actors.jobs import RUNNING, Job
from actors.jobs._plain import job_to_plain
from actors.jobs.balancer import Balancer
from actors.jobs.config import JobsConfig
from actors.jobs.gateway import Gateway, _Sweep
from actors.jobs.machine import JobMachine
from actors.jobs.messages import GATEWAY, SCHEDULER, WORKER, LaneFreed, Nudge, RunJobs, Ticket, WorkerStatus
from actors.jobs.protocol import STORE, StoreReply, StoreRequest
from actors.jobs.scheduler import fencing_token
from actors.jobs.worker import Worker

SCENARIOS = Path(__file__).parents[2] / "scenarios"
NODES = ("n1", "n2", "n3")
T0 = 1_700_000_000.0
CLIENT = ActorRef("c", "client")


def new_job(jid: str, priority: int = 5, **kw: Any) -> dict[str, Any]:
    return job_to_plain(Job.create(jid, "t", None, now=T0, priority=priority, **kw))


def lane(epoch: int = 4097, worker: str = "n1") -> dict[str, Any]:
    return {"epoch": epoch, "worker": worker, "at": T0 + 1, "lease_until": T0 + 21}


# --- the machine ----------------------------------------------------------------------------


def test_the_machine_dispatches_a_lane_submit_only_at_the_head_of_the_queue() -> None:
    m = JobMachine()
    got = m.apply(1, {"op": "submit", "job": new_job("a"), "lane": lane()})
    assert got["lane"] == "dispatched" and got["job"]["status"] == RUNNING and got["left_best"] is None
    assert got["job"]["attempts"][0]["worker"] == "n1" and got["job"]["lease_expires_at"] == T0 + 21
    assert m.epoch == 4097 and "a" in m.running
    m.apply(2, {"op": "submit", "job": new_job("b", priority=3)})
    # c is more urgent than b: it goes first, and b is what it leaves behind
    got = m.apply(3, {"op": "submit", "job": new_job("c", priority=9), "lane": lane()})
    assert (got["lane"], got["left_best"]) == ("dispatched", 3)
    # d is as urgent as b but younger: FIFO keeps it behind b
    got = m.apply(4, {"op": "submit", "job": new_job("d", priority=3), "lane": lane()})
    assert (got["lane"], got["job"]["status"]) == ("queued", "PENDING")
    assert m.queue.top(2) == ["b", "d"]


def test_a_stale_token_is_fenced_and_a_known_job_is_left_alone() -> None:
    m = JobMachine()
    m.apply(1, {"op": "maintain", "epoch": 8193, "at": T0})
    got = m.apply(2, {"op": "submit", "job": new_job("a"), "lane": lane(4097)})
    assert (got["lane"], got["epoch"], got["job"]["status"]) == ("fenced", 8193, "PENDING")
    assert m.epoch == 8193
    again = m.apply(3, {"op": "submit", "job": new_job("a"), "lane": lane(8193)})
    assert again == {"job": got["job"], "created": False}  # no lane: nothing was written
    bad = m.apply(4, {"op": "submit", "job": new_job("z"), "lane": {"epoch": 1, "worker": ""}})
    assert bad["error"].startswith("submit: worker must be") and "z" not in m.jobs


# --- the gateway ----------------------------------------------------------------------------


def gateway(slots: int = 1) -> tuple[Gateway, Context]:
    g = Gateway(ActorRef("n1", STORE), nodes=NODES, lane_slots=slots, lease=20.0)
    ctx = Context(ActorRef("n1", GATEWAY), random.Random(1))
    g.on_start(ctx, {})
    ctx.take_effects()
    return g, ctx


def submit(g: Gateway, ctx: Context, cmd: dict[str, Any], req: int = 1) -> StoreRequest:
    ctx.sender = CLIENT
    g.receive(ctx, StoreRequest(req, cmd))
    (send,) = [e for e in ctx.take_effects() if isinstance(e, Send)]
    assert isinstance(send.msg, StoreRequest)
    return send.msg


def answer(g: Gateway, ctx: Context, req: StoreRequest, result: dict[str, Any]) -> list[Send]:
    ctx.sender = ActorRef("n1", STORE)
    g.receive(ctx, StoreReply(req.req, result))
    return [e for e in ctx.take_effects() if isinstance(e, Send)]


def test_the_gateway_uses_a_free_slot_under_the_leaders_token() -> None:
    g, ctx = gateway(slots=1)
    # No leader known yet: no lane, and a client's own lane is removed
    sent = submit(g, ctx, {"op": "submit", "job": new_job("a"), "lane": lane(10**9, "evil")})
    assert "lane" not in sent.command
    answer(g, ctx, sent, {"job": new_job("a"), "created": True})
    g.receive(ctx, LeaderChanged("n2", 3))
    token = fencing_token(3, "n2", NODES)
    ctx.wall = T0 + 5
    # When a job due now is submitted, Expect the lane with the token, our worker and a lease
    sent = submit(g, ctx, {"op": "submit", "job": new_job("b")}, req=2)
    assert sent.command["lane"] == {"epoch": token, "worker": "n1", "at": T0 + 5, "lease_until": T0 + 25}
    # and no second lane while the only slot is taken
    other = submit(g, ctx, {"op": "submit", "job": new_job("c")}, req=3)
    assert "lane" not in other.command
    # When the store dispatched b, Expect it handed to our worker, not the leader nudged
    running = {**new_job("b"), "status": RUNNING, "attempts": [{"number": 1, "worker": "n1"}]}
    sends = answer(g, ctx, sent, {"job": running, "created": True, "lane": "dispatched", "epoch": token})
    (run,) = [s for s in sends if s.to == ActorRef("n1", WORKER)]
    assert isinstance(run.msg, RunJobs) and run.msg.lane and run.msg.epoch == token
    assert [t.id for t in run.msg.jobs] == ["b"] and not any(isinstance(s.msg, Nudge) for s in sends)
    # When the worker says b ended, Expect the slot back
    g.receive(ctx, LaneFreed(1))
    assert "lane" in submit(g, ctx, {"op": "submit", "job": new_job("d")}, req=4).command


def test_the_slot_comes_back_when_the_store_did_not_dispatch() -> None:
    g, ctx = gateway(slots=1)
    g.receive(ctx, LeaderChanged("n2", 3))
    for outcome in ({"lane": "queued"}, {"lane": "fenced"}, {"error": "store unavailable: down"}):
        sent = submit(g, ctx, {"op": "submit", "job": new_job("a")})
        assert "lane" in sent.command
        result = {"job": new_job("a"), "created": True, "epoch": 1, **outcome}
        sends = answer(g, ctx, sent, result)
        ctx.now += 1.0  # past the gap between two nudges
        if "error" not in outcome:  # a queued or fenced job waits for the leader: nudge it
            assert any(s.to == ActorRef("n2", SCHEDULER) and isinstance(s.msg, Nudge) for s in sends)
    # A request the store never answers gives its slot back at the sweep
    sent = submit(g, ctx, {"op": "submit", "job": new_job("a")}, req=9)
    assert "lane" in sent.command
    ctx.now += 10
    g.receive(ctx, _Sweep())
    ctx.take_effects()
    assert "lane" in submit(g, ctx, {"op": "submit", "job": new_job("b")}, req=10).command


def test_a_gateway_without_slots_never_asks_for_the_lane() -> None:
    g, ctx = gateway(slots=0)
    g.receive(ctx, LeaderChanged("n1", 1))
    assert "lane" not in submit(g, ctx, {"op": "submit", "job": new_job("a")}).command
    g, ctx = gateway(slots=1)
    g.receive(ctx, LeaderChanged("n1", 1))
    delayed = new_job("a", scheduled_at=T0 + 60)
    assert "lane" not in submit(g, ctx, {"op": "submit", "job": delayed}).command


# --- the worker and the balancer --------------------------------------------------------------


def test_the_worker_counts_lane_jobs_apart_and_frees_the_slot() -> None:
    w = Worker(JobsConfig(), ActorRef("n1", STORE))
    ctx = Context(ActorRef("n1", WORKER), random.Random(1))
    w.on_start(ctx, {})
    w.receive(ctx, LeaderChanged("n2", 1))
    ctx.take_effects()
    w.receive(ctx, RunJobs(4097, 0, (Ticket("a", 1, "t", None, 5.0, 5),), lane=True))
    w.receive(ctx, RunJobs(4097, 1, (Ticket("b", 1, "t", None, 5.0, 5),)))
    assert w.seen == 1  # the lane's seq 0 is not one of the scheduler's batches
    w.receive(ctx, LeaderChanged("n2", 1))
    (status,) = [e.msg for e in ctx.take_effects() if isinstance(getattr(e, "msg", None), WorkerStatus)]
    assert (len(status.held), status.lane) == (2, 1)
    # The balancer counts only the routed job against the capacity
    balancer = Balancer(JobsConfig(worker_count=2))
    bctx = Context(ActorRef("n2", "balancer"), random.Random(1))
    balancer.receive(bctx, status)
    assert balancer.pool.get("n1").active_jobs == 1
    # When the lane job ends, Expect the gateway told its slot is free, and the report sent
    w.receive(ctx, JobDone("a#1", True, None, "", 0.01))
    msgs = [e.msg for e in ctx.take_effects() if isinstance(e, Send)]
    assert LaneFreed(1) in msgs and any(isinstance(m, StoreRequest) for m in msgs)
    w.receive(ctx, JobDone("b#1", True, None, "", 0.01))
    assert LaneFreed(1) not in [e.msg for e in ctx.take_effects() if isinstance(e, Send)]


# --- simulated clusters -----------------------------------------------------------------------


def lane_starts(res: sim.RunResult) -> int:
    return sum(1 for e in res.emitted if e.kind == "job.started" and e.fields.get("lane"))


def test_simulated_clusters_use_the_lane_and_keep_every_promise() -> None:
    for name in ("jobs-leader-crash.toml", "jobs-worker-crash.toml", "jobs-raft-leader-crash.toml"):
        res = sim.run_scenario(SCENARIOS / name, 3)
        assert res.violations == [], (name, [str(v) for v in res.violations[:3]])
        assert lane_starts(res) > 0, name


def test_with_no_lane_slots_every_job_goes_through_the_leader() -> None:
    sc = sim.load_scenario(SCENARIOS / "jobs-worker-crash.toml")
    params = dataclasses.replace(sc.params, engine=dataclasses.replace(sc.params.engine, lane_slots=0))
    res = sim.run_scenario(dataclasses.replace(sc, params=params), 3)
    assert res.violations == [] and lane_starts(res) == 0
    assert any(e.kind == "job.started" for e in res.emitted)

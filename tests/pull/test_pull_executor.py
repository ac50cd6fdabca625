"""The pieces under pull workers: the runtime's executor hook, worker ids that name any worker
actor, and the ``Worker`` actor's capacity, verdicts and farewell (driven by hand, no runtime).

Each test reads Given / When / Expect.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
import trio

from actors import Actor, ActorRef, Context, ExecuteJob, JobDone, Send
from actors.elections._common import LeaderChanged
from actors.jobs.config import JobsConfig
from actors.jobs.messages import (
    SCHEDULER,
    WORKER,
    ReportSettled,
    Resize,
    RunJobs,
    Ticket,
    WorkerStatus,
    worker_id,
    worker_ref,
)
from actors.jobs.protocol import StoreReply, StoreRequest
from actors.jobs.worker import Worker
from transport.events import EventLog
from transport.memory import MemoryHub
from transport.runtime import NodeRuntime

# ------------------------------------------------------------------ the runtime's executor hook

ran_builtin: list[Any] = []


async def _builtin(payload: Any) -> Any:
    ran_builtin.append(payload)
    return payload


class Jobs(Actor):
    """Asks for jobs on command and records every JobDone."""

    def __init__(self) -> None:
        self.done: list[JobDone] = []

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        pass

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, JobDone):
            self.done.append(msg)
        elif isinstance(msg, tuple) and msg[0] == "run":
            ctx.execute_job(msg[1], "t", msg[2], timeout=5)
        elif isinstance(msg, tuple) and msg[0] == "cancel":
            ctx.cancel_job(msg[1], "stop it")


class Recording:
    """An executor that keeps what it is given (and fails on payload "boom")."""

    def __init__(self) -> None:
        self.started: list[ExecuteJob] = []
        self.cancelled: list[tuple[str, str]] = []

    def execute(self, job: ExecuteJob) -> None:
        if job.payload == "boom":
            raise RuntimeError("no room")
        self.started.append(job)

    def cancel(self, job_id: str, reason: str) -> None:
        self.cancelled.append((job_id, reason))


async def wait_done(actor: Jobs, n: int) -> None:
    with trio.fail_after(5):
        while len(actor.done) < n:
            await trio.sleep(0.01)


async def test_an_executor_takes_an_actors_jobs_and_answers_with_job_done(nursery: trio.Nursery) -> None:
    # Given an actor whose jobs go to an executor, and a processor registered for the same type
    actor, executor, events = Jobs(), Recording(), EventLog()
    rt = NodeRuntime("n1", lambda _n: {"a": actor}, MemoryHub().transport("n1"), events=events)
    rt.processors["t"] = _builtin
    await nursery.start(rt.serve)
    rt.set_executor("a", executor)
    me = ActorRef("n1", "a")
    # When the actor asks for two jobs and cancels one
    rt.tell(me, ("run", "j1", {"x": 1}))
    rt.tell(me, ("run", "j2", None))
    rt.tell(me, ("cancel", "j2"))
    with trio.fail_after(5):
        while len(executor.cancelled) < 1:
            await trio.sleep(0.01)
    # Expect the executor got both and the cancel, and the processor ran nothing
    assert [(j.job_id, j.job_type, j.payload, j.timeout, j.reply_to) for j in executor.started] == [
        ("j1", "t", {"x": 1}, 5, me),
        ("j2", "t", None, 5, me),
    ]
    assert executor.cancelled == [("j2", "stop it")] and ran_builtin == []
    # When the executor answers, Expect the same JobDone the built-in path sends
    assert rt.job_done("a", "j1", True, result={"y": 2}, duration=0.25)
    assert rt.job_done("a", "j2", False, error="cancelled: stop it")
    await wait_done(actor, 2)
    assert actor.done == [
        JobDone("j1", True, {"y": 2}, "", 0.25),
        JobDone("j2", False, None, "cancelled: stop it", 0.0),
    ]
    assert rt.stats.jobs_run == 2
    # When the executor raises, Expect a failed JobDone and one error event; the actor goes on
    rt.tell(me, ("run", "j3", "boom"))
    await wait_done(actor, 3)
    assert not actor.done[2].ok and actor.done[2].error == "executor failed: RuntimeError: no room"
    assert len(events.find("runtime.executor_error", actor="a")) == 1
    # When the executor is removed, Expect the registered processor to run the next job
    rt.set_executor("a", None)
    rt.tell(me, ("run", "j4", 44))
    await wait_done(actor, 4)
    assert actor.done[3].ok and actor.done[3].result == 44 and ran_builtin == [44]
    # And job_done for an actor that does not run is refused, not raised
    assert not rt.job_done("nobody", "j5", True)
    rt.crash()


# ------------------------------------------------------------------ worker ids


@pytest.mark.parametrize(
    ("wid", "ref"),
    [
        ("n1", ActorRef("n1", WORKER)),
        ("n1/pull-w7", ActorRef("n1", "pull-w7")),
        (
            "node.a-1/pull-0a1b2c3d-aaaa-bbbb-cccc-0123456789ab",
            ActorRef("node.a-1", "pull-0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"),
        ),
    ],
)
def test_worker_ids_name_the_worker_actor_and_back(wid: str, ref: ActorRef) -> None:
    assert worker_ref(wid) == ref
    assert worker_id(ref) == wid


# ------------------------------------------------------------------ the Worker actor, by hand

CFG = JobsConfig(worker_count=4, heartbeat_interval=1.0, offline_after=3.0)
STORE = ActorRef("s", "store")
NOTIFY = ActorRef("n1", "$pull")


def sends(ctx: Context) -> list[Send]:
    return [e for e in ctx.take_effects() if isinstance(e, Send)]


def statuses(effects: list[Send]) -> list[WorkerStatus]:
    return [e.msg for e in effects if isinstance(e.msg, WorkerStatus) and e.to == ActorRef("n2", SCHEDULER)]


def test_a_named_worker_reports_its_own_id_capacity_verdicts_and_farewell() -> None:
    # Given a pull worker actor with capacity 2 that hears of leader n2
    w = Worker(CFG, STORE, capacity=2, notify=NOTIFY)
    ctx = Context(ActorRef("n1", "pull-w7"), random.Random(1))
    w.on_start(ctx, {})
    ctx.take_effects()
    w.receive(ctx, LeaderChanged("n2", 1))
    (status,) = statuses(sends(ctx))
    assert (status.worker, status.capacity, status.held) == ("n1/pull-w7", 2, ())
    # When it runs a job and it finishes, Expect a report naming the worker id
    w.receive(ctx, RunJobs(4096, 1, (Ticket("j1", 1, "t", None, 10.0, 5),)))
    ctx.take_effects()
    w.receive(ctx, JobDone("j1#1", True, None, "", 0.1))
    (request,) = [e.msg for e in sends(ctx) if isinstance(e.msg, StoreRequest)]
    assert request.command["worker"] == "n1/pull-w7" and request.command["id"] == "j1"
    # And the store's verdict goes to the notify actor
    w.receive(ctx, StoreReply(request.req, {"accepted": True, "status": "SUCCESS"}))
    assert [(e.to, e.msg) for e in sends(ctx)] == [(NOTIFY, ReportSettled("j1", 1, True, "SUCCESS", ""))]
    # And a refusal too, saying why
    w.receive(ctx, RunJobs(4096, 2, (Ticket("j2", 3, "t", None, 10.0, 5),)))
    w.receive(ctx, JobDone("j2#3", False, None, "bad", 0.1))
    (request,) = [e.msg for e in sends(ctx) if isinstance(e.msg, StoreRequest)]
    w.receive(ctx, StoreReply(request.req, {"accepted": False, "status": "RUNNING", "why": "lease lost"}))
    assert [e.msg for e in sends(ctx)] == [ReportSettled("j2", 3, False, "RUNNING", "lease lost")]
    # When resized, Expect the leader told the new capacity at once
    w.receive(ctx, Resize(6))
    (status,) = statuses(sends(ctx))
    assert status.capacity == 6 and not status.heartbeat
    # When stopped, Expect a last status with no capacity, so nothing more is routed to it
    w.on_stop(ctx)
    (status,) = statuses(sends(ctx))
    assert (status.worker, status.capacity, status.held) == ("n1/pull-w7", 0, ())


def test_the_nodes_own_worker_keeps_the_node_id_and_tells_nobody() -> None:
    w = Worker(CFG, STORE)
    ctx = Context(ActorRef("n1", WORKER), random.Random(1))
    w.on_start(ctx, {})
    w.receive(ctx, LeaderChanged("n2", 1))
    (status,) = statuses(sends(ctx))
    assert (status.worker, status.capacity) == ("n1", 4)
    w.receive(ctx, RunJobs(4096, 1, (Ticket("j1", 1, "t", None, 10.0, 5),)))
    w.receive(ctx, JobDone("j1#1", True, None, "", 0.1))
    (request,) = [e.msg for e in sends(ctx) if isinstance(e.msg, StoreRequest)]
    assert request.command["worker"] == "n1"
    w.receive(ctx, StoreReply(request.req, {"accepted": True, "status": "SUCCESS"}))
    assert sends(ctx) == []
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        Worker(CFG, STORE, capacity=0)

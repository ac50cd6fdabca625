"""A node's worker pool: runs the jobs the leader dispatches and reports every outcome to the store.

How it works
------------
One worker actor per node, named ``worker`` and with the node id as its worker id, runs up to
``worker_count`` jobs at once. Other worker actors may live on a node under other names (a pull
worker standing for an external process, :mod:`transport.pull_workers`): their worker id is
``"<node>/<name>"`` (:func:`~actors.jobs.messages.worker_id`) and they may have their own
``capacity``; the scheduler and gateway address every worker by its id. It
subscribes to its node's election actor and reports to the leader's scheduler with a
:class:`WorkerStatus`: at once when the leader changes, every ``heartbeat_interval`` (a
heartbeat, which renews its leases) and shortly after jobs finish (so the balancer sees free
slots). A worker that stops reporting for ``offline_after`` is offline to the balancer and its
leases run out in the store, which requeues the jobs.

:class:`RunJobs` carries tickets ``(job id, attempt, type, payload, timeout)``; each runs as an
``ExecuteJob`` effect keyed ``"<id>#<attempt>"`` (the runtime runs the registered processor
under the job's timeout; the simulator models it). A ticket already running is ignored, so a
resent dispatch runs nothing twice. When a job finishes the worker sends the store a ``report``
naming the attempt and itself; the store accepts it only from the lease holder of the open
attempt (fencing by attempt). Reports are kept and resent until the store answers (a store
error or a lost reply is retried every ``0.5`` s), so a finished job's outcome is not lost
while the worker lives. A refused report (the lease was taken away) is dropped (event ``job.report_refused``).

The fast lane: the node's gateway sends :class:`RunJobs` with ``lane=True`` for a job the store
dispatched at submit. Such a job runs beside the ``capacity`` jobs the leader routes (the
gateway keeps within ``lane_slots``), is renewed and reported like any other, is counted in
``lane`` of every status (so the balancer leaves it out of the load) and, when it ends, the
worker tells the gateway (:class:`LaneFreed`) that its lane slot is free. A job of the direct
lane (:mod:`transport.lane_feed`) comes the same way from the node's lane feed, which
``RunJobs.notify`` names, and the :class:`LaneFreed` goes back to it.

:class:`LeaseLost` (from the scheduler's renewal, or from a gateway that cancelled a running
job) cancels the named jobs' processors (``CancelJob``); their outcome is not reported, since
the store has already closed those attempts.

A worker given ``notify`` also sends that actor a :class:`ReportSettled` with the store's
verdict on each report (accepted, or refused and why); :class:`Resize` changes its capacity.
A worker stopped gracefully tells the
leader it has no capacity left (a last :class:`WorkerStatus` with capacity 0), so the balancer
routes nothing more to it before noticing its silence.

Events: ``job.started`` and ``job.finished`` (``id``, ``attempt``, ``worker``, ``type``; ``ok``;
``lane`` for a fast-lane job),
``job.report_refused``, ``job.lease_lost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor
from .._context import Context
from .._effects import JobDone
from .._messages import ActorRef
from ..elections._common import NAME as ELECTION
from ..elections._common import LeaderChanged, Subscribe
from .config import JobsConfig
from .messages import (
    GATEWAY,
    SCHEDULER,
    LaneFreed,
    LeaseLost,
    ReportSettled,
    Resize,
    RunJobs,
    Ticket,
    WorkerStatus,
    worker_id,
)
from .protocol import StoreReply
from .store_client import StoreClient

RETRY_EVERY = 0.5


@dataclass(frozen=True, slots=True)
class _Beat:
    pass


@dataclass(frozen=True, slots=True)
class _Retry:
    pass


@dataclass(frozen=True, slots=True)
class _Status:
    pass


class Worker(Actor):
    """One node's worker pool, or one pull worker (see the module docstring).

    Args:
        config: the engine's settings.
        store: the store actor reports go to.
        capacity: jobs run at once (None: ``config.worker_count``).
        notify: an actor told the store's verdict on every report (None: nobody).
    """

    def __init__(
        self,
        config: JobsConfig,
        store: ActorRef,
        *,
        capacity: int | None = None,
        notify: ActorRef | None = None,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"worker capacity must be >= 1, got {capacity}")
        self.cfg = config
        self.capacity = config.worker_count if capacity is None else capacity
        self.notify = notify
        self.client = StoreClient(store, config.request_timeout)
        self.leader: str | None = None
        self.running: dict[str, Ticket] = {}  # "<id>#<attempt>" -> ticket
        self.lost: set[str] = set()  # running keys whose lease the store took away
        self.lane: dict[str, str] = {}  # running keys that came by a fast lane -> who to tell
        self.unsent: list[dict[str, Any]] = []  # reports to send again
        self.token = 0
        self.seen = 0
        self.status_due = False
        self._id = ""

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self._id = worker_id(ctx.self_ref)
        ctx.send(ActorRef(ctx.node_id, ELECTION), Subscribe())
        ctx.set_timer("beat", self.cfg.heartbeat_interval, _Beat())
        ctx.set_timer("retry", RETRY_EVERY, _Retry())

    def on_stop(self, ctx: Context) -> None:
        if self.leader is not None:  # no more jobs for me: the balancer sees no free slot
            farewell = WorkerStatus(self._id, 0, (), False, self.token, self.seen)
            ctx.send(ActorRef(self.leader, SCHEDULER), farewell)

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, RunJobs):
            self._on_run(ctx, msg)
        elif isinstance(msg, JobDone):
            self._on_done(ctx, msg)
        elif isinstance(msg, StoreReply):
            self._on_reply(ctx, msg)
        elif isinstance(msg, _Status):
            self.status_due = False
            self._report_status(ctx, heartbeat=False)
        elif isinstance(msg, _Beat):
            ctx.set_timer("beat", self.cfg.heartbeat_interval, _Beat())
            self._report_status(ctx, heartbeat=True)
        elif isinstance(msg, _Retry):
            ctx.set_timer("retry", RETRY_EVERY, _Retry())
            self._retry(ctx)
        elif isinstance(msg, LeaderChanged):
            self.leader = msg.leader
            self._report_status(ctx, heartbeat=True)
        elif isinstance(msg, LeaseLost):
            for job_id, attempt in msg.held:
                key = f"{job_id}#{attempt}"
                if key in self.running and key not in self.lost:
                    self.lost.add(key)
                    ctx.emit("job.lease_lost", id=job_id, attempt=attempt, worker=self._id)
                    ctx.cancel_job(key, "the lease was taken away (cancelled or expired)")
        elif isinstance(msg, Resize) and msg.capacity >= 1:
            self.capacity = msg.capacity
            self._report_status(ctx, heartbeat=False)

    # --- running jobs --------------------------------------------------------------------

    def _on_run(self, ctx: Context, msg: RunJobs) -> None:
        if not msg.lane:  # a lane job comes from the gateway, outside the scheduler's batches
            if msg.epoch > self.token:
                self.token, self.seen = msg.epoch, 0
            if msg.epoch == self.token:
                self.seen = max(self.seen, msg.seq)
        for t in msg.jobs:
            key = f"{t.id}#{t.attempt}"
            if key in self.running:
                continue
            self.running[key] = t
            more = {"lane": True} if msg.lane else {}
            if msg.lane:
                self.lane[key] = msg.notify or GATEWAY
            ctx.emit("job.started", id=t.id, attempt=t.attempt, worker=self._id, type=t.type, **more)
            ctx.execute_job(key, t.type, t.payload, t.timeout)

    def _on_done(self, ctx: Context, msg: JobDone) -> None:
        ticket = self.running.pop(msg.job_id, None)
        if ticket is None:
            return
        owner = self.lane.pop(msg.job_id, None)
        lane = owner is not None
        if owner is not None:
            ctx.send(ActorRef(ctx.node_id, owner), LaneFreed(1))
        more = {"lane": True} if lane else {}
        lost = msg.job_id in self.lost
        self.lost.discard(msg.job_id)
        ok = msg.ok and not lost
        ctx.emit(
            "job.finished",
            id=ticket.id,
            attempt=ticket.attempt,
            worker=self._id,
            type=ticket.type,
            ok=ok,
            **more,
        )
        if lost:
            return  # the store already closed this attempt: a report would only be refused
        command: dict[str, Any] = {
            "op": "report",
            "at": ctx.wall,
            "id": ticket.id,
            "attempt": ticket.attempt,
            "worker": self._id,
            "ok": msg.ok,
        }
        if not msg.ok:
            command["error"] = msg.error or "failed"
        self.client.request(ctx, command, "report")
        if not self.status_due:
            self.status_due = True
            ctx.set_timer("status", self.cfg.status_delay, _Status())

    def _on_reply(self, ctx: Context, msg: StoreReply) -> None:
        p = self.client.take(msg.req)
        if p is None:
            return
        result = msg.result if isinstance(msg.result, dict) else {}
        if result.get("accepted"):
            if self.notify is not None:
                self._tell_verdict(ctx, p.command, result, True)
            return
        if "error" in result or not result:
            self.unsent.append(p.command)  # the store did not apply it: send again
        else:
            ctx.emit("job.report_refused", id=p.command["id"], attempt=p.command["attempt"], worker=self._id)
            if self.notify is not None:
                self._tell_verdict(ctx, p.command, result, False)

    def _tell_verdict(self, ctx: Context, command: dict[str, Any], result: dict[str, Any], ok: bool) -> None:
        assert self.notify is not None
        why = "" if ok else str(result.get("why") or "refused by the store")
        status = str(result.get("status") or "")
        ctx.send(self.notify, ReportSettled(command["id"], command["attempt"], ok, status, why))

    def _retry(self, ctx: Context) -> None:
        commands = self.unsent + [p.command for p in self.client.overdue(ctx.now)]
        self.unsent = []
        for command in commands:
            self.client.request(ctx, command, "report")

    # --- reporting to the leader ---------------------------------------------------------

    def _report_status(self, ctx: Context, *, heartbeat: bool) -> None:
        if self.leader is None:
            return
        held = tuple((t.id, t.attempt) for t in self.running.values())
        status = WorkerStatus(self._id, self.capacity, held, heartbeat, self.token, self.seen, len(self.lane))
        ctx.send(ActorRef(self.leader, SCHEDULER), status)

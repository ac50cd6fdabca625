"""The scheduler: on the elected leader only, it moves ready jobs to workers and keeps leases honest.

How it works
------------
Every node runs a scheduler; it subscribes to its node's election actor and is **active** only
while that actor names its own node leader. It then acts under a fencing ``token``: the
election epoch times 4096 plus the node's rank, so two leaders never share a token even when an
algorithm (Bully, Gossip) lets two leaders share an epoch. Every write it sends the store
(``dispatch``, ``renew``, ``maintain``) carries the token; the store refuses a token below the
highest it has seen, and a refused (``fenced``) reply makes the scheduler step down. A deposed
leader can therefore change nothing.

A dispatch round is a little pipeline, one round at a time::

    ready(limit=batch) --store--> [[id, priority, type], ...] + mark
    Route(jobs)        --balancer--> [(id, worker), ...]   (the strategy picks; may place none)
    dispatch(token, assign, mark) --store--> dispatched jobs (attempt opened, lease set)
    RunJobs(token, seq, tickets) --> each chosen worker

``ready`` lists jobs by priority then FIFO and the store dispatches only those still PENDING,
so strict priority order holds. The next round starts at once after a round that placed
every job it was offered, when a gateway sends a :class:`Nudge` (a job was submitted), or when a
worker reports free slots after a round that found none, or when ``maintain`` made jobs ready
(retries, delayed jobs); otherwise the next tick does
(``tick`` seconds). A nudge during a round is remembered and served when it ends.

Every ``maintain_interval`` a ``maintain`` command expires leases that ran out (requeue with
backoff, counting an attempt), promotes retries whose backoff elapsed and delayed jobs that
fell due.

Workers send :class:`WorkerStatus` to the leader: a heartbeat renews the leases it lists (one
``renew`` command) and every status goes on to the balancer, which keeps loads and liveness.
A ``renew`` that finds a job no longer held by that worker sends the worker :class:`LeaseLost`.
Workers are addressed by their id (:func:`~actors.jobs.messages.worker_ref`): a node's own pool
or a pull worker standing for an external process.

Requests unanswered for ``request_timeout`` are forgotten and the round starts again: every
store command is idempotent, so a resend is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor
from .._context import Context
from .._messages import ActorRef
from ..elections._common import NAME as ELECTION
from ..elections._common import LeaderChanged, Subscribe
from .config import JobsConfig
from .messages import (
    BALANCER,
    LeaseLost,
    Nudge,
    Route,
    Routed,
    RunJobs,
    Ticket,
    WorkerStatus,
    ticket_of,
    worker_ref,
)
from .protocol import StoreReply
from .store_client import StoreClient

RANKS = 4096
"""Fencing tokens are ``epoch * RANKS + rank(node)``."""


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


def fencing_token(epoch: int, node: str, nodes: tuple[str, ...]) -> int:
    """The token a leader of ``epoch`` on ``node`` writes with (unique per leadership)."""
    ordered = sorted(nodes)
    rank = ordered.index(node) + 1 if node in ordered else 0
    return epoch * RANKS + min(rank, RANKS - 1)


class Scheduler(Actor):
    """The leader's dispatcher (see the module docstring)."""

    def __init__(self, config: JobsConfig, store: ActorRef, nodes: tuple[str, ...]) -> None:
        self.cfg = config
        self.nodes = nodes
        self.client = StoreClient(store, config.request_timeout)
        self.token: int | None = None
        self.round = ""  # "", "ready", "route", "dispatch"
        self.round_started = 0.0
        self.route_req = 0
        self.routed_mark = 0
        self.last_maintain = float("-inf")
        self.again = False  # a nudge arrived during a round
        self.starved = False  # the last round found no free worker

    # --- lifecycle -----------------------------------------------------------------------

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.send(ActorRef(ctx.node_id, ELECTION), Subscribe())
        ctx.set_timer("tick", self.cfg.tick, _Tick())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, StoreReply):
            self._on_reply(ctx, msg)
        elif isinstance(msg, Routed):
            self._on_routed(ctx, msg)
        elif isinstance(msg, WorkerStatus):
            self._on_status(ctx, msg)
        elif isinstance(msg, _Tick):
            self._on_tick(ctx)
        elif isinstance(msg, Nudge):
            self._wake(ctx)
        elif isinstance(msg, LeaderChanged):
            self._on_leader(ctx, msg)

    # --- leadership ----------------------------------------------------------------------

    def _on_leader(self, ctx: Context, msg: LeaderChanged) -> None:
        if msg.leader == ctx.node_id:
            token = fencing_token(msg.epoch, ctx.node_id, self.nodes)
            if token != self.token:
                self.token = token
                self._reset()
                ctx.emit("scheduler.active", token=token, epoch=msg.epoch)
                self._maintain(ctx)
        elif self.token is not None:
            self._step_down(ctx, "leader changed")

    def _step_down(self, ctx: Context, why: str) -> None:
        ctx.emit("scheduler.passive", token=self.token, why=why)
        self.token = None
        self._reset()

    def _reset(self) -> None:
        self.client.clear()
        self.round = ""
        self.last_maintain = float("-inf")

    # --- the tick ------------------------------------------------------------------------

    def _on_tick(self, ctx: Context) -> None:
        ctx.set_timer("tick", self.cfg.tick, _Tick())
        if self.token is None:
            return
        late = self.client.overdue(ctx.now)
        if any(p.purpose in ("ready", "dispatch") for p in late) or (
            self.round == "route" and ctx.now - self.round_started >= self.cfg.request_timeout
        ):
            self.round = ""
        if ctx.now - self.last_maintain >= self.cfg.maintain_interval and not self.client.busy("maintain"):
            self._maintain(ctx)
        if not self.round:
            self._start_round(ctx)

    def _wake(self, ctx: Context) -> None:
        """Start a round now if none runs, else right after the current one."""
        if self.token is None:
            return
        if self.round:
            self.again = True
        else:
            self._start_round(ctx)

    def _round_over(self, ctx: Context, *, more: bool) -> None:
        self.round = ""
        if more or self.again:
            self._start_round(ctx)

    def _maintain(self, ctx: Context) -> None:
        self.last_maintain = ctx.now
        self.client.request(ctx, {"op": "maintain", "epoch": self.token, "at": ctx.wall}, "maintain")

    def _start_round(self, ctx: Context) -> None:
        self.again = False
        self.round = "ready"
        self.round_started = ctx.now
        self.client.request(ctx, {"op": "ready", "at": ctx.wall, "limit": self.cfg.batch}, "ready")

    # --- replies -------------------------------------------------------------------------

    def _on_reply(self, ctx: Context, msg: StoreReply) -> None:
        p = self.client.take(msg.req)
        if p is None or self.token is None:
            return
        result = msg.result if isinstance(msg.result, dict) else {"error": "malformed reply"}
        if "error" in result:
            ctx.emit("scheduler.store_error", purpose=p.purpose, error=str(result["error"]))
            if p.purpose in ("ready", "dispatch"):
                self.round = ""
            return
        if result.get("fenced"):
            self._step_down(ctx, f"fenced by token {result.get('epoch')}")
            return
        if p.purpose == "ready":
            self._on_ready(ctx, result)
        elif p.purpose == "dispatch":
            self._on_dispatched(ctx, result, p.data)
        elif p.purpose == "renew":
            lost = [h for h in p.data[1] if h[0] in set(result.get("lost", ()))]
            if lost:
                ctx.send(worker_ref(p.data[0]), LeaseLost(tuple((str(i), int(n)) for i, n in lost)))
        elif p.purpose == "maintain":
            expired, retried = result.get("expired", []), result.get("retried", [])
            if expired or retried:
                ctx.emit("scheduler.maintained", expired=len(expired), retried=len(retried))
            if retried or result.get("promoted"):
                self._wake(ctx)  # jobs became ready: dispatch them now, not at the tick

    def _on_ready(self, ctx: Context, result: dict[str, Any]) -> None:
        jobs = result.get("jobs", [])
        if not jobs:
            self._round_over(ctx, more=False)
            return
        self.round = "route"
        self.route_req += 1
        self.routed_mark = int(result.get("mark", 0))
        ctx.send(
            ActorRef(ctx.node_id, BALANCER),
            Route(self.route_req, tuple((str(j[0]), int(j[1])) for j in jobs)),
        )

    def _on_routed(self, ctx: Context, msg: Routed) -> None:
        if self.token is None or self.round != "route" or msg.req != self.route_req:
            return
        if not msg.assign:
            self.starved = True  # no free worker: a status with free slots, or the tick, retries
            self._round_over(ctx, more=False)
            return
        self.starved = False
        self.round = "dispatch"
        command = {
            "op": "dispatch",
            "epoch": self.token,
            "at": ctx.wall,
            "lease_until": ctx.wall + self.cfg.lease,
            "assign": [[j, w] for j, w in msg.assign],
            "mark": self.routed_mark,
        }
        self.client.request(ctx, command, "dispatch", (msg.req, len(msg.assign)))

    def _on_dispatched(self, ctx: Context, result: dict[str, Any], data: tuple[int, int]) -> None:
        seq, asked = data
        by_worker: dict[str, list[Ticket]] = {}
        lowest = None
        for job in result.get("jobs", []):
            by_worker.setdefault(job["attempts"][-1]["worker"], []).append(ticket_of(job))
            lowest = job["priority"] if lowest is None else min(lowest, job["priority"])
        for worker, tickets in by_worker.items():
            assert self.token is not None
            ctx.send(worker_ref(worker), RunJobs(self.token, seq, tuple(tickets)))
        n = sum(len(t) for t in by_worker.values())
        ctx.emit(
            "scheduler.dispatched", n=n, token=self.token, lowest=lowest, left_best=result.get("left_best")
        )
        self._round_over(ctx, more=n == asked and n > 0)

    # --- workers -------------------------------------------------------------------------

    def _on_status(self, ctx: Context, msg: WorkerStatus) -> None:
        if self.token is None:
            return
        ctx.send(ActorRef(ctx.node_id, BALANCER), msg)
        if self.starved and len(msg.held) < msg.capacity:
            self.starved = False
            self._wake(ctx)
        if msg.heartbeat and msg.held:
            command = {
                "op": "renew",
                "epoch": self.token,
                "at": ctx.wall,
                "lease_until": ctx.wall + self.cfg.lease,
                "worker": msg.worker,
                "held": [[i, n] for i, n in msg.held],
            }
            self.client.request(ctx, command, "renew", (msg.worker, msg.held))

"""The gateway: where clients (CLI, Python API, HTTP edge) send store commands on any node.

How it works: a client sends :class:`StoreRequest` to the actor ``jobs`` on any node. The
gateway checks the command is a map with a known ``op`` and that clients do not send the
scheduler's own commands (``ready``, ``dispatch``, ``renew``, ``maintain``, ``report``), then
forwards it to the store under its own request number and relays the answer. A submitted
job whose ``max_retries`` is left out (None) gets the node's default (``MAX_RETRIES``, the
retry policy's ``max_retries``), so the store always records a complete job. A request the
store does not answer within ``timeout`` gets ``{"error": "store unavailable: ..."}``, so a
client never waits forever; resending is safe since every command is idempotent.

The fast lane: a gateway on a node with a worker pool holds ``lane_slots`` slots of that pool.
While one is free and it knows the leader, it adds ``lane`` to a submit of a job due now: the
leader's fencing token (computed from the election's ``LeaderChanged`` as the scheduler does),
its own node's worker and a lease. The store dispatches the job at once if it heads the ready
queue (see :mod:`actors.jobs.machine`), and the gateway hands it straight to its worker
(:class:`RunJobs` with ``lane=True``): submit to start is then one store write and no hop
through the leader. The slot comes back when the worker reports the job ended
(:class:`LaneFreed`), or at once if the store queued the job instead (then the leader is
nudged, as below), refused the token, failed, or did not answer. Priority order, fencing,
leases and retries are the store's as for any dispatch; a client's own ``lane`` (and ``direct``,
a producer's flag for Redis) is removed.

A submit that created a job due now sends the leader's scheduler a :class:`Nudge` (the gateway
follows the leader through its node's election actor), so a new job is dispatched at once
instead of at the scheduler's next tick: this is what keeps submit-to-start latency low. A
gateway nudges at most once per :data:`NUDGE_GAP` (2 ms): a submit within that time of the
last nudge is covered by one more nudge at its end (a nudge only says "look now", so under
load one per round is enough, and a lone submit is still nudged at once). A
cancel that closed a running attempt tells that attempt's worker (:class:`LeaseLost`), which
cancels the processor at once. A created job is announced as the event ``job.submitted``
(``id``, ``type``) for metrics and records.
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
from .machine import OPS
from .messages import SCHEDULER, WORKER, LaneFreed, LeaseLost, Nudge, RunJobs, ticket_of, worker_ref
from .protocol import UNAVAILABLE, StoreReply, StoreRequest
from .scheduler import fencing_token
from .store_client import StoreClient

NUDGE_GAP = 0.002
"""Seconds between two nudges of the leader from one gateway, at least (see the module docstring)."""

CLIENT_OPS = tuple(op for op in OPS if op not in ("ready", "dispatch", "renew", "maintain", "report"))
"""Commands a client may send through the gateway."""


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


@dataclass(frozen=True, slots=True)
class _NudgeNow:
    pass


class Gateway(Actor):
    """Relays client commands to the store (see the module docstring)."""

    def __init__(
        self,
        store: ActorRef,
        timeout: float = 5.0,
        default_max_retries: int = 3,
        *,
        nodes: tuple[str, ...] = (),
        lane_slots: int = 0,
        lease: float = 20.0,
    ) -> None:
        self.client = StoreClient(store, timeout)
        self.default_max_retries = default_max_retries
        self.nodes = nodes
        self.lane_slots = lane_slots
        self.lane_free = lane_slots
        self.lease = lease
        self.leader: str | None = None
        self.token: int | None = None  # the leader's fencing token, for the fast lane
        self.nudge_due = False
        self.last_nudge = float("-inf")

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.send(ActorRef(ctx.node_id, ELECTION), Subscribe())
        ctx.set_timer("sweep", 0.5, _Sweep())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, StoreRequest) and ctx.sender is not None:
            cmd = msg.command
            op = cmd.get("op") if isinstance(cmd, dict) else None
            if op not in CLIENT_OPS:
                why = f"unknown or reserved op {op!r}: use one of {', '.join(CLIENT_OPS)}"
                ctx.reply(StoreReply(msg.req, {"error": why}))
                return
            if op == "submit":
                cmd = self._submit_command(ctx, cmd)
            self.client.request(ctx, cmd, "relay", (ctx.sender, msg.req))
        elif isinstance(msg, StoreReply):
            p = self.client.take(msg.req)
            if p is not None:
                # A job the lane dispatched goes to the worker before the client hears back
                # (effects run in order): the worker's start is what submit-to-start measures.
                if p.command.get("op") == "submit":
                    self._on_submitted(ctx, p.command, msg.result)
                ctx.send(p.data[0], StoreReply(p.data[1], msg.result))
                if p.command.get("op") == "cancel":
                    _stop_cancelled(ctx, msg.result)
        elif isinstance(msg, LaneFreed):
            self.lane_free = min(self.lane_slots, self.lane_free + max(0, msg.n))
        elif isinstance(msg, _NudgeNow):
            self.nudge_due = False
            self.last_nudge = ctx.now
            if self.leader is not None:
                ctx.send(ActorRef(self.leader, SCHEDULER), Nudge())
        elif isinstance(msg, LeaderChanged):
            self.leader = msg.leader
            self.token = None if msg.leader is None else fencing_token(msg.epoch, msg.leader, self.nodes)
            self.last_nudge = float("-inf")
        elif isinstance(msg, _Sweep):
            ctx.set_timer("sweep", 0.5, _Sweep())
            for p in self.client.overdue(ctx.now):
                if "lane" in p.command:
                    self.lane_free = min(self.lane_slots, self.lane_free + 1)
                ctx.send(p.data[0], StoreReply(p.data[1], {"error": f"{UNAVAILABLE}: no answer in time"}))

    def _submit_command(self, ctx: Context, cmd: dict[str, Any]) -> dict[str, Any]:
        """A client's submit as sent to the store: default retries, and the fast lane if free."""
        job = cmd.get("job")
        if not isinstance(job, dict):
            return cmd
        out = {k: v for k, v in cmd.items() if k not in ("lane", "direct")}
        if job.get("max_retries") is None:
            out["job"] = {**job, "max_retries": self.default_max_retries}
        if self.lane_free > 0 and self.token is not None and job.get("scheduled_at") is None:
            self.lane_free -= 1
            at = ctx.wall
            out["lane"] = {
                "epoch": self.token,
                "worker": ctx.node_id,
                "at": at,
                "lease_until": at + self.lease,
            }
        return out

    def _on_submitted(self, ctx: Context, command: dict[str, Any], result: Any) -> None:
        """Start a job the fast lane dispatched, or give the slot back and nudge the leader."""
        lane = command.get("lane")
        dispatched = isinstance(result, dict) and result.get("lane") == "dispatched"
        if lane is not None and not dispatched:
            self.lane_free = min(self.lane_slots, self.lane_free + 1)
        if not _created(result):
            return
        job = result["job"]
        ctx.emit("job.submitted", id=job.get("id"), type=job.get("type"))
        if dispatched and job.get("attempts"):
            assert lane is not None
            ctx.send(ActorRef(ctx.node_id, WORKER), RunJobs(lane["epoch"], 0, (ticket_of(job),), lane=True))
        elif self.leader is not None and job.get("scheduled_at") is None:
            self._nudge(ctx)

    def _nudge(self, ctx: Context) -> None:
        """Nudge the leader now, or once ``NUDGE_GAP`` after the last nudge if that was sooner."""
        if self.nudge_due:
            return
        wait = self.last_nudge + NUDGE_GAP - ctx.now
        if wait <= 0:
            self.last_nudge = ctx.now
            assert self.leader is not None
            ctx.send(ActorRef(self.leader, SCHEDULER), Nudge())
        else:
            self.nudge_due = True
            ctx.set_timer("nudge", wait, _NudgeNow())


def _created(result: Any) -> bool:
    """True if a submit result created a job (not a known idempotency key)."""
    return isinstance(result, dict) and bool(result.get("created")) and isinstance(result.get("job"), dict)


def _stop_cancelled(ctx: Context, result: Any) -> None:
    """Tell the worker of a running attempt that a cancel closed to stop its processor."""
    job = result.get("job") if isinstance(result, dict) else None
    if not isinstance(job, dict) or not job.get("attempts"):
        return
    last = job["attempts"][-1]
    if last.get("outcome") == "CANCELLED":
        ctx.send(worker_ref(last["worker"]), LeaseLost(((job["id"], last["number"]),)))

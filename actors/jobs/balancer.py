"""The balancer actor: routes ready jobs to workers with the configured strategy.

How it works
------------
It lives beside the scheduler on every node and is consulted only by its own node's scheduler
(so only the leader's balancer is in use). It keeps a :class:`~actors.balancers.WorkerPool`:

- every :class:`WorkerStatus` (forwarded by the scheduler) registers or refreshes the worker:
  capacity, online, and its load = jobs it holds + jobs routed to it in rounds it had not yet
  received when it reported (``seen``), so a status that crosses a dispatch undercounts nothing;
  jobs it holds from the fast lane (``lane``) run in slots of their own and are left out;
- a worker silent for ``offline_after`` is marked offline (event ``worker.offline``) and never
  chosen; its next status brings it back (``worker.online``);
- :class:`Route` asks for a worker per job, most urgent first; the strategy
  (``LOAD_BALANCER_STRATEGY``) picks among available workers, and routing stops at the first
  job no worker can take, so the jobs placed are always a prefix of the priority order;
- :class:`~actors.jobs.inspect.InspectWorkers` is answered with a
  :class:`~actors.jobs.inspect.WorkersReport` describing the table (nothing changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor
from .._context import Context
from ..balancers import WorkerPool, make_strategy
from .config import JobsConfig
from .inspect import InspectWorkers, WorkerInfo, WorkersReport
from .messages import Route, Routed, WorkerStatus


@dataclass(frozen=True, slots=True)
class _Check:
    pass


class Balancer(Actor):
    """Routes jobs to workers (see the module docstring)."""

    def __init__(self, config: JobsConfig) -> None:
        self.cfg = config
        self.pool = WorkerPool(make_strategy(config.strategy))
        self.last_heard: dict[str, float] = {}
        self.routed: dict[str, list[tuple[int, int, float]]] = {}  # worker -> [(seq, n, at)]
        self.held: dict[str, tuple[tuple[str, int], ...]] = {}  # worker -> leases in its last status

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.set_timer("check", self.cfg.heartbeat_interval, _Check())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Route):
            self._check(ctx)
            ctx.reply(Routed(msg.req, self._route(ctx, msg)))
        elif isinstance(msg, WorkerStatus):
            self._on_status(ctx, msg)
        elif isinstance(msg, _Check):
            ctx.set_timer("check", self.cfg.heartbeat_interval, _Check())
            self._check(ctx)
        elif isinstance(msg, InspectWorkers):
            ctx.reply(self._report(ctx, msg.req))

    def _report(self, ctx: Context, req: int) -> WorkersReport:
        workers = tuple(
            WorkerInfo(
                id=v.id,
                capacity=v.capacity,
                load=v.active_jobs,
                held=self.held.get(v.id, ()),
                online=v.online,
                silent=round(max(0.0, ctx.now - self.last_heard.get(v.id, ctx.now)), 3),
            )
            for v in self.pool.views()
        )
        return WorkersReport(req, ctx.node_id, self.pool.strategy.name, workers)

    def _on_status(self, ctx: Context, msg: WorkerStatus) -> None:
        w = msg.worker
        was = self.pool.get(w).online if w in self.pool else None
        self.pool.add(w, msg.capacity, online=True)
        if was is False:
            ctx.emit("worker.online", worker=w)
        elif was is None:
            ctx.emit("worker.registered", worker=w, capacity=msg.capacity)
        self.last_heard[w] = ctx.now
        self.held[w] = tuple(msg.held)
        log = self.routed.get(w, [])
        horizon = ctx.now - self.cfg.offline_after
        log = [e for e in log if e[0] > msg.seen and e[2] >= horizon]
        self.routed[w] = log
        self.pool.set_active(w, len(msg.held) - msg.lane + sum(n for _, n, _ in log))

    def _check(self, ctx: Context) -> None:
        for w, heard in self.last_heard.items():
            if ctx.now - heard > self.cfg.offline_after and self.pool.get(w).online:
                self.pool.set_online(w, False)
                ctx.emit("worker.offline", worker=w, silent=round(ctx.now - heard, 3))

    def _route(self, ctx: Context, msg: Route) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        counts: dict[str, int] = {}
        for job_id, priority in msg.jobs:
            w = self.pool.assign(priority, ctx.random, ctx.now)
            if w is None:
                break
            out.append((job_id, w))
            counts[w] = counts.get(w, 0) + 1
        for w, n in counts.items():
            self.routed.setdefault(w, []).append((msg.req, n, ctx.now))
        return tuple(out)

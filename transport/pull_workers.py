"""Pull workers: external processes, in any language, that take jobs from a node and report back.

How it works
------------
An external worker registers with a node (``POST /workers/register`` in the HTTP API, which
calls :class:`PullWorkers`). The node spawns an ordinary job-engine
:class:`~actors.jobs.worker.Worker` actor for it, named ``pull-<id>``, whose worker id is
``"<node>/pull-<id>"`` and whose capacity is the one the worker registered with. To the
scheduler, the balancer and the store it is a worker like any other: it reports its status to
the leader, its heartbeats renew its leases, the store fences its reports by attempt.

What differs is who runs the jobs. The runtime hands that actor's ``ExecuteJob`` effects to
this registry (:meth:`~transport.runtime.NodeRuntime.set_executor`) instead of a processor:
each dispatched job waits in the worker's queue until the worker asks for it with
:meth:`PullWorkers.next` (a long poll of up to :data:`MAX_WAIT` seconds; the most urgent job
first). :meth:`PullWorkers.report` turns the outcome into the actor's ``JobDone``; the actor
reports it to the store and tells this registry the store's verdict (a
:class:`~actors.jobs.messages.ReportSettled` to the service ``$pull``), which ``report``
awaits and returns.

Liveness: every call from the worker (register, heartbeat, next, report) shows it is alive,
and so does a call in progress (a long poll, a report awaiting the store). A worker silent
for ``offline_after`` (the node's ``WORKER_OFFLINE_AFTER``) is marked OFFLINE and its actor
stopped: the actor's last status
tells the balancer it takes no more jobs, the leases it held run out in the store and the
scheduler requeues those jobs (counting an attempt), so they run elsewhere. A later call from
the worker brings it back with a fresh actor.

Timeouts: a job's ``timeout_seconds`` counts from when :meth:`next` hands it out (and, for a
job still queued, from when it was dispatched): past it, the attempt fails with ``timeout``
and is retried per the retry policy. A cancelled job, or one whose lease the store took away,
is dropped from the worker's queue; a later report of it answers 409.

Errors are :class:`PullError` with an HTTP-like ``status`` and one line: 400 a bad argument,
404 an unknown worker, 409 a job the worker does not hold (never given, cancelled, timed out,
lease lost, or refused by the store), 503 the node cannot take it now (report again).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import trio

from actors import ActorRef, ExecuteJob
from actors.jobs.messages import ReportSettled, Resize, worker_id
from actors.jobs.protocol import STORE
from actors.jobs.worker import Worker

from .node_handle import NodeHandle

SERVICE = "$pull"
"""The runtime service name the pull workers' verdicts come back to."""
ACTOR_PREFIX = "pull-"
"""A pull worker ``w7`` runs as actor ``pull-w7``."""
MAX_WAIT = 30.0
"""Longest long poll of :meth:`PullWorkers.next`, in seconds."""
MAX_CAPACITY = 1000
MAX_WORKERS = 1000
"""Registered workers kept at most; beyond it the longest-offline one is forgotten."""
REPORT_WAIT = 5.0
"""Seconds :meth:`PullWorkers.report` waits for the store's verdict before answering ``accepted: False``."""
MEMO = 1000
"""Settled jobs remembered per worker, so a repeated or late report gets the right answer."""
MAX_ERROR = 10_000
"""Longest error text a report may carry."""

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class PullError(Exception):
    """A pull-worker call refused: ``status`` 400 (bad value), 404 (unknown worker), 409 (a job
    this worker does not hold) or 503 (the node cannot take it now); ``str(e)`` is one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False, slots=True)
class _Ticket:
    key: str  # "<job id>#<attempt>", the actor's job key
    id: str
    attempt: int
    type: str
    payload: Any
    priority: int
    timeout: float
    deadline: float  # trio time: dispatch + timeout while queued, hand-out + timeout once held

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "payload": self.payload,
            "attempt": self.attempt,
            "priority": self.priority,
            "timeout_seconds": self.timeout,
        }


@dataclass(eq=False, slots=True)
class _Report:
    ok: bool
    settled: trio.Event = field(default_factory=trio.Event)
    accepted: bool = False
    status: str = ""
    why: str = ""


@dataclass(eq=False, slots=True)
class _Pull:
    id: str
    actor: str
    hostname: str
    capacity: int
    registered_at: float  # UNIX
    last_heartbeat: float  # UNIX
    last_seen: float  # trio time
    online: bool = True
    load: int | None = None
    calls: int = 0  # next/report calls in progress: the worker is alive while it waits on us
    queue: list[_Ticket] = field(default_factory=list)
    held: dict[str, _Ticket] = field(default_factory=dict)
    gone: OrderedDict[str, str] = field(default_factory=OrderedDict)  # key -> why it is not held
    reports: OrderedDict[str, _Report] = field(default_factory=OrderedDict)
    arrived: trio.Event = field(default_factory=trio.Event)

    def wake(self) -> None:
        self.arrived.set()
        self.arrived = trio.Event()


class _Executor:
    """The runtime's executor for one pull worker's actor (see :class:`transport.runtime.Executor`)."""

    def __init__(self, owner: PullWorkers, pull: _Pull) -> None:
        self.owner = owner
        self.pull = pull

    def execute(self, job: ExecuteJob) -> None:
        self.owner._enqueue(self.pull, job)

    def cancel(self, job_id: str, reason: str) -> None:
        self.owner._cancel(self.pull, job_id, reason)


class PullWorkers:
    """The node's registry of external pull workers (see the module docstring).

    Args:
        handle: the running node; its settings give the worker timing (``jobs``) and the store.
    """

    def __init__(self, handle: NodeHandle) -> None:
        self.handle = handle
        self.runtime = handle.runtime
        self.node_id = handle.node_id
        cfg = handle.settings.jobs
        self.config = cfg
        self.heartbeat_interval = cfg.heartbeat_interval
        self.offline_after = cfg.offline_after
        self.store = ActorRef(handle.settings.store_node or handle.node_id, STORE)
        self.sweep_every = min(0.25, cfg.heartbeat_interval / 2)
        self._workers: dict[str, _Pull] = {}
        self._by_actor: dict[str, _Pull] = {}
        self._inbox = self.runtime.add_service(SERVICE)

    # ---------------------------------------------------------------- the background task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take the store's verdicts and sweep for silent workers and overdue jobs until the
        runtime stops (run it in the node's nursery)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweeper)
            task_status.started()
            async with self._inbox:
                async for sender, msg in self._inbox:
                    if isinstance(msg, ReportSettled) and sender is not None:
                        self._settle(sender.name, msg)
            nursery.cancel_scope.cancel()

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(self.sweep_every)
            await self.sweep()

    async def sweep(self) -> None:
        """Mark silent workers OFFLINE (stopping their actors) and fail overdue jobs (once per tick)."""
        now = trio.current_time()
        for pull in list(self._workers.values()):
            if not pull.online:
                continue
            if pull.calls == 0 and now - pull.last_seen > self.offline_after:
                await self._go_offline(pull, now)
                continue
            for t in [t for t in pull.queue if t.deadline <= now]:
                if self._fail(pull, t, f"timeout: not taken by worker {pull.id} within {t.timeout:g} s"):
                    pull.queue.remove(t)
            for t in [t for t in pull.held.values() if t.deadline <= now]:
                if self._fail(pull, t, f"timeout: worker {pull.id} did not report within {t.timeout:g} s"):
                    del pull.held[t.key]

    # ---------------------------------------------------------------- the worker's calls

    def register(self, worker_id: str | None, hostname: str, capacity: int = 1) -> dict[str, Any]:
        """Register a worker (a new id if ``worker_id`` is None); again with a known id refreshes it.

        Returns:
            ``{"worker_id", "status": "ONLINE", "heartbeat_interval", "offline_after"}``.

        Raises:
            PullError: 400 a bad argument; 503 the node is not running or has too many workers.
        """
        wid = str(uuid.uuid4()) if worker_id is None else _check_id(worker_id, "worker_id")
        host = _check_hostname(hostname)
        cap = _check_int(capacity, "capacity", 1, MAX_CAPACITY)
        pull = self._workers.get(wid)
        if pull is None:
            self._make_room()
            now = time.time()
            pull = _Pull(wid, ACTOR_PREFIX + wid, host, cap, now, now, trio.current_time())
            self._start(pull)
            self._workers[wid] = pull
            self._by_actor[pull.actor] = pull
            self._emit("pull.registered", pull)
        else:
            pull.hostname = host
            if cap != pull.capacity:
                pull.capacity = cap
                if pull.online:
                    self.runtime.tell(ActorRef(self.node_id, pull.actor), Resize(cap))
            self._touch(pull)
        return {
            "worker_id": wid,
            "status": "ONLINE",
            "heartbeat_interval": self.heartbeat_interval,
            "offline_after": self.offline_after,
            "capacity": pull.capacity,
            "node": self.node_id,
        }

    def heartbeat(self, worker_id: str, load: int | None = None) -> dict[str, Any]:
        """The worker is alive (``load``: jobs it runs now, as it counts them).

        Raises:
            PullError: 400 a bad argument, 404 an unknown worker.
        """
        pull = self._get(worker_id)
        if load is not None:
            load = _check_int(load, "load", 0, 1_000_000)
        self._touch(pull)
        pull.load = load
        return {"worker_id": pull.id, "status": "ONLINE"}

    async def next(self, worker_id: str, wait: float = 0.0) -> dict[str, Any] | None:
        """The next job for the worker, waiting up to ``wait`` seconds for one (None: none came).

        Returns:
            ``{"id", "type", "payload", "attempt", "priority", "timeout_seconds"}`` or None.

        Raises:
            PullError: 400 a bad argument, 404 an unknown worker.
        """
        pull = self._get(worker_id)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
            raise PullError(400, f"wait must be a number of seconds from 0 to {MAX_WAIT:g}, got {wait!r}")
        self._touch(pull)
        deadline = trio.current_time() + wait
        pull.calls += 1
        try:
            while True:
                if pull.online and pull.queue:
                    best = max(pull.queue, key=lambda t: t.priority)  # max keeps FIFO among equals
                    pull.queue.remove(best)
                    best.deadline = trio.current_time() + best.timeout
                    pull.held[best.key] = best
                    return best.as_dict()
                if trio.current_time() >= deadline or not pull.online:
                    return None
                with trio.move_on_at(deadline):
                    await pull.arrived.wait()
        finally:
            pull.calls -= 1
            pull.last_seen = trio.current_time()

    async def report(
        self,
        worker_id: str,
        job_id: str,
        attempt: int,
        ok: bool,
        error: str | None = None,
        result: Any = None,
    ) -> dict[str, Any]:
        """The outcome of a job the worker took with :meth:`next`, recorded by the store.

        Repeating a report (same outcome) is safe and gets the same answer.

        Returns:
            ``{"accepted": True, "job_id", "attempt", "status"}`` once the store recorded it
            (``status``: the job's status now), or ``accepted: False`` with ``why`` if the store
            did not answer within :data:`REPORT_WAIT` s (the node keeps sending it).

        Raises:
            PullError: 400 a bad argument, 404 an unknown worker, 409 a job this worker does not
            hold (or whose report the store refused), 503 the node is too busy (report again).
        """
        pull = self._get(worker_id)
        jid = _check_job_id(job_id)
        number = _check_int(attempt, "attempt", 1, 1_000_000)
        if not isinstance(ok, bool):
            raise PullError(400, f"ok must be true or false, got {ok!r}")
        if error is not None and (not isinstance(error, str) or len(error) > MAX_ERROR):
            raise PullError(400, f"error must be a string of at most {MAX_ERROR} characters")
        self._touch(pull)
        key = f"{jid}#{number}"
        rep = pull.reports.get(key)
        if rep is None:
            ticket = pull.held.get(key)
            if ticket is None:
                raise PullError(409, self._not_held(pull, key, jid, number))
            reason = "" if ok else (error or "failed")
            if not self.runtime.job_done(pull.actor, key, ok, result=result, error=reason):
                raise PullError(503, f"worker {pull.id}'s actor is busy or stopped; report again")
            del pull.held[key]
            rep = pull.reports[key] = _Report(ok)
            _trim(pull.reports)
        elif rep.ok != ok:
            was = "success" if rep.ok else "failure"
            raise PullError(409, f"job {jid} attempt {number} was already reported as a {was}")
        pull.calls += 1
        try:
            with trio.move_on_after(REPORT_WAIT):
                await rep.settled.wait()
        finally:
            pull.calls -= 1
            pull.last_seen = trio.current_time()
        if not rep.settled.is_set():
            why = "the store has not confirmed it yet; the node keeps sending it (report again to check)"
            return {"accepted": False, "job_id": jid, "attempt": number, "why": why}
        if not rep.accepted:
            raise PullError(409, f"job {jid} attempt {number}: report refused ({rep.why})")
        return {"accepted": True, "job_id": jid, "attempt": number, "status": rep.status}

    def list(self) -> list[dict[str, Any]]:
        """Every known worker, by id: ``worker_id``, ``hostname``, ``capacity``, ``load``, ``held``,
        ``queued``, ``status`` (ONLINE/OFFLINE), ``last_heartbeat`` and ``registered_at`` (UNIX),
        and ``engine_id``, the worker id job attempts record (``"<node>/pull-<id>"``)."""
        out = []
        for wid in sorted(self._workers):
            pull = self._workers[wid]
            out.append(
                {
                    "worker_id": pull.id,
                    "hostname": pull.hostname,
                    "capacity": pull.capacity,
                    "load": len(pull.held) if pull.load is None else pull.load,
                    "held": len(pull.held),
                    "queued": len(pull.queue),
                    "status": "ONLINE" if pull.online else "OFFLINE",
                    "last_heartbeat": pull.last_heartbeat,
                    "registered_at": pull.registered_at,
                    "engine_id": self.engine_id(pull.id),
                }
            )
        return out

    def engine_id(self, worker_id: str) -> str:
        """The worker id the job engine (and job attempts) know pull worker ``worker_id`` by."""
        return worker_id_of(self.node_id, worker_id)

    # ---------------------------------------------------------------- internals

    def _get(self, worker_id: str) -> _Pull:
        pull = self._workers.get(_check_id(worker_id, "worker_id"))
        if pull is None:
            raise PullError(404, f"unknown worker {worker_id!r} on node {self.node_id}: register it first")
        return pull

    def _touch(self, pull: _Pull) -> None:
        pull.last_seen = trio.current_time()
        pull.last_heartbeat = time.time()
        if not pull.online:
            self._start(pull)
            self._emit("pull.online", pull)

    def _start(self, pull: _Pull) -> None:
        actor = Worker(
            self.config, self.store, capacity=pull.capacity, notify=ActorRef(self.node_id, SERVICE)
        )
        self.runtime.set_executor(pull.actor, _Executor(self, pull))
        try:
            self.runtime.spawn(pull.actor, actor)
        except (RuntimeError, ValueError) as e:
            self.runtime.set_executor(pull.actor, None)
            raise PullError(503, f"cannot start worker {pull.id}: {e}") from None
        pull.online = True
        pull.last_seen = trio.current_time()

    async def _go_offline(self, pull: _Pull, now: float) -> None:
        pull.online = False
        self.runtime.set_executor(pull.actor, None)
        why = f"worker {pull.id} went offline (silent for {self.offline_after:g} s)"
        for t in [*pull.queue, *pull.held.values()]:
            _remember(pull.gone, t.key, why)
        pull.queue.clear()
        pull.held.clear()
        pull.load = None
        pull.wake()
        self._emit("pull.offline", pull, silent=round(now - pull.last_seen, 3))
        await self.runtime.stop_actor(pull.actor)

    def _make_room(self) -> None:
        if len(self._workers) < MAX_WORKERS:
            return
        offline = [p for p in self._workers.values() if not p.online]
        if not offline:
            raise PullError(503, f"node {self.node_id} already has {MAX_WORKERS} online workers")
        oldest = min(offline, key=lambda p: p.last_heartbeat)
        del self._workers[oldest.id]
        del self._by_actor[oldest.actor]

    def _enqueue(self, pull: _Pull, job: ExecuteJob) -> None:
        key = job.job_id
        if key in pull.held or any(t.key == key for t in pull.queue):
            return
        # The actor has just noted the ticket it runs this for: take id, attempt and priority from it.
        actor = self.runtime.actor(pull.actor)
        run = actor.running.get(key) if isinstance(actor, Worker) else None
        jid, _, number = key.rpartition("#")
        jid, attempt, priority = (
            (run.id, run.attempt, run.priority) if run is not None else (jid, int(number or 0), 0)
        )
        due = trio.current_time() + job.timeout
        pull.queue.append(_Ticket(key, jid, attempt, job.job_type, job.payload, priority, job.timeout, due))
        pull.gone.pop(key, None)
        pull.wake()

    def _cancel(self, pull: _Pull, key: str, reason: str) -> None:
        ticket = pull.held.pop(key, None)
        if ticket is None:
            for t in pull.queue:
                if t.key == key:
                    ticket = t
                    pull.queue.remove(t)
                    break
        if ticket is None:
            return
        _remember(pull.gone, key, f"cancelled: {reason}")
        self.runtime.job_done(pull.actor, key, False, error=f"cancelled: {reason}")

    def _fail(self, pull: _Pull, ticket: _Ticket, error: str) -> bool:
        if not self.runtime.job_done(pull.actor, ticket.key, False, error=error):
            return False  # the actor's mailbox is full: the next sweep tries again
        _remember(pull.gone, ticket.key, error)
        return True

    def _not_held(self, pull: _Pull, key: str, jid: str, number: int) -> str:
        why = pull.gone.get(key)
        if why is not None:
            return f"job {jid} attempt {number} is no longer worker {pull.id}'s: {why}"
        if any(t.key == key for t in pull.queue):
            return f"job {jid} attempt {number} was not handed to worker {pull.id} yet: take it with next"
        return f"worker {pull.id} does not hold job {jid} attempt {number}"

    def _settle(self, actor: str, msg: ReportSettled) -> None:
        pull = self._by_actor.get(actor)
        rep = None if pull is None else pull.reports.get(f"{msg.id}#{msg.attempt}")
        if rep is None or rep.settled.is_set():
            return
        rep.accepted, rep.status, rep.why = msg.accepted, msg.status, msg.why
        rep.settled.set()

    def _emit(self, kind: str, pull: _Pull, **fields: Any) -> None:
        self.handle.events.emit(
            self.node_id, SERVICE, kind, {"worker": pull.id, "capacity": pull.capacity, **fields}
        )


def worker_id_of(node_id: str, pull_id: str) -> str:
    """The job engine's worker id of pull worker ``pull_id`` on node ``node_id``."""
    return worker_id(ActorRef(node_id, ACTOR_PREFIX + pull_id))


def _remember(memo: OrderedDict[str, str], key: str, why: str) -> None:
    memo[key] = why
    memo.move_to_end(key)
    _trim(memo)


def _trim(memo: OrderedDict[str, Any]) -> None:
    while len(memo) > MEMO:
        memo.popitem(last=False)


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise PullError(400, f"{what} must be 1 to 64 of A-Z a-z 0-9 _ . -, got {_short(value)}")
    return value


def _check_job_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 256 or not value.isprintable():
        raise PullError(400, f"job_id must be a job id (1 to 256 printable characters), got {_short(value)}")
    return value


def _check_hostname(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 255 or not value.isprintable():
        raise PullError(400, f"hostname must be 1 to 255 printable characters, got {_short(value)}")
    return value


def _check_int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return _check_int(int(value), what, low, high)
        raise PullError(400, f"{what} must be an integer from {low} to {high}, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

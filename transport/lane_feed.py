"""The direct lane, node side: jobs that producers submit straight to Redis start on this node.

How it works
------------
A producer (:class:`transport.redis_producer.RedisProducer`) submits to the ``redis`` store
itself, as Huey's or RQ's producers do, with ``direct: true``. The store's script then
dispatches the job at once, if it heads the ready queue and some node has a free direct-lane
credit: it writes the job ``RUNNING`` under that node worker's lease and pushes its ticket to
the list ``P:lane:<worker>``. Otherwise the job is queued as usual and the script pushes a
nudge to ``P:nudge`` (at most one item), which the leader's feed turns into a :class:`Nudge`
of its scheduler. Submit to start is then two process wake-ups (Redis, this node), not three
(the gateway's node, Redis, the node again).

:class:`LaneFeed` is the service ``lanefeed`` of a node with a worker pool on the ``redis``
store:

- it registers the worker (``lane_open``: ``slots`` free credits, the lease, alive until
  ``now + alive_for``; a list left from an earlier life is dropped, whose jobs' leases run out
  and are requeued), and refreshes the registration every ``refresh`` seconds; a node that
  stops refreshing is passed over once ``alive_for`` ran out;
- one task waits in ``BLPOP`` on the worker's list (and, while this node leads, on the nudge
  list) and hands each ticket to the worker as :class:`RunJobs` with ``lane=True`` and
  ``notify="lanefeed"``; the worker's processor runs in that very task (the runtime lends the
  job, :meth:`~transport.runtime.NodeRuntime.borrow_job`) while another task waits: one that
  finished its job and idles (tasks are reused) or, if none does, a new one;
- the worker's :class:`LaneFreed` counts finished lane jobs; the count goes to Redis
  (``lane_credit``, idempotent: the script turns only the increase since the last count into
  credits) at once when the connection is free, and with every refresh;
- a watchdog drops the waiting connection if a ``BLPOP`` stays unanswered ``stuck`` seconds
  past ``refresh`` (a server that took it and went silent), so waiting starts over.

Leases, renewals, reports and retries are those of any dispatch. A registration that vanished
(Redis lost its data) is opened again with the credits this node does not use. An unreachable
Redis (down, still loading its data after a restart, or refusing) is one
``lanefeed.unavailable`` line; the feed retries every ``RETRY`` seconds and the node keeps
running (``lanefeed.recovered`` once a refresh goes through again). A
graceful stop closes the registration (``lane_close``) so producers stop choosing this node.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import trio

from actors import ActorRef, ExecuteJob
from actors.elections._common import NAME as ELECTION
from actors.elections._common import LeaderChanged, Subscribe
from actors.jobs.messages import SCHEDULER, WORKER, LaneFreed, Nudge, RunJobs

from .redis_conn import RedisConn, RedisReplyError, RedisUnavailable
from .runtime import NodeRuntime, ServiceItem
from .stores.base import StoreUnavailable
from .stores.redis_store import RedisJobStore, lane_key, lane_ticket, nudge_key

NAME = "lanefeed"
"""The service's name on its node (the worker's ``RunJobs.notify``)."""
REFRESH = 1.0
"""Seconds between two refreshes of the registration (and the longest ``BLPOP`` wait)."""
ALIVE_FOR = 3.0
"""Seconds a registration stays valid without a refresh."""
RETRY = 0.5
"""Seconds before a call that found Redis unreachable is tried again."""
STUCK = 5.0
"""Seconds past ``refresh`` after which an unanswered BLPOP counts as a dead connection."""


class LaneFeed:
    """This node's side of the direct lane (see the module docstring).

    Args:
        host, port, db, password, prefix: the ``redis`` store (as the node's store service has it).
        worker: the worker id the script writes as lease holder (the node id for its pool).
        slots: direct-lane jobs this node runs at once, beyond its worker pool.
        lease: seconds a direct dispatch holds its job (renewed by the worker's heartbeats).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        prefix: str = "troupe",
        worker: str,
        slots: int,
        lease: float,
        refresh: float = REFRESH,
        alive_for: float = ALIVE_FOR,
        stuck: float = STUCK,
    ) -> None:
        if slots < 1:
            raise ValueError(f"direct lane slots must be >= 1, got {slots}")
        if alive_for <= refresh:
            raise ValueError(f"alive_for ({alive_for:g} s) must exceed refresh ({refresh:g} s)")
        self.control = RedisJobStore(host, port, db, password, prefix)
        # No per-call timeout on the waiting connection (its cancel scope costs on every job's
        # path): BLPOP returns within ``refresh``, and _watch aborts a wait that does not.
        self.waiting = RedisConn(host, port, db, password, timeout=None)
        self._waiting_since: float | None = None
        self.prefix = prefix
        self.worker = worker
        self.slots = slots
        self.lease = lease
        self.refresh = refresh
        self.alive_for = alive_for
        self.stuck = stuck
        self.leading = False
        self.running = 0  # tickets handed to the worker and not freed yet
        self.freed = 0  # lane jobs freed since the registration was opened
        self.started = 0  # tickets handed to the worker in all
        self.tasks = 0  # tasks started to wait for tickets (reused from job to job)
        self._credit_due = trio.Event()
        self._failing = False
        self._idle: list[trio.Event] = []  # feed tasks done with their job, waiting to wait again

    async def run(
        self, runtime: NodeRuntime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the direct lane until the runtime stops or this is cancelled.

        Raises:
            StoreUnavailable: Redis could not be reached to register (nothing was changed).
        """
        inbox = runtime.add_service(NAME)
        me = ActorRef(runtime.node_id, NAME)
        try:
            await self.control.open()
            await self._open()
            runtime.tell(ActorRef(runtime.node_id, ELECTION), Subscribe(), sender=me)
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen, inbox, nursery)
                nursery.start_soon(self._credits, runtime)
                nursery.start_soon(self._watch, runtime)
                nursery.start_soon(self._wait_tickets, runtime, me, nursery)
        finally:
            runtime.remove_service(NAME)
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                with contextlib.suppress(StoreUnavailable, OSError):
                    await self.control.execute([{"op": "lane_close", "worker": self.worker}])
                await self.control.close()
                await self.waiting.aclose()

    # --- registration and credits -------------------------------------------------------------

    async def _open(self) -> None:
        free = max(0, self.slots - self.running)
        command = {
            "op": "lane_open",
            "worker": self.worker,
            "free": free,
            "lease": self.lease,
            "alive_until": time.time() + self.alive_for,
        }
        await self.control.execute([command])
        self.freed = 0

    async def _credits(self, runtime: NodeRuntime) -> None:
        """Send the freed count at once when due, and with every refresh."""
        while True:
            with trio.move_on_after(self.refresh):
                await self._credit_due.wait()
            self._credit_due = trio.Event()
            command = {
                "op": "lane_credit",
                "worker": self.worker,
                "freed": self.freed,
                "slots": self.slots,
                "alive_until": time.time() + self.alive_for,
            }
            try:
                (result,) = await self.control.execute([command])
                if not result.get("ok"):
                    await self._open()
                    runtime.events.emit(runtime.node_id, NAME, "lanefeed.reopened", {"worker": self.worker})
                self._recovered(runtime)
            except Exception as e:  # Redis down, loading, or refusing: say so once, try again
                self._unavailable(runtime, _one_line(e))
                await trio.sleep(RETRY)

    async def _watch(self, runtime: NodeRuntime) -> None:
        """Abort a BLPOP that Redis took and never answered (the connection is then opened again)."""
        while True:
            await trio.sleep(self.refresh)
            since = self._waiting_since
            if since is not None and trio.current_time() - since > self.refresh + self.stuck:
                self.waiting.abort()
                self._unavailable(runtime, f"redis at {self.waiting.address}: BLPOP unanswered")

    async def _listen(self, inbox: trio.MemoryReceiveChannel[ServiceItem], nursery: trio.Nursery) -> None:
        """Freed lane slots and leader changes; the end of the channel (the runtime stopped) ends all."""
        async with inbox:
            async for _, msg in inbox:
                if isinstance(msg, LaneFreed) and msg.n > 0:
                    self.running = max(0, self.running - msg.n)
                    self.freed += msg.n
                    self._credit_due.set()
                elif isinstance(msg, LeaderChanged):
                    self.leading = msg.leader == self.worker
        nursery.cancel_scope.cancel()

    # --- tickets --------------------------------------------------------------------------------

    async def _wait_tickets(self, runtime: NodeRuntime, me: ActorRef, nursery: trio.Nursery) -> None:
        """One of the feed's tasks: it waits for tickets while it is the waiting one, runs the
        job of the ticket it got after handing the waiting over, then idles until handed it back.

        A task is thus reused from job to job: handing the waiting to an idle task is one
        ``Event.set``, cheaper on a job's path to its start than a new task (``start_soon``)."""
        self.tasks += 1
        while True:
            job = await self._next_job(runtime, me)
            if self._idle:
                self._idle.pop().set()  # the most recently idle task: the warmest
            else:
                nursery.start_soon(self._wait_tickets, runtime, me, nursery)
            await runtime.run_borrowed(job)
            woken = trio.Event()
            self._idle.append(woken)
            await woken.wait()

    async def _next_job(self, runtime: NodeRuntime, me: ActorRef) -> ExecuteJob:
        """Wait for tickets (and nudges, while leading) until one gives this task its job to run."""
        mine, nudges = lane_key(self.prefix, self.worker), nudge_key(self.prefix)
        node = runtime.node_id
        while True:
            keys: list[Any] = [mine, nudges] if self.leading else [mine]
            self._waiting_since = trio.current_time()
            try:
                reply = await self.waiting.execute("BLPOP", *keys, repr(self.refresh))
            except (RedisUnavailable, RedisReplyError) as e:  # down, or LOADING after a restart
                self._waiting_since = None
                self._unavailable(runtime, _one_line(e))
                await trio.sleep(RETRY)
                continue
            self._waiting_since = None
            if reply is None:
                continue
            key, raw = reply
            if key == nudges.encode():
                runtime.tell(ActorRef(node, SCHEDULER), Nudge(), sender=me)
                continue
            try:
                ticket = lane_ticket(raw)
            except ValueError as e:
                runtime.events.emit(node, NAME, "lanefeed.bad_ticket", {"level": "error", "error": str(e)})
                continue
            self.running += 1
            self.started += 1
            with runtime.borrow_job() as borrowed:
                run = RunJobs(0, 0, (ticket,), lane=True, notify=NAME)
                runtime.tell(ActorRef(node, WORKER), run, sender=me)
            if borrowed.job is not None:
                return borrowed.job

    # --- reporting ------------------------------------------------------------------------------

    def _unavailable(self, runtime: NodeRuntime, why: str) -> None:
        if not self._failing:
            self._failing = True
            what = {"level": "error", "error": why}
            runtime.events.emit(runtime.node_id, NAME, "lanefeed.unavailable", what)

    def _recovered(self, runtime: NodeRuntime) -> None:
        if self._failing:
            self._failing = False
            runtime.events.emit(runtime.node_id, NAME, "lanefeed.recovered", {"worker": self.worker})


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, (StoreUnavailable, RedisUnavailable)) else f"{type(e).__name__}: {text}"

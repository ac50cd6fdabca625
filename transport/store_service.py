"""The job store as the actor named ``store``: a backend hosted inside a node runtime.

How it works
------------
Actors reach the job queue by sending :class:`~actors.jobs.protocol.StoreRequest` to the actor
``store`` and wait for :class:`~actors.jobs.protocol.StoreReply` with the same request number.
A backend (:mod:`transport.stores`) must await real I/O, so it cannot be a pure actor; the
:class:`StoreService` takes the name instead, through ``NodeRuntime.add_service``, and runs
one loop:

1. wait for a request, then take every request already queued, up to ``max_batch``: the
   scheduler's commands (:data:`URGENT_OPS`) first, then the others in arrival order (a
   dispatch round thus never waits behind a long queue of submits);
2. hand their commands to ``backend.execute`` in one call (one transaction, one fsync for the
   SQLite store: under load, batches grow and the cost per command falls);
3. send each requester ``StoreReply(req, result)`` from ``store@<node>``, only after
   ``execute`` returned, so every acknowledged command is already durable.

Lanes: given several backends over one shared server (``redis``: one connection each), the
service runs one such loop per backend, all taking batches from the same queue, so a batch is
applied while the next one is gathered and sent instead of waiting for it: the store's round
trips overlap. Requests taken by different lanes may reach the server in either order, as
requests of different nodes always do; each one is applied atomically and answered only once
durable, and every command is idempotent. A backend that holds the queue itself (SQLite,
memory) is given once: one lane.

A request delivered while a lane waits idle, with nothing queued, is sent at once if the
backend can (:class:`~transport.stores.base.BeginningBackend`, the ``redis`` store): the
service's ``admit`` hook, called in the delivering task, sends it on the lane's connection, and
the lane, woken by it, only reads the reply. A lone submit thus reaches Redis without waiting for
a scheduler pass to run the lane first.

A job its answers start (a fast-lane submit dispatched to this node's worker) is borrowed from
the runtime (:meth:`~transport.runtime.NodeRuntime.borrow_job`): the lane starts a successor
lane and runs the job itself, so the job starts right after the store's reply instead of a
scheduler pass later.

If the backend is unavailable (:class:`~transport.stores.StoreUnavailable`) every request of
the batch is answered ``{"error": "store unavailable: <why>"}`` (nothing was applied; the
requesters retry) and the loop goes on with the next batch. Any other exception from the
backend is a bug: it is answered the same way with ``store error: ...`` and reported as one
``store.error`` event. A message that is not a ``StoreRequest`` is dropped with one
``store.dropped`` event. A request without a sender is applied but cannot be answered.

Usage, next to the runtime in one nursery::

    runtime = await nursery.start(NodeRuntime(...).serve)
    await nursery.start(StoreService(SqliteJobStore(path)).run, runtime)

The service ends when the runtime stops (its channel closes) or when cancelled; it closes the
backend either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import trio

from actors import ActorRef, ExecuteJob
from actors.jobs.protocol import STORE, UNAVAILABLE, StoreReply, StoreRequest

from .runtime import NodeRuntime, ServiceItem
from .stores.base import BeginningBackend, JobStoreBackend, StoreUnavailable

URGENT_OPS = frozenset({"ready", "dispatch", "renew", "maintain"})
"""The scheduler's commands: they go first, since every dispatch waits for them."""

CLOSE_TIMEOUT = 10.0
"""Seconds the service waits for ``backend.close()`` when it ends."""


class StoreService:
    """Hosts ``backend`` as the actor :data:`~actors.jobs.protocol.STORE` (see module docstring).

    Args:
        backend: the job store backend (opened by :meth:`run`, closed when it ends), or several
            backends over one shared server, one lane each (see the module docstring).
        max_batch: most commands handed to one ``backend.execute`` call.
        capacity: requests that may wait in the service's channel (and as many again in its
            queues); more are dropped and counted like a full mailbox.

    Attributes:
        batches: ``execute`` calls made; ``requests``: requests answered (or applied);
        ``begun``: requests sent as they were delivered (see the module docstring).
    """

    def __init__(
        self,
        backend: JobStoreBackend | Sequence[JobStoreBackend],
        *,
        max_batch: int = 512,
        capacity: int = 10_000,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backends: list[JobStoreBackend] = list(backend) if isinstance(backend, Sequence) else [backend]
        if not self.backends:
            raise ValueError("StoreService needs at least one backend")
        self.backend = self.backends[0]
        self.max_batch = max_batch
        self.capacity = capacity
        self.batches = 0
        self.requests = 0
        self.begun = 0
        self._urgent: deque[ServiceItem] = deque()
        self._normal: deque[ServiceItem] = deque()
        # Backends of the lanes waiting in inbox.receive(), in the order they wait (which is the
        # order the channel hands them items): the first gets the next message delivered.
        self._parked: list[JobStoreBackend] = []
        self._beginning = {id(b) for b in self.backends if isinstance(b, BeginningBackend)}
        self._bug = ""  # an error of backend.begin(), reported by the lane as store.error

    async def run(
        self, runtime: NodeRuntime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve requests for ``store`` on ``runtime`` until it stops or this is cancelled.

        Requests that arrive while the backend opens wait in the channel. ``task_status`` is
        started once the backend is open.

        Raises:
            StoreUnavailable: the backend could not be opened (the name is released).
            ValueError: another actor or service already has the name ``store``.
        """
        inbox = runtime.add_service(STORE, self.capacity, admit=self._admit)
        me = ActorRef(runtime.node_id, STORE)
        opened: list[JobStoreBackend] = []
        try:
            for backend in self.backends:
                await backend.open()
                opened.append(backend)
            task_status.started()
            async with inbox, trio.open_nursery() as nursery:
                for backend in self.backends:
                    nursery.start_soon(self._lane, runtime, me, backend, inbox, nursery)
        finally:
            runtime.remove_service(STORE)
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                for backend in opened:
                    await backend.close()

    def _admit(self, sender: ActorRef | None, msg: Any) -> Any:
        """What the runtime queues for ``msg`` as it is delivered: the message, or the request
        already sent on the connection of the lane it wakes (see the module docstring)."""
        if not self._parked:
            return msg  # every lane is busy: it is queued
        backend = self._parked.pop(0)  # the lane the channel hands this item to
        if self._urgent or self._normal or not isinstance(msg, StoreRequest):
            return msg
        if id(backend) not in self._beginning:
            return msg
        assert isinstance(backend, BeginningBackend)
        try:
            begun = backend.begin([msg.command])
        except Exception as e:  # a bug: the lane applies the request as usual instead
            self._bug = f"{type(e).__name__}: {e}"
            return msg
        if begun is None:
            return msg
        self.begun += 1
        return _Begun(backend, msg, begun)

    def _queue(self, item: ServiceItem) -> None:
        msg = item[1]
        cmd = msg.command if isinstance(msg, StoreRequest) else None
        op = cmd.get("op") if isinstance(cmd, dict) else None
        (self._urgent if op in URGENT_OPS else self._normal).append(item)

    def _take_queued(self, inbox: trio.MemoryReceiveChannel[ServiceItem]) -> bool:
        """Move what waits in ``inbox`` to the queues (up to ``capacity``); True if it ended."""
        while len(self._urgent) + len(self._normal) < self.capacity:
            try:
                self._queue(inbox.receive_nowait())
            except trio.WouldBlock:
                return False
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return True
        return False

    async def _lane(
        self,
        runtime: NodeRuntime,
        me: ActorRef,
        backend: JobStoreBackend,
        inbox: trio.MemoryReceiveChannel[ServiceItem],
        nursery: trio.Nursery,
    ) -> None:
        """Take a batch of what is queued (the scheduler's commands first), apply it with
        ``backend`` and answer; until the channel ends (then every lane is cancelled), or until
        an answer starts a job, which this task runs after starting its successor."""
        while True:
            ended = self._take_queued(inbox)
            if not self._urgent and not self._normal:
                if ended:
                    nursery.cancel_scope.cancel()
                    return
                self._parked.append(backend)
                try:
                    item = await inbox.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    nursery.cancel_scope.cancel()
                    return
                finally:
                    if backend in self._parked:
                        self._parked.remove(backend)
                if self._bug:
                    why, self._bug = self._bug, ""
                    runtime.events.emit(
                        runtime.node_id, STORE, "store.error", {"level": "error", "error": why}
                    )
                sender, msg = item
                if isinstance(msg, _Begun):
                    job = await self._serve(runtime, me, msg.backend, [(sender, msg.request)], msg)
                    if job is not None:
                        nursery.start_soon(self._lane, runtime, me, backend, inbox, nursery)
                        await runtime.run_borrowed(job)
                        return
                    continue
                self._queue(item)
                self._take_queued(inbox)
            batch: list[ServiceItem] = []
            for queue in (self._urgent, self._normal):
                while queue and len(batch) < self.max_batch:
                    batch.append(queue.popleft())
            job = await self._serve(runtime, me, backend, batch)
            if job is not None:
                nursery.start_soon(self._lane, runtime, me, backend, inbox, nursery)
                await runtime.run_borrowed(job)
                return

    async def _serve(
        self,
        runtime: NodeRuntime,
        me: ActorRef,
        backend: JobStoreBackend,
        items: list[ServiceItem],
        begun: _Begun | None = None,
    ) -> ExecuteJob | None:
        """Apply and answer ``items`` (whose commands ``begun`` already sent, if given); the job
        the answers started, if this task must run it."""
        requests: list[tuple[ActorRef | None, StoreRequest]] = []
        for sender, msg in items:
            if isinstance(msg, StoreRequest):
                requests.append((sender, msg))
            else:
                runtime.events.emit(
                    runtime.node_id,
                    STORE,
                    "store.dropped",
                    {"message": type(msg).__name__, "sender": str(sender), "why": "not a StoreRequest"},
                )
        if not requests:
            return None
        commands: list[Any] = [r.command for _, r in requests]
        n = len(requests)
        try:
            if begun is None:
                results = await backend.execute(commands)
            else:
                assert isinstance(backend, BeginningBackend)
                results = await backend.finish(begun.sent)
            if len(results) != n:
                raise RuntimeError(f"backend answered {len(results)} results for {n} commands")
        except StoreUnavailable as e:
            results = [{"error": f"{UNAVAILABLE}: {e}"} for _ in range(n)]
            runtime.events.emit(runtime.node_id, STORE, "store.unavailable", {"error": str(e), "requests": n})
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
            results = [{"error": f"store error: {why}"} for _ in range(n)]
            runtime.events.emit(
                runtime.node_id, STORE, "store.error", {"level": "error", "error": why, "requests": n}
            )
        self.batches += 1
        self.requests += len(requests)
        with runtime.borrow_job() as borrowed:
            for (sender, request), result in zip(requests, results, strict=True):
                if sender is not None:
                    runtime.tell(sender, StoreReply(request.req, result), sender=me)
        return borrowed.job


class _Begun:
    """A request :meth:`StoreService._admit` already sent with ``backend`` (``sent`` is what its
    ``begin`` returned), queued for the lane of that backend to answer."""

    __slots__ = ("backend", "request", "sent")

    def __init__(self, backend: JobStoreBackend, request: StoreRequest, sent: Any) -> None:
        self.backend = backend
        self.request = request
        self.sent = sent

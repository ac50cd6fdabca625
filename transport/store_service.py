"""The job store as the actor named ``store``: a backend hosted inside a node runtime.

How it works
------------
Actors reach the job queue by sending :class:`~actors.jobs.protocol.StoreRequest` to the actor
``store`` and wait for :class:`~actors.jobs.protocol.StoreReply` with the same request number.
A backend (:mod:`transport.stores`) must await real I/O, so it cannot be a pure actor; the
:class:`StoreService` takes the name instead, through ``NodeRuntime.add_service``, and runs
one loop:

1. wait for a request, then take every request already queued, up to ``max_batch``;
2. hand their commands to ``backend.execute`` in one call (one transaction, one fsync for the
   SQLite store: under load, batches grow and the cost per command falls);
3. send each requester ``StoreReply(req, result)`` from ``store@<node>``, only after
   ``execute`` returned, so every acknowledged command is already durable.

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

from typing import Any

import trio

from actors import ActorRef
from actors.jobs.protocol import STORE, UNAVAILABLE, StoreReply, StoreRequest

from .runtime import NodeRuntime, ServiceItem
from .stores.base import JobStoreBackend, StoreUnavailable

CLOSE_TIMEOUT = 10.0
"""Seconds the service waits for ``backend.close()`` when it ends."""


class StoreService:
    """Hosts ``backend`` as the actor :data:`~actors.jobs.protocol.STORE` (see module docstring).

    Args:
        backend: the job store backend (opened by :meth:`run`, closed when it ends).
        max_batch: most commands handed to one ``backend.execute`` call.
        capacity: requests that may wait; more are dropped and counted like a full mailbox.

    Attributes:
        batches: ``execute`` calls made; ``requests``: requests answered (or applied).
    """

    def __init__(self, backend: JobStoreBackend, *, max_batch: int = 512, capacity: int = 10_000):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backend = backend
        self.max_batch = max_batch
        self.capacity = capacity
        self.batches = 0
        self.requests = 0

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
        inbox = runtime.add_service(STORE, self.capacity)
        me = ActorRef(runtime.node_id, STORE)
        try:
            await self.backend.open()
            task_status.started()
            async with inbox:
                while True:
                    try:
                        first = await inbox.receive()
                    except trio.EndOfChannel:
                        return
                    batch = [first]
                    while len(batch) < self.max_batch:
                        try:
                            batch.append(inbox.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._serve(runtime, me, batch)
        finally:
            runtime.remove_service(STORE)
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
                await self.backend.close()

    async def _serve(self, runtime: NodeRuntime, me: ActorRef, items: list[ServiceItem]) -> None:
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
            return
        commands: list[Any] = [r.command for _, r in requests]
        n = len(requests)
        try:
            results = await self.backend.execute(commands)
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
        for (sender, request), result in zip(requests, results, strict=True):
            if sender is not None:
                runtime.tell(sender, StoreReply(request.req, result), sender=me)

"""Producers that submit jobs straight to the ``redis`` store: the direct lane's client side.

How it works
------------
:class:`RedisProducer` writes a submit to Redis itself, as Huey's or RQ's producers do,
instead of sending it to a node's gateway, which would write it for them. The job is checked
here with the same rules (:func:`transport.jobs_client.new_job`), gets the default
``max_retries`` a gateway would add, and is written by the store's own script with
``direct: true``: if it heads the ready queue and a node has a free direct-lane credit, it is
dispatched to that node at once (:mod:`transport.lane_feed`); otherwise it is queued and the
leader nudged. The acknowledgement is Redis' reply, so a submit is acknowledged once Redis
holds it, exactly as through a gateway (as durable as the server's ``appendfsync``).

Submits from many tasks are combined: a submit finding a connection free sends at once (no
scheduler pass); submits made meanwhile wait and go together, pipelined, in the next round
trip, on one of ``connections`` connections. A submit is idempotent by job id (and by
idempotency key), so one whose reply was lost can be sent again; a submit whose caller was
cancelled may still be applied.

Only ``submit`` goes direct; reading jobs, cancelling and the dead-letter queue go through a
node (:class:`~transport.jobs_client.JobClient`), or :meth:`RedisProducer.request` for any
store command. Usage::

    async with RedisProducer(port=6379) as producer:
        job = await producer.submit("email", {"to": "a@example.com"}, priority="high")
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

from actors.jobs import Job, RetryPolicy
from actors.jobs._plain import job_to_plain

from .jobs_client import JobDict, JobError, make_job
from .stores.base import StoreUnavailable
from .stores.redis_store import RedisJobStore

MAX_BATCH = 256
"""Submits sent in one round trip, at most."""


class _Pending:
    __slots__ = ("command", "done", "error", "result")

    def __init__(self, command: dict[str, Any]) -> None:
        self.command = command
        self.done = trio.Event()
        self.result: dict[str, Any] | None = None
        self.error: str | None = None


class RedisProducer:
    """Submits jobs straight to a Redis job store (see the module docstring).

    Args:
        host, port, db, password, prefix: the store, as the nodes' ``REDIS_*`` settings name it.
        default_max_retries: ``max_retries`` of a job submitted without one (the nodes'
            ``MAX_RETRIES``; the retry policy's default if None).
        connections: connections to Redis; round trips on them overlap.
        timeout: seconds a round trip may take before the submit fails as unavailable.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        prefix: str = "troupe",
        *,
        default_max_retries: int | None = None,
        connections: int = 2,
        timeout: float = 30.0,
    ) -> None:
        if connections < 1:
            raise ValueError(f"a producer needs at least 1 connection, got {connections}")
        self.default_max_retries = (
            RetryPolicy().max_retries if default_max_retries is None else default_max_retries
        )
        self._stores = [
            RedisJobStore(host, port, db, password, prefix, timeout=timeout) for _ in range(connections)
        ]
        self._idle: list[RedisJobStore] = []
        self._queue: deque[_Pending] = deque()
        self._nursery: trio.Nursery | None = None
        self._cm: Any = None

    async def __aenter__(self) -> RedisProducer:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect (and load the store's code).

        Raises:
            JobError: Redis cannot be reached (one line naming it).
        """
        try:
            for store in self._stores:
                await store.open()
        except StoreUnavailable as e:
            for store in self._stores:
                await store.close()
            raise JobError(str(e)) from None
        self._idle = list(self._stores)
        self._cm = trio.open_nursery()
        self._nursery = await self._cm.__aenter__()

    async def aclose(self) -> None:
        """Finish what is in flight and close the connections."""
        if self._cm is not None:
            cm, self._cm, self._nursery = self._cm, None, None
            await cm.__aexit__(None, None, None)
        for store in self._stores:
            await store.close()

    def new_job(self, type: str, payload: Any = None, **options: Any) -> JobDict:
        """The plain record of a new job, as :meth:`submit` sends it (see ``JobClient.new_job``).

        Raises:
            JobError: a field is not allowed (one line naming it).
        """
        return job_to_plain(self._make_job(type, payload, **options))

    def _make_job(self, type: str, payload: Any, **options: Any) -> Job:
        """The checked Job, with the default ``max_retries`` a gateway would give it."""
        if options.get("max_retries") is None:
            options["max_retries"] = self.default_max_retries
        return make_job(type, payload, **options)

    async def submit(self, type: str, payload: Any = None, **options: Any) -> JobDict:
        """Submit one job straight to Redis; its record (``RUNNING`` if a node took it at once).

        Takes :meth:`JobClient.submit <transport.jobs_client.JobClient.submit>`'s arguments.

        Raises:
            JobError: a bad argument, a refused submit or an unreachable Redis (one line).
        """
        # the checked Job itself: the store writes it without parsing a plain record again
        result = await self.request({"op": "submit", "job": self._make_job(type, payload, **options)})
        job: JobDict = result["job"]
        return job

    async def request(self, command: dict[str, Any]) -> dict[str, Any]:
        """Apply one store command on Redis and return its result; a ``submit`` goes direct.

        Raises:
            JobError: the store refused it (its one-line error), or Redis is unreachable.
        """
        if self._nursery is None:
            raise JobError("the producer is not open: use 'async with RedisProducer(...)' or await open()")
        cmd = dict(command)
        if cmd.get("op") == "submit":
            cmd["direct"] = True
            job = cmd.get("job")
            if isinstance(job, dict) and job.get("max_retries") is None:
                cmd["job"] = {**job, "max_retries": self.default_max_retries}
        pending = _Pending(cmd)
        self._queue.append(pending)
        if self._idle:
            await self._drive(self._idle.pop(), pending)
        if not pending.done.is_set():
            await pending.done.wait()
        if pending.error is not None:
            raise JobError(f"{cmd.get('op', '?')}: {pending.error}")
        assert pending.result is not None
        error = pending.result.get("error")
        if error is not None:
            raise JobError(str(error))
        return pending.result

    async def _drive(self, store: RedisJobStore, mine: _Pending | None) -> None:
        """Send what is queued with ``store`` until ``mine`` is answered; then hand what is left
        to a task of the producer's, so a caller never waits on others' submits."""
        batch: list[_Pending] = []
        try:
            while self._queue and (mine is None or not mine.done.is_set()):
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                try:
                    results = await store.execute([p.command for p in batch])
                except StoreUnavailable as e:
                    for p in batch:
                        p.error = str(e)
                        p.done.set()
                    continue
                for p, result in zip(batch, results, strict=True):
                    p.result = result
                    p.done.set()
        finally:
            # Cancelled mid-call: the unanswered go again (a submit is idempotent by id).
            self._queue.extendleft(reversed([p for p in batch if not p.done.is_set()]))
            if self._queue and self._nursery is not None:
                self._nursery.start_soon(self._drive, store, None)
            else:
                self._idle.append(store)

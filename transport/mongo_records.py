"""MongoDB records of a node: jobs with their attempt history, nodes, elections, metrics snapshots.

How it works
------------
:func:`run_records` (started by :mod:`transport.node_services` when ``MONGODB_URI`` is set)
subscribes to the node's :class:`~transport.events.EventLog` and turns what happens into
upserts (:mod:`transport.mongo_docs`) that wait in a bounded :class:`WriteBuffer`; one writer
task hands them in batches to :class:`~transport.mongo_writer.MongoWriter` in a worker thread
(``trio.to_thread.run_sync`` with a limiter of one: pymongo blocks, the trio loop never does).

Jobs. The store answers ``get`` through the node's gateway (``handle.bridge``); ids come from
two sources, and every write is an idempotent upsert that keeps the newest version (``rev``):

- this node's own ``job.*`` events (its workers' attempts: started, finished, lease lost):
  the id is queued in a :class:`FetchQueue` (coalesced per id, bounded, oldest dropped and
  counted), fetched a moment later (:data:`FETCH_DELAY`, so a short job's start and finish
  cost one ``get``) with :data:`FETCH_CONCURRENCY` requests at a time, and fetched again while
  the store has not yet recorded the attempt the event speaks of. So the node whose worker ran
  an attempt writes it, and a node that crashes leaves the rest to the others;
- on the leader (its scheduler is active), every :func:`sweep interval <sweep_interval>`, a
  sweep lists the active jobs (PENDING, RETRYING, RUNNING) and the next pages of all jobs (a
  cursor that wraps around): this records what no worker event tells (submissions,
  cancellations, expired leases, requeues) and everything a node does not print (a node
  without ``--log-verbose`` keeps ``job.started`` and successful ``job.finished`` from its
  subscribers too). A job whose version this node already sent is not sent again.

Nodes: this node's document at start, on ``node.ready`` and every snapshot (``last_seen``),
``stopped`` at a graceful stop; ``peer.*`` events record each node's view of its peers (the
leader's view sets a peer's ``status``). Elections: one document per ``leader.changed``.
Metrics: every ``MONGODB_SNAPSHOT_INTERVAL``, the store's ``stats``, the runtime's and the
transport's counters and the records' own counters.

MongoDB down, at start or later: one ``mongo.unavailable`` line, the batch goes back to the
buffer and is retried with backoff (:data:`RETRY_MAX`); ``mongo.recovered`` when a write
works again (and the sweep then offers every job again, in case the server lost its data).
The node never waits for MongoDB: ``task_status.started()`` comes at once, events only append
to memory, and while MongoDB is away the buffer keeps the newest :data:`BUFFER_CAPACITY` ops.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import trio

from actors.jobs.messages import SCHEDULER

from .events import Record
from .mongo_docs import (
    WriteBuffer,
    WriteOp,
    election_op,
    job_op,
    job_rev,
    metrics_op,
    node_op,
    peer_op,
    when,
)
from .mongo_writer import MongoConfigError, MongoUnavailable, MongoWriter, WriteResult
from .node_handle import NodeHandle

BUFFER_CAPACITY = 20_000
"""Ops waiting for MongoDB at most (then the oldest are dropped and counted)."""
FETCH_CAPACITY = 20_000
"""Job ids waiting to be fetched at most (then the oldest are dropped and counted)."""
WRITE_BATCH = 200
"""Ops per ``bulk_write``."""
FETCH_BATCH = 256
"""Job ids fetched per round."""
FETCH_CONCURRENCY = 16
"""``get`` requests in flight at once."""
FETCH_DELAY = 0.5
"""Seconds between a job event and the fetch (a short job's start and finish coalesce)."""
FETCH_RETRIES = 20
"""Fetches of a job whose store record lags its event before it is written as it is."""
SWEEP_PAGE = 500
"""Jobs per ``list`` of a sweep."""
SWEEP_PAGES = 4
"""Pages of all jobs a sweep reads (after the active ones); the cursor wraps around."""
MAX_SWEEP_INTERVAL = 10.0
"""Seconds between sweeps at most (less when the snapshot interval is shorter)."""
RETRY_MIN, RETRY_MAX = 0.2, 5.0
"""Backoff between writes while MongoDB is unavailable."""
STOP_FLUSH = 3.0
"""Seconds a stopping node gives the writer to flush what is buffered."""
REJECT_LINE_EVERY = 10.0
"""Seconds between ``mongo.rejected`` lines at most (the ``rejected`` field counts them all)."""
SEEN_CAPACITY = 200_000
"""Job versions remembered (so a sweep does not resend them)."""

ACTIVE = ("PENDING", "RETRYING", "RUNNING")
_JOB_EVENTS = frozenset({"job.started", "job.finished", "job.lease_lost", "job.report_refused"})


def sweep_interval(snapshot_interval: float) -> float:
    """Seconds between the leader's sweeps for a given ``MONGODB_SNAPSHOT_INTERVAL``."""
    return min(snapshot_interval, MAX_SWEEP_INTERVAL)


@dataclass(slots=True)
class _Want:
    due: float
    attempt: int
    closed: bool
    tries: int = 0


class FetchQueue:
    """Job ids to fetch, each once with the most demanding expectation: the attempt number the
    store must hold, and whether it must be closed. Bounded: beyond ``capacity`` the oldest id
    is dropped and counted in ``dropped``."""

    def __init__(self, capacity: int = FETCH_CAPACITY) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._wants: OrderedDict[str, _Want] = OrderedDict()
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._wants)

    def want(self, job_id: str, attempt: int, closed: bool, due: float) -> None:
        """Fetch ``job_id`` at ``due`` (or earlier if it is already queued)."""
        cur = self._wants.get(job_id)
        if cur is not None:
            if (attempt, closed) > (cur.attempt, cur.closed):
                cur.attempt, cur.closed = attempt, closed
            return
        if len(self._wants) >= self.capacity:
            self._wants.popitem(last=False)
            self.dropped += 1
        self._wants[job_id] = _Want(due, attempt, closed)
        heapq.heappush(self._heap, (due, job_id))

    def again(self, job_id: str, want: _Want, due: float) -> None:
        """Queue a fetched id once more (its store record lagged or the store did not answer)."""
        cur = self._wants.get(job_id)
        if cur is not None:  # a newer event queued it meanwhile: keep the higher expectation
            if (want.attempt, want.closed) > (cur.attempt, cur.closed):
                cur.attempt, cur.closed = want.attempt, want.closed
            return
        if len(self._wants) >= self.capacity:
            self.dropped += 1
            return
        want.due = due
        want.tries += 1
        self._wants[job_id] = want
        heapq.heappush(self._heap, (due, job_id))

    def take_due(self, now: float, n: int) -> list[tuple[str, _Want]]:
        """Up to ``n`` ids due by ``now``, removed from the queue."""
        out: list[tuple[str, _Want]] = []
        while self._heap and self._heap[0][0] <= now and len(out) < n:
            due, job_id = heapq.heappop(self._heap)
            want = self._wants.get(job_id)
            if want is not None and want.due == due:
                del self._wants[job_id]
                out.append((job_id, want))
        if len(self._heap) > 4 * max(len(self._wants), 1024):  # entries of dropped ids
            self._heap = [(w.due, i) for i, w in self._wants.items()]
            heapq.heapify(self._heap)
        return out


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # an event emitted outside trio.run
        return time.monotonic()


def _recorded(job: dict[str, Any], want: _Want) -> bool:
    """True if the store's ``job`` holds the attempt ``want`` speaks of (closed if asked)."""
    attempt = next((a for a in job.get("attempts") or [] if a.get("number") == want.attempt), None)
    if attempt is None:
        return want.attempt <= 0
    return not want.closed or attempt.get("finished") is not None


def _plain(value: Any) -> Any:
    """Counters as BSON-friendly values (dataclasses as dicts, keys as strings)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k).replace(".", "_").lstrip("$"): _plain(v) for k, v in value.items()}
    return value


class MongoRecords:
    """The records of one node (see the module docstring)."""

    def __init__(self, handle: NodeHandle) -> None:
        self.handle = handle
        self.node_id = handle.node_id
        self.mongo = handle.settings.service.mongo
        self.buffer = WriteBuffer(BUFFER_CAPACITY)
        self.fetch = FetchQueue()
        self.seen: OrderedDict[str, str] = OrderedDict()
        self.leader: str | None = None
        self.down_since: float | None = None
        self.written = 0
        self.stale = 0
        self.rejected = 0
        self._last_reject_line = -REJECT_LINE_EVERY
        self.fetch_errors = 0
        self.subscriber_errors = 0
        self.sweeps = 0
        self._cursor = 0
        self._ready_fields: dict[str, Any] = {}
        self._closing = False
        self.disabled = False
        self._drained = trio.Event()
        self._limiter = trio.CapacityLimiter(1)
        self._writer = MongoWriter(
            self.mongo.uri or "", self.mongo.database, self.mongo.timeout, f"troupe-{self.node_id}"
        )
        settings = handle.settings
        self.algorithm = "raft" if settings.store == "raft" else settings.election

    # ---------------------------------------------------------------- events (sync, cheap)

    def on_event(self, rec: Record) -> None:
        """Subscriber of the node's events: only appends to memory (never raises)."""
        try:
            kind = rec.get("kind", "")
            if kind in _JOB_EVENTS:
                job_id, attempt = rec.get("id"), rec.get("attempt")
                if isinstance(job_id, str) and isinstance(attempt, int):
                    closed = kind == "job.finished"
                    self.fetch.want(job_id, attempt, closed, _now() + FETCH_DELAY)
            elif kind == "leader.changed":
                self.leader = rec.get("leader")
                self.buffer.put(election_op(rec, self.algorithm))
            elif kind in ("peer.alive", "peer.suspect", "peer.dead") and isinstance(rec.get("peer"), str):
                state = kind.split(".", 1)[1]
                self.buffer.put(
                    peer_op(self.node_id, rec["peer"], state, float(rec["time"]), self.is_leader())
                )
            elif kind == "node.ready":
                self._ready_fields = {
                    k: rec[k] for k in ("listen", "http", "metrics", "pid", "transport") if k in rec
                }
                self.buffer.put(self._node_op("running"))
        except Exception:  # a subscriber must not break the emitter; counted
            self.subscriber_errors += 1

    def is_leader(self) -> bool:
        """True if this node's scheduler is active (it is the job engine's leader)."""
        scheduler = self.handle.runtime.actor(SCHEDULER)
        if scheduler is not None:
            return getattr(scheduler, "token", None) is not None
        return self.leader == self.node_id

    def _node_op(self, status: str) -> WriteOp:
        s = self.handle.settings
        host, port = s.listen
        fields: dict[str, Any] = {
            "cluster": s.cluster,
            "listen": f"{host}:{port}",
            "election": self.algorithm,
            "store": s.store if s.job_engine else None,
            "store_node": s.store_node,
            "workers": s.jobs.worker_count if s.job_engine else 0,
            "transport": s.service.transport,
            "peers": sorted(s.peers),
            "started_at": when(self.handle.started_wall),
            "last_seen": when(time.time()),
            "status": status,
            "leader": self.leader,
            **self._ready_fields,
        }
        return node_op(self.node_id, fields)

    # ---------------------------------------------------------------- jobs

    def offer(self, job: dict[str, Any]) -> None:
        """Queue the upsert of ``job`` unless this node already sent that version."""
        rev = job_rev(job)
        if self.seen.get(job["id"]) == rev:
            return
        self.seen[job["id"]] = rev
        self.seen.move_to_end(job["id"])
        if len(self.seen) > SEEN_CAPACITY:
            self.seen.popitem(last=False)
        self.buffer.put(job_op(job, self.node_id, time.time()))

    async def _fetch_loop(self) -> None:
        while True:
            batch = self.fetch.take_due(trio.current_time(), FETCH_BATCH)
            if not batch:
                await trio.sleep(0.05)
                continue
            limiter = trio.CapacityLimiter(FETCH_CONCURRENCY)
            async with trio.open_nursery() as nursery:
                for job_id, want in batch:
                    nursery.start_soon(self._fetch_one, job_id, want, limiter)

    async def _fetch_one(self, job_id: str, want: _Want, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            result = await self.handle.bridge.request({"op": "get", "id": job_id})
        job = result.get("job")
        if "error" in result or (job is not None and not isinstance(job, dict)):
            if want.tries < FETCH_RETRIES:
                self.fetch.again(job_id, want, trio.current_time() + 1.0)
            else:
                self.fetch_errors += 1
            return
        if job is None:
            return  # purged from the dead-letter queue: its last record stays
        if not _recorded(job, want) and want.tries < FETCH_RETRIES:
            self.fetch.again(job_id, want, trio.current_time() + 0.1 * (1 + want.tries))
            return
        self.offer(job)

    async def _sweep(self) -> None:
        """List active jobs and the next pages of all jobs and offer them (leader only)."""
        self.sweeps += 1
        for status in ACTIVE:
            result = await self.handle.bridge.request({"op": "list", "status": status, "limit": SWEEP_PAGE})
            for job in result.get("jobs") or []:
                self.offer(job)
        for _ in range(SWEEP_PAGES):
            cmd = {"op": "list", "limit": SWEEP_PAGE, "offset": self._cursor}
            result = await self.handle.bridge.request(cmd)
            jobs = result.get("jobs") or []
            for job in jobs:
                self.offer(job)
            self._cursor += len(jobs)
            if "error" in result or not jobs or self._cursor >= int(result.get("total") or 0):
                self._cursor = 0
                break

    # ---------------------------------------------------------------- snapshots

    async def _snapshot(self) -> None:
        now = time.time()
        stats = await self.handle.bridge.request({"op": "stats"}) if self.handle.settings.job_engine else {}
        snapshot = {
            "leader": self.is_leader(),
            "uptime": round(now - self.handle.started_wall, 3),
            "store": _plain(stats),
            "runtime": _plain(self.handle.runtime.stats),
            "transport": _plain(getattr(self.handle.transport, "stats", None)),
            "records": self.counters(),
        }
        self.buffer.put(self._node_op("running" if self._ready_fields else "starting"))
        self.buffer.put(metrics_op(self.node_id, now, snapshot))

    def counters(self) -> dict[str, int]:
        """The records' own counters (also in every metrics snapshot)."""
        return {
            "written": self.written,
            "stale": self.stale,
            "rejected": self.rejected,
            "buffered": len(self.buffer),
            "dropped_ops": self.buffer.dropped,
            "to_fetch": len(self.fetch),
            "dropped_ids": self.fetch.dropped,
            "fetch_errors": self.fetch_errors,
            "subscriber_errors": self.subscriber_errors,
            "sweeps": self.sweeps,
        }

    async def _tick_loop(self) -> None:
        interval = self.mongo.snapshot_interval
        sweep_every = sweep_interval(interval)
        next_snapshot = trio.current_time()
        next_sweep = next_snapshot + sweep_every  # no leader yet at start
        dropped = 0
        while True:
            now = trio.current_time()
            if now >= next_sweep:
                next_sweep = now + sweep_every
                if self.handle.settings.job_engine and self.is_leader():
                    await self._sweep()
            if now >= next_snapshot:
                next_snapshot = now + interval
                await self._snapshot()
                lost = self.buffer.dropped + self.fetch.dropped
                if lost > dropped:
                    self._emit(
                        "mongo.dropped",
                        level="warning",
                        ops=self.buffer.dropped,
                        ids=self.fetch.dropped,
                        why="buffer full: MongoDB is slower than the node or away",
                    )
                    dropped = lost
            await trio.sleep_until(min(next_sweep, next_snapshot))

    # ---------------------------------------------------------------- writing

    def _emit(self, kind: str, **fields: Any) -> None:
        self.handle.events.emit(self.node_id, "mongo", kind, fields)

    async def _write(self, ops: list[WriteOp]) -> WriteResult:
        return await trio.to_thread.run_sync(
            self._writer.write, ops, limiter=self._limiter, abandon_on_cancel=True
        )

    async def _writer_loop(self) -> None:
        delay = RETRY_MIN
        while True:
            ops = self.buffer.take(WRITE_BATCH)
            if not ops:
                if self._closing:
                    self._drained.set()
                await trio.sleep(0.05)
                continue
            try:
                result = await self._write(ops)
            except MongoConfigError as e:
                self._emit("mongo.disabled", level="error", error=str(e), fix="correct MONGODB_URI")
                self.disabled = True
                return
            except MongoUnavailable as e:
                self.buffer.put_back(ops)
                if self.down_since is None:
                    self.down_since = time.time()
                    self._emit(
                        "mongo.unavailable",
                        level="error",
                        error=str(e),
                        database=self.mongo.database,
                        buffered=len(self.buffer),
                        retry="with backoff; the node keeps running",
                    )
                await trio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)
                continue
            delay = RETRY_MIN
            if self.down_since is not None:
                self._emit(
                    "mongo.recovered",
                    database=self.mongo.database,
                    down_for=round(time.time() - self.down_since, 3),
                    buffered=len(self.buffer),
                )
                self.down_since = None
                self.seen.clear()  # the server may have lost data: let the sweeps offer all again
            self.written += result.written
            self.stale += result.stale
            for op, error in result.rejected:
                self.rejected += 1
                now = trio.current_time()
                if now - self._last_reject_line >= REJECT_LINE_EVERY:  # one line, not a flood
                    self._last_reject_line = now
                    self._emit(
                        "mongo.rejected",
                        level="warning",
                        collection=op.collection,
                        key=op.key,
                        error=error,
                        rejected=self.rejected,
                    )

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """Keep the records until the node's runtime stops (see the module docstring)."""
        self.handle.events.subscribe(self.on_event)
        self.buffer.put(self._node_op("starting"))
        task_status.started()
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer_loop)
                nursery.start_soon(self._fetch_loop)
                nursery.start_soon(self._tick_loop)
                while self.handle.runtime.running and not self.disabled:
                    await trio.sleep(0.1)
                if not self.disabled:
                    self._closing = True
                    self.buffer.put(self._node_op("stopped"))
                    with trio.move_on_after(STOP_FLUSH if self.down_since is None else 0.0):
                        await self._drained.wait()
                nursery.cancel_scope.cancel()
        except* Exception as group:  # a bug here must not stop the node: one line, records end
            failure = group.exceptions[0]
        if failure is not None:
            self._emit("mongo.failed", level="error", error=f"{type(failure).__name__}: {failure}")
        if self._limiter.borrowed_tokens == 0:  # else an abandoned write still holds the client
            with trio.move_on_after(1.0):
                await trio.to_thread.run_sync(
                    self._writer.close, limiter=self._limiter, abandon_on_cancel=True
                )


async def run_records(
    handle: NodeHandle, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Keep the node's MongoDB records until its runtime stops (see the module docstring).

    Starts at once (``task_status.started()`` does not wait for MongoDB); an unreachable
    MongoDB is logged in one line and retried, the node keeps running.
    """
    await MongoRecords(handle).run(task_status)

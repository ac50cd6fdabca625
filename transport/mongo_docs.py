"""The MongoDB records' documents, indexes and write buffer (no I/O here).

How it works
------------
Every record is a :class:`WriteOp`: an upsert of one document (``filter`` + ``update``) into
one of the four collections of :data:`INDEXES`, with a ``key`` naming what it records. The
:class:`WriteBuffer` between the node's events and the MongoDB writer holds them in arrival
order, coalesced by key (a newer version of a job replaces the older one where it waits) and
bounded: when full, the oldest op is dropped and counted, so a slow or absent MongoDB never
slows the node.

- ``jobs``: one document per job id (``_id`` = ``id``), the job as the store holds it (times as
  BSON dates, ``timeout`` in seconds) with its attempt history. Every document carries ``rev``,
  a string that sorts in the order a job's versions follow each other (requeues, attempts,
  whether the last attempt is closed, whether the status is final, then ``updated_at``): the
  upsert matches only a stored version older than its own (``rev < new``), so any number of
  nodes may write the same job in any order and MongoDB keeps the newest; a write of an older
  or equal version fails with a duplicate ``_id`` (11000), which the writer counts as stale.
- ``nodes``: one document per node id: the node's own fields (listen/HTTP addresses, election,
  store, workers, started_at, last_seen, status) and ``views.<observer>``: what each node's
  failure detector says of it (``peer.*`` events).
- ``elections``: one document per ``leader.changed`` event (node, leader, term/epoch,
  algorithm, at), written once (``$setOnInsert``).
- ``metrics``: one snapshot per node and interval, removed by a TTL index after
  :data:`METRICS_TTL` seconds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "DEAD", "CANCELLED"})
"""Statuses a job keeps until a user acts (the ``final`` digit of ``rev``)."""
METRICS_TTL = 7 * 24 * 3600
"""Seconds a metrics snapshot is kept (TTL index on ``at``)."""

JOBS, NODES, ELECTIONS, METRICS = "jobs", "nodes", "elections", "metrics"

IndexSpec = tuple[list[tuple[str, int]], dict[str, Any]]

INDEXES: dict[str, list[IndexSpec]] = {
    JOBS: [
        ([("id", 1)], {"unique": True}),
        ([("status", 1)], {}),
        ([("type", 1)], {}),
        ([("status", 1), ("priority", -1), ("created_at", 1)], {}),
        ([("updated_at", 1)], {}),
    ],
    NODES: [([("status", 1)], {}), ([("last_seen", 1)], {})],
    ELECTIONS: [([("at", 1)], {}), ([("node", 1), ("at", 1)], {})],
    METRICS: [([("at", 1)], {"expireAfterSeconds": METRICS_TTL}), ([("node", 1), ("at", 1)], {})],
}
"""Indexes created at start (idempotently) per collection."""


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One upsert: ``update_one(filter, update, upsert=True)`` on ``collection``."""

    collection: str
    key: str
    filter: dict[str, Any]
    update: dict[str, Any]
    stale_ok: bool = False
    """A duplicate ``_id`` (11000) means a newer version is stored: not an error."""


def when(seconds: float | None) -> datetime | None:
    """UNIX seconds as a UTC datetime (BSON date, millisecond precision); None stays None."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_rev(job: Mapping[str, Any]) -> str:
    """The version key of a plain job (see the module docstring): later versions sort higher."""
    attempts = job.get("attempts") or []
    closed = 1 if attempts and attempts[-1].get("finished") is not None else 0
    final = 1 if job.get("status") in FINAL_STATUSES else 0
    updated = float(job.get("updated_at") or 0.0)
    return f"{int(job.get('requeue_count') or 0):06d}.{len(attempts):06d}.{closed}.{final}.{updated:017.6f}"


def job_doc(job: Mapping[str, Any], node_id: str, now: float) -> dict[str, Any]:
    """The ``jobs`` document of a plain job (as :func:`actors.jobs.job_to_plain` makes it)."""
    attempts = [
        {
            "number": a["number"],
            "worker": a["worker"],
            "node": str(a["worker"]).split("/", 1)[0],
            "started": when(a["started"]),
            "finished": when(a.get("finished")),
            "outcome": a.get("outcome"),
            "error": a.get("error"),
        }
        for a in job.get("attempts") or []
    ]
    last = attempts[-1] if attempts else None
    return {
        "id": job["id"],
        "type": job["type"],
        "priority": job["priority"],
        "status": job["status"],
        "payload": job.get("payload"),
        "max_retries": job["max_retries"],
        "timeout": job["timeout_seconds"],
        "scheduled_at": when(job.get("scheduled_at")),
        "idempotency_key": job.get("idempotency_key"),
        "created_at": when(job["created_at"]),
        "updated_at": when(job["updated_at"]),
        "lease_expires_at": when(job.get("lease_expires_at")),
        "requeue_count": job.get("requeue_count", 0),
        "attempts_at_requeue": job.get("attempts_at_requeue", 0),
        "attempts": attempts,
        "attempt_count": len(attempts),
        "outcome": None if last is None else last["outcome"],
        "error": None if last is None else last["error"],
        "rev": job_rev(job),
        "recorded_by": node_id,
        "recorded_at": when(now),
    }


def job_op(job: Mapping[str, Any], node_id: str, now: float) -> WriteOp:
    """The upsert of a job that replaces only an older stored version."""
    doc = job_doc(job, node_id, now)
    return WriteOp(JOBS, job["id"], {"_id": job["id"], "rev": {"$lt": doc["rev"]}}, {"$set": doc}, True)


def with_payload_as_text(op: WriteOp) -> WriteOp:
    """``op`` with the job's payload replaced by its JSON text (``payload_text``): for a
    payload BSON cannot hold (an integer beyond 64 bits, a key with a NUL)."""
    doc = dict(op.update["$set"])
    doc["payload_text"] = json.dumps(doc.pop("payload"), default=repr)
    doc["payload"] = None
    return WriteOp(op.collection, op.key, op.filter, {"$set": doc}, op.stale_ok)


def _field(node_id: str) -> str:
    return node_id.replace(".", "_").replace("$", "_")  # node ids may hold '.'


def node_op(node_id: str, fields: Mapping[str, Any]) -> WriteOp:
    """Set this node's own fields of its ``nodes`` document."""
    return WriteOp(NODES, f"self:{node_id}", {"_id": node_id}, {"$set": {"id": node_id, **fields}})


def peer_op(observer: str, peer: str, state: str, at: float, leader: bool) -> WriteOp:
    """What ``observer``'s failure detector says of ``peer`` (``alive``, ``suspect``,
    ``dead``); the leader's view also sets the peer's ``status``."""
    now = when(at)
    update: dict[str, Any] = {f"views.{_field(observer)}": {"by": observer, "state": state, "at": now}}
    if leader:
        update["status"] = {"alive": "running"}.get(state, state)
        update["status_by"] = observer
    return WriteOp(
        NODES,
        f"peer:{peer}:{observer}",
        {"_id": peer},
        {"$set": update, "$setOnInsert": {"id": peer}},
    )


def election_op(rec: Mapping[str, Any], algorithm: str) -> WriteOp:
    """The ``elections`` document of one ``leader.changed`` event record."""
    epoch = rec.get("epoch")
    key = f"{rec['node']}/{epoch}/{rec.get('leader')}/{rec['time']:.6f}"
    doc = {
        "node": rec["node"],
        "leader": rec.get("leader"),
        "term": epoch,
        "epoch": epoch,
        "algorithm": algorithm,
        "at": when(float(rec["time"])),
    }
    return WriteOp(ELECTIONS, key, {"_id": key}, {"$setOnInsert": doc})


def metrics_op(node_id: str, at: float, snapshot: Mapping[str, Any]) -> WriteOp:
    """One metrics snapshot of ``node_id`` taken at ``at``."""
    key = f"{node_id}/{at:.3f}"
    return WriteOp(
        METRICS, key, {"_id": key}, {"$setOnInsert": {"node": node_id, "at": when(at), **snapshot}}
    )


@dataclass
class WriteBuffer:
    """Ops waiting for the writer: arrival order, coalesced by key, at most ``capacity``
    (the oldest dropped and counted in ``dropped``)."""

    capacity: int = 10_000
    dropped: int = 0
    _ops: OrderedDict[tuple[str, str], WriteOp] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._ops)

    def put(self, op: WriteOp) -> None:
        """Queue ``op``; a queued op with the same key is replaced where it waits."""
        key = (op.collection, op.key)
        if key not in self._ops and len(self._ops) >= self.capacity:
            self._ops.popitem(last=False)
            self.dropped += 1
        self._ops[key] = op

    def take(self, n: int) -> list[WriteOp]:
        """The ``n`` oldest ops, removed from the buffer."""
        out: list[WriteOp] = []
        while self._ops and len(out) < n:
            out.append(self._ops.popitem(last=False)[1])
        return out

    def put_back(self, ops: Iterable[WriteOp]) -> None:
        """Return ops that could not be written to the front, unless a newer op with the same
        key arrived meanwhile; beyond ``capacity`` the oldest are dropped and counted."""
        for op in reversed(list(ops)):
            key = (op.collection, op.key)
            if key in self._ops:
                continue
            if len(self._ops) >= self.capacity:
                self.dropped += 1
                continue
            self._ops[key] = op
            self._ops.move_to_end(key, last=False)

"""The job queue as one deterministic state machine: every store is this machine, or obeys it.

How it works
------------
A :class:`JobMachine` holds every job record, the ready queue (priority, then FIFO), delayed and
retrying jobs, running leases, the dead-letter set and the highest scheduler epoch seen. It
changes only through :meth:`JobMachine.apply`, fed **commands**: plain dicts (``{"op":
"submit", ...}``) that msgpack, a Raft log, ``Persist`` and JSON all carry unchanged. Every
command returns a plain dict; a malformed or impossible command returns ``{"error": "..."}``
in one line and changes nothing. An illegal lifecycle step that slips past those checks is a
bug and raises (:class:`~actors.jobs.IllegalTransition`).

The stores are members of one family built on this file:

- ``memory`` (the simulator): a store actor applies commands and persists changed records
  with a sync before it answers, so a crash loses only unacknowledged work;
- ``raft``: the machine is Raft's replicated state machine (``RaftConfig(machine=...)``);
- ``sqlite``: the machine in memory, changed rows written in one WAL transaction per command;
- ``redis``: Lua scripts over sorted sets that implement the same commands, held to this file
  by a shared conformance test.

Commands (times are UNIX seconds from the caller's ``ctx.wall``; ``epoch`` is the scheduler's
fencing token, its election epoch)::

    submit   job lane?                     -> {job, created, lane?}  idempotent by id and key
    get      id                            -> {job | None}
    list     status? type? limit offset    -> {jobs, total}       submission order
    cancel   id at reason?                 -> {job}
    ready    at limit                      -> {jobs: [[id, priority, type]], mark}
    dispatch epoch at lease_until assign mark -> {jobs, fenced, left_best}
    renew    epoch at lease_until worker held -> {renewed, lost, fenced}
    report   at id attempt worker ok error? retryable? -> {accepted, status, duplicate, why}
    maintain epoch at                      -> {expired, retried, promoted, fenced}
    dlq_list limit offset                  -> {jobs, total}
    dlq_requeue at ids?                    -> {requeued}
    dlq_purge ids?                         -> {purged}
    stats                                  -> {by_status, ready, delayed, running, dlq, total, epoch}

The fast lane: a gateway may add ``lane`` (``{epoch, worker, at, lease_until}``) to a submit,
asking the store to dispatch the new job to ``worker`` at once, under the leader's fencing
token ``epoch``, if and only if the job is ready and at the head of the ready queue (no waiting
job is more urgent or, at its priority, older), so strict priority and FIFO order still hold.
The answer says what happened in ``lane``: ``dispatched`` (the job comes back RUNNING, with
``left_best`` as for ``dispatch``), ``queued`` (something is ahead of it, or it is delayed) or
``fenced`` (the token is stale; the job is queued as usual). A known job (same id or key) is
returned as it is, with no ``lane``. See :mod:`actors.jobs.gateway`.

Fencing: ``dispatch``, ``renew``, ``maintain`` and a submit's ``lane`` carry an epoch; one below
the highest seen is refused with ``fenced: True`` (``lane: fenced``) and changes nothing, so a
deposed leader can change nothing.
Worker reports are fenced by attempt: only the worker holding the open attempt may close it; a
repeated report of an attempt already closed the same way is acknowledged as a duplicate.

Every command is idempotent when repeated with the same arguments (a retried ``dispatch``
returns the jobs it already dispatched), so a client may resend after a lost reply.

``ready`` returns a ``mark``; ``dispatch`` reports ``left_best``, the best priority among jobs
that were ready at that mark and are still waiting, so a checker can prove that no job was
dispatched ahead of a more urgent one. Retry jitter comes from a generator seeded by the job id
and attempt number, so every replica computes the same backoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from .._context import Rng
from ._model import DEAD, PENDING, RETRYING, RUNNING, STATUSES, Job
from ._plain import job_from_plain, job_to_plain
from ._queue import ReadyQueue
from ._retry import RetryPolicy
from ._transitions import (
    Cancelled,
    Dispatched,
    Failed,
    LeaseExpired,
    LeaseRenewed,
    Requeued,
    Retry,
    Succeeded,
    apply,
)

OPS = (
    "submit",
    "get",
    "list",
    "cancel",
    "ready",
    "dispatch",
    "renew",
    "report",
    "maintain",
    "dlq_list",
    "dlq_requeue",
    "dlq_purge",
    "stats",
)
"""Every command name :meth:`JobMachine.apply` accepts."""

WRITES = frozenset(OPS) - {"get", "list", "dlq_list", "stats"}
"""Commands that may change the machine (the others only read)."""

MAX_PAGE = 10_000


class CommandError(ValueError):
    """A command that is malformed or cannot apply; becomes ``{"error": str(e)}``."""


class _JitterRng:
    """Deterministic uniform draws seeded by a string (FNV-1a then splitmix64)."""

    __slots__ = ("_state",)

    def __init__(self, seed: str) -> None:
        h = 0xCBF29CE484222325
        for b in seed.encode():
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        self._state = h

    def random(self) -> float:
        self._state = (self._state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        return (z >> 11) / float(1 << 53)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()


def _jitter(job: Job) -> Rng:
    return cast(Rng, _JitterRng(f"{job.id}:{len(job.attempts)}"))


class JobMachine:
    """The job queue (see the module docstring). Satisfies Raft's ``StateMachine``."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._reset()

    def _reset(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.seq: dict[str, int] = {}
        self.idem: dict[str, str] = {}
        self.queue = ReadyQueue()
        self.ready_at: dict[str, int] = {}  # ready id -> op count when it became ready
        self.retrying: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.dead: dict[str, None] = {}
        self.epoch = 0
        self.next_seq = 1
        self.ops = 0
        self.last_index = 0
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()

    # --- the StateMachine protocol -------------------------------------------------------

    def apply(self, index: int, command: Any) -> dict[str, Any]:
        """Apply one command (see the module docstring); never raises for bad input."""
        self.last_index = index
        self.ops += 1
        if not isinstance(command, dict):
            return {"error": f"command must be a map, got {type(command).__name__}"}
        op = command.get("op")
        handler = _HANDLERS.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"error": f"unknown command op {op!r}: use one of {', '.join(OPS)}"}
        try:
            return handler(self, command)
        except CommandError as e:
            return {"error": f"{op}: {e}"}

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (records in submission order, plus the epoch)."""
        return {
            "epoch": self.epoch,
            "next_seq": self.next_seq,
            "ops": self.ops,
            "last_index": self.last_index,
            "jobs": [[self.seq[i], job_to_plain(j)] for i, j in self.jobs.items()],
            # The ready order is not the submission order once jobs retry or fall due: keep it.
            "ready": [[i, self.ready_at.get(i, 0)] for i in self.queue.ready_ids()],
        }

    def restore(self, data: Any) -> None:
        """Replace the state by a :meth:`snapshot`'s (ready order included)."""
        self.load(((int(s), p) for s, p in data["jobs"]), int(data["epoch"]), int(data["next_seq"]))
        self.ops = int(data.get("ops", 0))
        self.last_index = int(data.get("last_index", 0))
        ready = data.get("ready")
        if ready is not None:
            for jid, _ in ready:
                self.queue.remove(jid)
            for jid, became_ready in ready:
                self.queue.push(jid, self.jobs[jid].priority)
                self.ready_at[jid] = int(became_ready)

    # --- persistence hooks ---------------------------------------------------------------

    def load(self, records: Iterable[tuple[int, Any]], epoch: int, next_seq: int) -> None:
        """Rebuild from stored ``(seq, plain job)`` records (any order), the epoch and seq counter."""
        self._reset()
        for seq, plain in sorted(records, key=lambda r: r[0]):
            job = job_from_plain(plain)
            self.jobs[job.id] = job
            self.seq[job.id] = seq
            self._index(job)
        self.epoch = epoch
        self.next_seq = max(next_seq, max(self.seq.values(), default=0) + 1)
        self.dirty.clear()

    def take_changes(self) -> tuple[dict[str, tuple[int, dict[str, Any]]], set[str]]:
        """Records changed and ids deleted since the last call: ``({id: (seq, plain)}, deleted)``."""
        changed = {i: (self.seq[i], job_to_plain(self.jobs[i])) for i in sorted(self.dirty) if i in self.jobs}
        deleted = set(self.deleted)
        self.dirty.clear()
        self.deleted.clear()
        return changed, deleted

    # --- internal bookkeeping ------------------------------------------------------------

    def _index(self, job: Job) -> None:
        """Put a loaded or new job in the structure its status belongs to."""
        if job.idempotency_key:
            self.idem[job.idempotency_key] = job.id
        self._index_status(job)

    def _enqueue(self, job: Job) -> None:
        delayed = job.scheduled_at is not None and job.scheduled_at > job.updated_at
        self.queue.push(job.id, job.priority, job.scheduled_at if delayed else None)
        if not delayed:
            self.ready_at[job.id] = self.ops

    def _put(self, old: Job, new: Job) -> Job:
        """Record ``new`` in place of ``old`` and move it between the status structures."""
        jid = new.id
        self.jobs[jid] = new
        self.dirty.add(jid)
        if old.status != new.status or old.status == RUNNING:
            self.running.pop(jid, None)
            self.retrying.pop(jid, None)
            self.dead.pop(jid, None)
            if old.status == PENDING:
                self.queue.remove(jid)
                self.ready_at.pop(jid, None)
            self._index_status(new)
        return new

    def _index_status(self, job: Job) -> None:
        if job.status == PENDING:
            self._enqueue(job)
        elif job.status == RUNNING:
            self.running[job.id] = job.lease_expires_at or 0.0
        elif job.status == RETRYING:
            self.retrying[job.id] = job.scheduled_at or 0.0
        elif job.status == DEAD:
            self.dead[job.id] = None

    def _fence(self, cmd: dict[str, Any]) -> bool:
        """True if the command's epoch is stale; otherwise raise the epoch to it."""
        epoch = _int(cmd, "epoch")
        if epoch < self.epoch:
            return True
        self.epoch = epoch
        return False

    def _promote(self, at: float) -> list[str]:
        promoted = self.queue.promote(at)
        for jid in promoted:
            self.ready_at[jid] = self.ops
        return promoted

    # --- commands ------------------------------------------------------------------------

    def _submit(self, cmd: dict[str, Any]) -> dict[str, Any]:
        try:
            job = job_from_plain(cmd.get("job"))
        except ValueError as e:
            raise CommandError(str(e)) from None
        if job.status != PENDING or job.attempts or job.lease_expires_at is not None:
            raise CommandError(f"job {job.id!r}: a new job must be PENDING with no attempts")
        lane = _lane(cmd)
        existing = self.jobs.get(job.id)
        if existing is None and job.idempotency_key:
            known = self.idem.get(job.idempotency_key)
            existing = self.jobs.get(known) if known else None
        if existing is not None:
            return {"job": job_to_plain(existing), "created": False}
        self.jobs[job.id] = job
        self.seq[job.id] = self.next_seq
        self.next_seq += 1
        self.dirty.add(job.id)
        self.deleted.discard(job.id)  # purged and resubmitted since the last take_changes
        self._index(job)
        if lane is None:
            return {"job": job_to_plain(job), "created": True}
        return {"created": True, **self._lane_dispatch(job, lane)}

    def _lane_dispatch(self, job: Job, lane: dict[str, Any]) -> dict[str, Any]:
        """Dispatch a job just submitted at once if the token holds and it heads the queue."""
        if self._fence(lane):
            return {"job": job_to_plain(job), "lane": "fenced", "epoch": self.epoch}
        if self.queue.top(1) != [job.id]:
            return {"job": job_to_plain(job), "lane": "queued", "epoch": self.epoch}
        event = Dispatched(worker=lane["worker"], at=lane["at"], lease_expires_at=lane["lease_until"])
        job = self._put(job, apply(job, event))
        return {
            "job": job_to_plain(job),
            "lane": "dispatched",
            "epoch": self.epoch,
            "left_best": self._left_best(self.ops),
        }

    def _get(self, cmd: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(_str(cmd, "id"))
        return {"job": None if job is None else job_to_plain(job)}

    def _list(self, cmd: dict[str, Any]) -> dict[str, Any]:
        status = _opt_str(cmd, "status")
        if status is not None and status not in STATUSES:
            raise CommandError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
        jtype = _opt_str(cmd, "type")
        limit, offset = _page(cmd)
        if status == DEAD:
            ids: Iterable[str] = self.dead
        elif status == RUNNING:
            ids = self.running
        else:
            ids = self.jobs
        matched = [
            j
            for j in (self.jobs[i] for i in ids)
            if (status is None or j.status == status) and (jtype is None or j.type == jtype)
        ]
        matched.sort(key=lambda j: self.seq[j.id])
        return {"jobs": [job_to_plain(j) for j in matched[offset : offset + limit]], "total": len(matched)}

    def _cancel(self, cmd: dict[str, Any]) -> dict[str, Any]:
        jid = _str(cmd, "id")
        job = self.jobs.get(jid)
        if job is None:
            raise CommandError(f"no job {jid!r}")
        event = Cancelled(at=_num(cmd, "at"), reason=_opt_str(cmd, "reason") or "")
        if job.status not in (PENDING, RUNNING, RETRYING):
            raise CommandError(f"job {jid!r} is {job.status} and cannot be cancelled")
        return {"job": job_to_plain(self._put(job, apply(job, event)))}

    def _ready(self, cmd: dict[str, Any]) -> dict[str, Any]:
        at = _num(cmd, "at")
        limit = _int(cmd, "limit")
        if not 0 < limit <= MAX_PAGE:
            raise CommandError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        self._promote(at)
        out = []
        for jid in self.queue.top(limit):
            job = self.jobs[jid]
            out.append([jid, job.priority, job.type])
        return {"jobs": out, "mark": self.ops}

    def _dispatch(self, cmd: dict[str, Any]) -> dict[str, Any]:
        # Check every field before the fence raises the epoch or a job moves: errors change nothing.
        at = _num(cmd, "at")
        lease_until = _num(cmd, "lease_until")
        mark = _int(cmd, "mark")
        assign = _pairs(cmd, "assign", "worker", strings=True)
        if self._fence(cmd):
            return {"jobs": [], "fenced": True, "epoch": self.epoch, "left_best": None}
        out: list[dict[str, Any]] = []
        for jid, worker in assign:
            job = self.jobs.get(jid)
            if job is None:
                continue
            if job.status == PENDING and jid in self.queue and not self.queue.is_delayed(jid):
                job = self._put(
                    job, apply(job, Dispatched(worker=worker, at=at, lease_expires_at=lease_until))
                )
                out.append(job_to_plain(job))
            elif job.status == RUNNING:
                cur = job.current_attempt
                if cur is not None and cur.worker == worker and cur.started == at:
                    out.append(job_to_plain(job))  # a resent dispatch: same answer
        return {"jobs": out, "fenced": False, "epoch": self.epoch, "left_best": self._left_best(mark)}

    def _left_best(self, mark: int) -> int | None:
        """Best priority among ready jobs that were ready at ``mark`` (see module docstring)."""
        top = self.queue.top(1)
        if not top:
            return None
        if self.ready_at.get(top[0], mark + 1) <= mark:
            return self.jobs[top[0]].priority
        best = [self.jobs[i].priority for i, op in self.ready_at.items() if op <= mark]
        return max(best) if best else None

    def _renew(self, cmd: dict[str, Any]) -> dict[str, Any]:
        at = _num(cmd, "at")
        lease_until = _num(cmd, "lease_until")
        worker = _str(cmd, "worker")
        held = _pairs(cmd, "held", "attempt", strings=False)
        if self._fence(cmd):
            return {"renewed": [], "lost": [], "fenced": True, "epoch": self.epoch}
        renewed: list[str] = []
        lost: list[str] = []
        for jid, number in held:
            job = self.jobs.get(jid) if isinstance(jid, str) else None
            cur = None if job is None else job.current_attempt
            if job is not None and cur is not None and cur.number == number and cur.worker == worker:
                self._put(
                    job,
                    apply(
                        job,
                        LeaseRenewed(at=at, lease_expires_at=max(lease_until, job.lease_expires_at or 0.0)),
                    ),
                )
                renewed.append(jid)
            else:
                lost.append(str(jid))
        return {"renewed": renewed, "lost": lost, "fenced": False, "epoch": self.epoch}

    def _report(self, cmd: dict[str, Any]) -> dict[str, Any]:
        jid = _str(cmd, "id")
        number = _int(cmd, "attempt")
        worker = _str(cmd, "worker")
        ok = cmd.get("ok")
        if not isinstance(ok, bool):
            raise CommandError("ok must be true or false")
        at = _num(cmd, "at")
        job = self.jobs.get(jid)
        if job is None:
            return {"accepted": False, "duplicate": False, "status": None, "why": "unknown job"}
        cur = job.current_attempt
        if cur is None or cur.number != number or cur.worker != worker:
            past = job.attempts[number - 1] if 0 < number <= len(job.attempts) else None
            same = (
                past is not None and past.worker == worker and past.outcome == ("SUCCESS" if ok else "FAILED")
            )
            if same:
                return {"accepted": True, "duplicate": True, "status": job.status, "why": ""}
            why = "lease lost: the attempt is no longer this worker's"
            return {"accepted": False, "duplicate": False, "status": job.status, "why": why}
        if ok:
            new = apply(job, Succeeded(at=at, attempt=number))
        else:
            error = _opt_str(cmd, "error") or "failed"
            retryable = cmd.get("retryable", True) is not False
            new = apply(
                job,
                Failed(at=at, error=error, retryable=retryable, attempt=number),
                self.policy,
                _jitter(job),
            )
        self._put(job, new)
        return {"accepted": True, "duplicate": False, "status": new.status, "why": ""}

    def _maintain(self, cmd: dict[str, Any]) -> dict[str, Any]:
        at = _num(cmd, "at")
        if self._fence(cmd):
            return {"expired": [], "retried": [], "promoted": [], "fenced": True, "epoch": self.epoch}
        expired = sorted((i for i, until in self.running.items() if until < at), key=self.seq.__getitem__)
        for jid in expired:
            job = self.jobs[jid]
            self._put(job, apply(job, LeaseExpired(at=at), self.policy, _jitter(job)))
        retried = sorted((i for i, due in self.retrying.items() if due <= at), key=self.seq.__getitem__)
        for jid in retried:
            job = self.jobs[jid]
            self._put(job, apply(job, Retry(at=at)))
        promoted = self._promote(at)
        return {
            "expired": expired,
            "retried": retried,
            "promoted": promoted,
            "fenced": False,
            "epoch": self.epoch,
        }

    def _dlq_list(self, cmd: dict[str, Any]) -> dict[str, Any]:
        limit, offset = _page(cmd)
        ids = sorted(self.dead, key=self.seq.__getitem__)
        return {"jobs": [job_to_plain(self.jobs[i]) for i in ids[offset : offset + limit]], "total": len(ids)}

    def _dlq_ids(self, cmd: dict[str, Any]) -> list[str]:
        ids = cmd.get("ids")
        if ids is None:
            return sorted(self.dead, key=self.seq.__getitem__)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise CommandError("ids must be a list of job ids, or absent for all")
        return [i for i in dict.fromkeys(ids) if i in self.dead]  # each id once, in order given

    def _dlq_requeue(self, cmd: dict[str, Any]) -> dict[str, Any]:
        at = _num(cmd, "at")
        ids = self._dlq_ids(cmd)
        for jid in ids:
            job = self.jobs[jid]
            self._put(job, apply(job, Requeued(at=at)))
        return {"requeued": ids}

    def _dlq_purge(self, cmd: dict[str, Any]) -> dict[str, Any]:
        ids = self._dlq_ids(cmd)
        for jid in ids:
            job = self.jobs.pop(jid)
            self.dead.pop(jid, None)
            self.seq.pop(jid, None)
            if job.idempotency_key and self.idem.get(job.idempotency_key) == jid:
                del self.idem[job.idempotency_key]
            self.dirty.discard(jid)
            self.deleted.add(jid)
        return {"purged": len(ids), "ids": ids}

    def _stats(self, cmd: dict[str, Any]) -> dict[str, Any]:
        by_status = dict.fromkeys(STATUSES, 0)
        for job in self.jobs.values():
            by_status[job.status] += 1
        return {
            "by_status": by_status,
            "ready": self.queue.ready_count,
            "delayed": self.queue.delayed_count,
            "running": len(self.running),
            "retrying": len(self.retrying),
            "dlq": len(self.dead),
            "total": len(self.jobs),
            "epoch": self.epoch,
        }


_HANDLERS = {
    "submit": JobMachine._submit,
    "get": JobMachine._get,
    "list": JobMachine._list,
    "cancel": JobMachine._cancel,
    "ready": JobMachine._ready,
    "dispatch": JobMachine._dispatch,
    "renew": JobMachine._renew,
    "report": JobMachine._report,
    "maintain": JobMachine._maintain,
    "dlq_list": JobMachine._dlq_list,
    "dlq_requeue": JobMachine._dlq_requeue,
    "dlq_purge": JobMachine._dlq_purge,
    "stats": JobMachine._stats,
}


# --- field readers (raise CommandError naming the field) ----------------------------------


def _int(cmd: dict[str, Any], name: str) -> int:
    v = cmd.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise CommandError(f"{name} must be an integer, got {type(v).__name__}")
    return v


def _num(cmd: dict[str, Any], name: str) -> float:
    v = cmd.get(name)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        raise CommandError(f"{name} must be a number, got {type(v).__name__}")
    return float(v)


def _str(cmd: dict[str, Any], name: str) -> str:
    v = cmd.get(name)
    if not isinstance(v, str) or not v:
        raise CommandError(f"{name} must be a non-empty string")
    return v


def _opt_str(cmd: dict[str, Any], name: str) -> str | None:
    v = cmd.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise CommandError(f"{name} must be a string, got {type(v).__name__}")
    return v


def _pairs(cmd: dict[str, Any], name: str, second: str, *, strings: bool) -> list[Any]:
    """The list of ``[job id, <second>]`` pairs in field ``name`` (both strings if ``strings``)."""
    items = cmd.get(name)
    if not isinstance(items, list):
        raise CommandError(f"{name} must be a list of [job id, {second}] pairs")
    for pair in items:
        if not (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and (not strings or all(isinstance(x, str) for x in pair))
        ):
            raise CommandError(f"{name} entry {pair!r} must be [job id, {second}]")
    return items


def _lane(cmd: dict[str, Any]) -> dict[str, Any] | None:
    """A submit's ``lane`` checked: None, or ``{epoch, worker, at, lease_until}`` well typed."""
    lane = cmd.get("lane")
    if lane is None:
        return None
    if not isinstance(lane, dict):
        raise CommandError(f"lane must be a map, got {type(lane).__name__}")
    return {
        "epoch": _int(lane, "epoch"),
        "worker": _str(lane, "worker"),
        "at": _num(lane, "at"),
        "lease_until": _num(lane, "lease_until"),
    }


def _page(cmd: dict[str, Any]) -> tuple[int, int]:
    limit = cmd.get("limit", 100)
    offset = cmd.get("offset", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PAGE:
        raise CommandError(f"limit must be an integer in 1..{MAX_PAGE}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise CommandError(f"offset must be an integer >= 0, got {offset!r}")
    return limit, offset

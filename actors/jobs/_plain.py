"""Jobs as plain data: the form store commands, Raft logs, SQLite rows and Redis hashes carry.

A :class:`Job` crosses the codec as a typed message, but a store command is plain data (the
Raft log and ``Persist`` hold plain msgpack values only), so commands and results carry jobs as
dicts: every :class:`Job` field by name, ``attempts`` as a list of dicts. :func:`job_from_plain`
checks every field and raises ``ValueError`` naming the first bad one, so a malformed payload
from a client or a store is refused in one line instead of corrupting the queue.
"""

from __future__ import annotations

from typing import Any

from ._model import Attempt, Job


def attempt_to_plain(a: Attempt) -> dict[str, Any]:
    """An :class:`Attempt` as a dict of its fields."""
    return {
        "number": a.number,
        "worker": a.worker,
        "started": a.started,
        "finished": a.finished,
        "error": a.error,
        "outcome": a.outcome,
    }


def job_to_plain(job: Job) -> dict[str, Any]:
    """A :class:`Job` as a dict of its fields (attempts as dicts), ready for msgpack or JSON."""
    return {  # every field of Job, in order (a test keeps this list complete)
        "id": job.id,
        "type": job.type,
        "payload": job.payload,
        "priority": job.priority,
        "max_retries": job.max_retries,
        "timeout_seconds": job.timeout_seconds,
        "scheduled_at": job.scheduled_at,
        "idempotency_key": job.idempotency_key,
        "status": job.status,
        "attempts": [attempt_to_plain(a) for a in job.attempts],
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "lease_expires_at": job.lease_expires_at,
        "attempts_at_requeue": job.attempts_at_requeue,
        "requeue_count": job.requeue_count,
    }


_NUMBER = (int, float)


def _want(data: dict[str, Any], name: str, kinds: tuple[type, ...], optional: bool, where: str) -> Any:
    if name not in data:
        raise ValueError(f"{where}: missing field {name!r}")
    value = data[name]
    if value is None and optional:
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        want = "/".join(k.__name__ for k in kinds)
        raise ValueError(f"{where}: field {name!r} must be {want}, got {type(value).__name__}")
    return value


def attempt_from_plain(data: Any, where: str = "attempt") -> Attempt:
    """The :class:`Attempt` in ``data`` (a dict as :func:`attempt_to_plain` makes).

    Raises:
        ValueError: a field is missing or of the wrong type (one line naming it).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a map, got {type(data).__name__}")
    finished = _want(data, "finished", _NUMBER, True, where)
    return Attempt(
        number=_want(data, "number", (int,), False, where),
        worker=_want(data, "worker", (str,), False, where),
        started=float(_want(data, "started", _NUMBER, False, where)),
        finished=None if finished is None else float(finished),
        error=_want(data, "error", (str,), True, where),
        outcome=_want(data, "outcome", (str,), False, where),
    )


def _fast_job(data: dict[str, Any]) -> Job | None:
    """The job in ``data`` if every field has exactly its plain type and there are no attempts
    (a new job, the hot case), else None: :func:`job_from_plain` then checks field by field."""
    if data.get("attempts") != []:  # an empty list: a new job
        return None
    try:
        jid, jtype, prio, retries = data["id"], data["type"], data["priority"], data["max_retries"]
        timeout, sched, idem = data["timeout_seconds"], data["scheduled_at"], data["idempotency_key"]
        status, created, updated = data["status"], data["created_at"], data["updated_at"]
        lease, at_requeue, requeues = (
            data["lease_expires_at"],
            data["attempts_at_requeue"],
            data["requeue_count"],
        )
    except KeyError:
        return None
    if not (
        type(jid) is str
        and type(jtype) is str
        and type(prio) is int
        and type(retries) is int
        and type(status) is str
        and type(at_requeue) is int
        and type(requeues) is int
        and type(timeout) in _EXACT_NUMBER
        and type(created) in _EXACT_NUMBER
        and type(updated) in _EXACT_NUMBER
        and (sched is None or type(sched) in _EXACT_NUMBER)
        and (lease is None or type(lease) in _EXACT_NUMBER)
        and (idem is None or type(idem) is str)
    ):
        return None
    return Job(
        id=jid,
        type=jtype,
        payload=data.get("payload"),
        priority=prio,
        max_retries=retries,
        timeout_seconds=float(timeout),
        scheduled_at=None if sched is None else float(sched),
        idempotency_key=idem,
        status=status,
        attempts=(),
        created_at=float(created),
        updated_at=float(updated),
        lease_expires_at=None if lease is None else float(lease),
        attempts_at_requeue=at_requeue,
        requeue_count=requeues,
    )


_EXACT_NUMBER = frozenset({int, float})


def job_from_plain(data: Any) -> Job:
    """The :class:`Job` in ``data`` (a dict as :func:`job_to_plain` makes).

    Raises:
        ValueError: not a map, a field missing or of the wrong type, or a value out of range
            (one line naming the job and the field).
    """
    if type(data) is dict:
        fast = _fast_job(data)
        if fast is not None:
            return fast
    if not isinstance(data, dict):
        raise ValueError(f"job: expected a map, got {type(data).__name__}")
    where = f"job {data.get('id')!r}"
    raw_attempts = _want(data, "attempts", (list, tuple), False, where)
    attempts = tuple(attempt_from_plain(a, f"{where} attempt {i + 1}") for i, a in enumerate(raw_attempts))
    scheduled = _want(data, "scheduled_at", _NUMBER, True, where)
    lease = _want(data, "lease_expires_at", _NUMBER, True, where)
    return Job(
        id=_want(data, "id", (str,), False, where),
        type=_want(data, "type", (str,), False, where),
        payload=data.get("payload"),
        priority=_want(data, "priority", (int,), False, where),
        max_retries=_want(data, "max_retries", (int,), False, where),
        timeout_seconds=float(_want(data, "timeout_seconds", _NUMBER, False, where)),
        scheduled_at=None if scheduled is None else float(scheduled),
        idempotency_key=_want(data, "idempotency_key", (str,), True, where),
        status=_want(data, "status", (str,), False, where),
        attempts=attempts,
        created_at=float(_want(data, "created_at", _NUMBER, False, where)),
        updated_at=float(_want(data, "updated_at", _NUMBER, False, where)),
        lease_expires_at=None if lease is None else float(lease),
        attempts_at_requeue=_want(data, "attempts_at_requeue", (int,), False, where),
        requeue_count=_want(data, "requeue_count", (int,), False, where),
    )

"""Job lifecycle: which event may move a job from which status, and what it becomes.

Theory of operation
-------------------
The lifecycle is data, in the manner of h11's ``_state.py``: :data:`JOB_TRANSITIONS` maps a
status to the event types allowed in it and the status each leads to. :func:`apply` looks the
pair up; a missing entry raises :class:`IllegalTransition` naming the job, its status and the
event, so a stale or duplicated report can never silently corrupt a job. Events are frozen,
slotted dataclasses (registered messages, so a replicated log can carry them)::

    PENDING  --Dispatched-->    RUNNING     (opens attempt n+1, lease until lease_expires_at)
    PENDING  --Cancelled-->     CANCELLED
    RUNNING  --LeaseRenewed-->  RUNNING     (worker still alive: the lease moves on)
    RUNNING  --Succeeded-->     SUCCESS     (closes the attempt)
    RUNNING  --Failed-->        RETRYING    (closes it with the error; backoff set, see below)
    RUNNING  --LeaseExpired-->  RETRYING    (closes it with "lease expired"; a failed attempt)
    RUNNING  --Cancelled-->     CANCELLED   (closes it as cancelled)
    RETRYING --Retry-->         PENDING     (the backoff elapsed: ready to dispatch again)
    RETRYING --Cancelled-->     CANCELLED
    FAILED   --Requeued-->      PENDING     (an operator resubmits a non-retryable failure)
    DEAD     --Requeued-->      PENDING     (out of the dead-letter queue, fresh retry budget)

SUCCESS and CANCELLED accept nothing. Two rules refine the RETRYING target of ``Failed`` and
``LeaseExpired`` (the table names the usual path; :data:`FAILURE_TARGETS` lists every one):

- **budget**: a job may make ``max_retries + 1`` attempts per budget. A failure of the last
  one goes to DEAD instead (the dead-letter queue) and ``scheduled_at`` is left alone;
- **permanent errors**: ``Failed(retryable=False)`` goes to FAILED at once, whatever is left.

Otherwise RETRYING sets ``scheduled_at = at + policy.delay(n, rng)`` where ``n`` is the failed
attempt's number within the budget: the scheduler promotes the job (``Retry``) from then on.

Reports are fenced by attempt: ``Succeeded``/``Failed`` may name the attempt they report on, and
one naming any attempt but the open one is illegal (a late report from a worker whose lease
expired and whose job runs elsewhere now). :func:`can_apply` lets callers drop such reports
without catching.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from .._context import Rng
from .._messages import message
from ._model import (
    CANCELLED,
    DEAD,
    FAILED,
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_LEASE_EXPIRED,
    OUTCOME_SUCCESS,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCESS,
    Attempt,
    Job,
)
from ._retry import RetryPolicy

LEASE_EXPIRED_ERROR: Final = "lease expired"
CANCELLED_ERROR: Final = "cancelled"

# --- events ---------------------------------------------------------------------------------


@message("jobs.Dispatched")
@dataclass(frozen=True, slots=True)
class Dispatched:
    """The job was handed to ``worker`` at ``at``, which holds it until ``lease_expires_at``."""

    worker: str
    at: float
    lease_expires_at: float


@message("jobs.LeaseRenewed")
@dataclass(frozen=True, slots=True)
class LeaseRenewed:
    """The running job's worker is alive: its lease now lasts until ``lease_expires_at``."""

    at: float
    lease_expires_at: float


@message("jobs.Succeeded")
@dataclass(frozen=True, slots=True)
class Succeeded:
    """The running attempt (number ``attempt`` if given) finished successfully at ``at``."""

    at: float
    attempt: int | None = None


@message("jobs.Failed")
@dataclass(frozen=True, slots=True)
class Failed:
    """The running attempt failed at ``at`` with ``error``; ``retryable=False`` means never retry."""

    at: float
    error: str
    retryable: bool = True
    attempt: int | None = None


@message("jobs.LeaseExpired")
@dataclass(frozen=True, slots=True)
class LeaseExpired:
    """The running attempt's lease ran out at ``at`` without a report: it counts as failed."""

    at: float


@message("jobs.Retry")
@dataclass(frozen=True, slots=True)
class Retry:
    """The retry backoff of a RETRYING job elapsed at ``at``: it may run again."""

    at: float


@message("jobs.Cancelled")
@dataclass(frozen=True, slots=True)
class Cancelled:
    """A user cancelled the job at ``at`` (``reason`` is kept on an open attempt)."""

    at: float
    reason: str = ""


@message("jobs.Requeued")
@dataclass(frozen=True, slots=True)
class Requeued:
    """An operator moved the job out of the dead-letter queue (or FAILED) at ``at``."""

    at: float


JobEvent = Dispatched | LeaseRenewed | Succeeded | Failed | LeaseExpired | Retry | Cancelled | Requeued
EVENT_TYPES: Final[tuple[type[Any], ...]] = (
    Dispatched,
    LeaseRenewed,
    Succeeded,
    Failed,
    LeaseExpired,
    Retry,
    Cancelled,
    Requeued,
)

# --- the table ------------------------------------------------------------------------------

JOB_TRANSITIONS: Final[dict[str, dict[type[Any], str]]] = {
    PENDING: {Dispatched: RUNNING, Cancelled: CANCELLED},
    RUNNING: {
        LeaseRenewed: RUNNING,
        Succeeded: SUCCESS,
        Failed: RETRYING,
        LeaseExpired: RETRYING,
        Cancelled: CANCELLED,
    },
    RETRYING: {Retry: PENDING, Cancelled: CANCELLED},
    FAILED: {Requeued: PENDING},
    DEAD: {Requeued: PENDING},
    SUCCESS: {},
    CANCELLED: {},
}
"""status -> {event type -> next status}; a pair not listed is an illegal transition."""

FAILURE_TARGETS: Final[dict[type[Any], frozenset[str]]] = {
    Failed: frozenset({RETRYING, DEAD, FAILED}),
    LeaseExpired: frozenset({RETRYING, DEAD}),
}
"""Where a failure may really lead once the budget and permanent-error rules apply."""


class IllegalTransition(Exception):
    """An event that the job's current status does not allow (or a stale attempt report)."""

    def __init__(self, job: Job, event: object, why: str) -> None:
        self.job_id = job.id
        self.status = job.status
        self.event = event
        super().__init__(f"job {job.id!r}: {type(event).__name__} {why}")


def allowed_events(status: str) -> frozenset[type[Any]]:
    """The event types a job in ``status`` accepts."""
    return frozenset(JOB_TRANSITIONS[status])


def can_apply(job: Job, event: object) -> bool:
    """True if :func:`apply` would accept ``event`` for ``job`` (status and attempt fencing)."""
    return _rejection(job, event) is None


def apply(job: Job, event: object, policy: RetryPolicy | None = None, rng: Rng | None = None) -> Job:
    """The job after ``event``: new status, attempt history, ``updated_at`` and retry time.

    Args:
        job: the job as it is now.
        event: one of the event classes above.
        policy: retry backoff for failures (default ``RetryPolicy()``); the job's own
            ``max_retries`` decides how many retries are left, not ``policy.max_retries``.
        rng: jitter source (``ctx.random``); None schedules retries at the nominal delay.

    Returns:
        A new :class:`Job`; ``job`` itself is unchanged.

    Raises:
        IllegalTransition: the event is not allowed in the job's status, or reports on an
            attempt that is not the open one.
    """
    why = _rejection(job, event)
    if why is not None:
        raise IllegalTransition(job, event, why)
    if isinstance(event, Dispatched):
        attempt = Attempt(number=len(job.attempts) + 1, worker=event.worker, started=event.at)
        return replace(
            job,
            status=RUNNING,
            attempts=(*job.attempts, attempt),
            lease_expires_at=event.lease_expires_at,
            updated_at=event.at,
        )
    if isinstance(event, LeaseRenewed):
        return replace(job, lease_expires_at=event.lease_expires_at, updated_at=event.at)
    if isinstance(event, Succeeded):
        return _close(job, event.at, SUCCESS, OUTCOME_SUCCESS, None)
    if isinstance(event, Failed):
        if not event.retryable:
            return _close(job, event.at, FAILED, OUTCOME_FAILED, event.error)
        return _fail(job, event.at, OUTCOME_FAILED, event.error, policy, rng)
    if isinstance(event, LeaseExpired):
        return _fail(job, event.at, OUTCOME_LEASE_EXPIRED, LEASE_EXPIRED_ERROR, policy, rng)
    if isinstance(event, Cancelled):
        if job.status == RUNNING:
            error = f"{CANCELLED_ERROR}: {event.reason}" if event.reason else CANCELLED_ERROR
            return _close(job, event.at, CANCELLED, OUTCOME_CANCELLED, error)
        return replace(job, status=CANCELLED, updated_at=event.at)
    if isinstance(event, Retry):
        return replace(job, status=PENDING, updated_at=event.at)
    if isinstance(event, Requeued):
        return replace(
            job,
            status=PENDING,
            scheduled_at=None,
            attempts_at_requeue=len(job.attempts),
            requeue_count=job.requeue_count + 1,
            updated_at=event.at,
        )
    raise AssertionError(f"unhandled job event {type(event).__name__}")  # pragma: no cover


def _rejection(job: Job, event: object) -> str | None:
    """Why ``event`` cannot apply to ``job`` (for :class:`IllegalTransition`), or None."""
    allowed = JOB_TRANSITIONS[job.status]
    if type(event) not in allowed:
        names = ", ".join(sorted(t.__name__ for t in allowed)) or "none"
        return f"not allowed in status {job.status} (allowed: {names})"
    reported = getattr(event, "attempt", None)
    if reported is not None:
        current = job.current_attempt
        if current is None or current.number != reported:
            running = "no attempt" if current is None else f"attempt {current.number}"
            return f"reports attempt {reported} but {running} is running (stale report)"
    return None


def _close(job: Job, at: float, status: str, outcome: str, error: str | None) -> Job:
    """``job`` in ``status`` with its open attempt closed at ``at`` as ``outcome``."""
    last = job.attempts[-1]
    closed = replace(last, finished=at, error=error, outcome=outcome)
    return replace(
        job,
        status=status,
        attempts=(*job.attempts[:-1], closed),
        lease_expires_at=None,
        updated_at=at,
    )


def _fail(job: Job, at: float, outcome: str, error: str, policy: RetryPolicy | None, rng: Rng | None) -> Job:
    """Close the open attempt as failed, then RETRYING with a backoff, or DEAD if out of budget."""
    if job.retries_left == 0:
        return _close(job, at, DEAD, outcome, error)
    closed = _close(job, at, RETRYING, outcome, error)
    delay = (policy or RetryPolicy()).delay(job.budget_attempts, rng)
    return replace(closed, scheduled_at=at + delay)

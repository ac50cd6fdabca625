"""The job record: what a job is, how urgent it is, and every attempt made to run it.

How it works
------------
A :class:`Job` is an immutable value (a frozen, slotted dataclass registered as the message
``"jobs.Job"``), so it crosses the codec as it is: a store persists it, a Raft log replicates it,
an HTTP edge renders it. Nothing here changes a job in place; :func:`actors.jobs.apply` returns
the next version of a job for each lifecycle event (see ``_transitions``).

- ``status`` is one of the seven strings in :data:`STATUSES` (plain ``str`` so that the codec
  carries it unchanged; a ``Job`` with any other status cannot be built).
- ``attempts`` is the full history, oldest first: one :class:`Attempt` per dispatch, opened by
  the dispatch and closed by a success, failure, lease expiry or cancellation, with the error.
- ``priority`` runs from 1 to 10, 10 the most urgent. The reference API speaks of high, normal
  and low; :func:`parse_priority` maps ``"high"`` to 8, ``"normal"`` to 5 and ``"low"`` to 2,
  leaving 9-10 for work that must overtake ordinary "high" jobs and 1 for the least urgent.
- ``max_retries`` counts retries after the first attempt: a job may run ``max_retries + 1``
  times before it is dead. A requeue from the dead-letter queue grants a fresh budget without
  losing history: ``attempts_at_requeue`` marks where the current budget starts.
- Times (``scheduled_at``, ``created_at``, ``updated_at``, ``lease_expires_at``) are UNIX
  seconds as floats, taken from ``ctx.wall`` by the caller; this module reads no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from .._messages import message

# --- statuses -------------------------------------------------------------------------------

PENDING: Final = "PENDING"
"""Waiting to run: in the ready queue, or delayed until ``scheduled_at``."""
RUNNING: Final = "RUNNING"
"""Dispatched to a worker that holds a lease on it until ``lease_expires_at``."""
SUCCESS: Final = "SUCCESS"
"""Finished successfully (terminal)."""
FAILED: Final = "FAILED"
"""Failed with an error its processor marked not retryable; not retried (may be requeued)."""
RETRYING: Final = "RETRYING"
"""Failed with retries left; waits for its backoff to elapse (``scheduled_at``)."""
DEAD: Final = "DEAD"
"""Out of retries: in the dead-letter queue until an operator requeues it."""
CANCELLED: Final = "CANCELLED"
"""Cancelled by a user before it finished (terminal)."""

STATUSES: Final = (PENDING, RUNNING, SUCCESS, FAILED, RETRYING, DEAD, CANCELLED)
"""Every job status, in lifecycle order."""
TERMINAL_STATUSES: Final = frozenset({SUCCESS, CANCELLED})
"""Statuses no event leaves (``FAILED`` and ``DEAD`` can still be requeued)."""

# --- attempt outcomes -----------------------------------------------------------------------

OUTCOME_RUNNING: Final = "RUNNING"
OUTCOME_SUCCESS: Final = "SUCCESS"
OUTCOME_FAILED: Final = "FAILED"
OUTCOME_LEASE_EXPIRED: Final = "LEASE_EXPIRED"
OUTCOME_CANCELLED: Final = "CANCELLED"
OUTCOMES: Final = (
    OUTCOME_RUNNING,
    OUTCOME_SUCCESS,
    OUTCOME_FAILED,
    OUTCOME_LEASE_EXPIRED,
    OUTCOME_CANCELLED,
)

# --- priorities -----------------------------------------------------------------------------

PRIORITY_MIN: Final = 1
PRIORITY_MAX: Final = 10
PRIORITY_LOW: Final = 2
PRIORITY_NORMAL: Final = 5
PRIORITY_HIGH: Final = 8
PRIORITY_ALIASES: Final = {"low": PRIORITY_LOW, "normal": PRIORITY_NORMAL, "high": PRIORITY_HIGH}
"""The reference's named priorities and the numbers they stand for."""

DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_TIMEOUT_SECONDS: Final = 30.0


def parse_priority(value: int | str) -> int:
    """The numeric priority (1..10, 10 most urgent) of ``value``.

    Args:
        value: an int in 1..10, a numeric string such as ``"7"``, or an alias ``"low"`` (2),
            ``"normal"`` (5) or ``"high"`` (8), any case.

    Returns:
        The priority as an int.

    Raises:
        ValueError: ``value`` is none of the above (the message says what is accepted).
    """
    accepted = f"use {PRIORITY_MIN}..{PRIORITY_MAX} or one of low, normal, high"
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in PRIORITY_ALIASES:
            return PRIORITY_ALIASES[text]
        if text.lstrip("+-").isdigit():
            number = int(text)
    if number is None or not PRIORITY_MIN <= number <= PRIORITY_MAX:
        raise ValueError(f"invalid job priority {value!r}: {accepted}")
    return number


# --- records --------------------------------------------------------------------------------


@message("jobs.Attempt")
@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job on one worker.

    Attributes:
        number: 1 for the first run, counting every dispatch over the job's whole life.
        worker: the worker it was dispatched to.
        started: when it was dispatched (UNIX seconds).
        finished: when it ended, or None while it is running.
        error: why it failed (processor error, ``"lease expired"``, cancellation), else None.
        outcome: one of :data:`OUTCOMES`; ``"RUNNING"`` while open.
    """

    number: int
    worker: str
    started: float
    finished: float | None = None
    error: str | None = None
    outcome: str = OUTCOME_RUNNING

    def __post_init__(self) -> None:
        if self.number < 1:
            raise ValueError(f"attempt number must be >= 1, got {self.number}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown attempt outcome {self.outcome!r}: use one of {', '.join(OUTCOMES)}")

    @property
    def is_open(self) -> bool:
        """True while the attempt is running (no outcome yet)."""
        return self.outcome == OUTCOME_RUNNING

    @property
    def duration(self) -> float | None:
        """Seconds from dispatch to end, or None while running."""
        return None if self.finished is None else self.finished - self.started


@message("jobs.Job")
@dataclass(frozen=True, slots=True)
class Job:
    """A unit of work and its lifecycle so far (immutable; see :func:`actors.jobs.apply`).

    Attributes:
        id: unique job id (the caller makes it, e.g. from ``ctx.random``).
        type: which processor runs it, e.g. ``"email"``.
        payload: the processor's input, any plain data the codec carries.
        priority: 1..10, 10 most urgent (see :func:`parse_priority`).
        max_retries: retries allowed after the first attempt (per budget, see requeue).
        timeout_seconds: how long one attempt may run before it counts as failed.
        scheduled_at: not to run before this UNIX time (delayed job or retry backoff), or None.
        idempotency_key: the submitter's key; a second submission with it returns this job.
        status: one of :data:`STATUSES`.
        attempts: every attempt, oldest first.
        created_at: when it was submitted.
        updated_at: when it last changed status or history.
        lease_expires_at: while RUNNING, when the worker's lease runs out; else None.
        attempts_at_requeue: attempts made before the latest requeue (0 if never requeued).
        requeue_count: how many times it was requeued from the dead-letter queue.
    """

    id: str
    type: str
    payload: Any = None
    priority: int = PRIORITY_NORMAL
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    scheduled_at: float | None = None
    idempotency_key: str | None = None
    status: str = PENDING
    attempts: tuple[Attempt, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    lease_expires_at: float | None = None
    attempts_at_requeue: int = 0
    requeue_count: int = 0

    def __post_init__(self) -> None:
        problem = _job_problem(self)
        if problem:
            raise ValueError(f"job {self.id!r}: {problem}")

    @classmethod
    def create(
        cls,
        id: str,
        type: str,
        payload: Any = None,
        *,
        now: float,
        priority: int | str = PRIORITY_NORMAL,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        scheduled_at: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """A new PENDING job submitted at ``now`` (UNIX seconds).

        Args:
            id: the job id; type: the processor name; payload: its input.
            now: submission time, from ``ctx.wall``.
            priority: 1..10 or ``"low"``/``"normal"``/``"high"``.
            max_retries, timeout_seconds, scheduled_at, idempotency_key: as on :class:`Job`.

        Raises:
            ValueError: a field is out of range (one line naming the job and the field).
        """
        try:
            level = parse_priority(priority)
        except ValueError as e:
            raise ValueError(f"job {id!r}: {e}") from None
        return cls(
            id=id,
            type=type,
            payload=payload,
            priority=level,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
            scheduled_at=scheduled_at,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
        )

    # --- derived views ---------------------------------------------------------------------

    @property
    def attempt_count(self) -> int:
        """Attempts made over the job's whole life (requeues included)."""
        return len(self.attempts)

    @property
    def budget_attempts(self) -> int:
        """Attempts made since the latest requeue (all attempts if never requeued)."""
        return len(self.attempts) - self.attempts_at_requeue

    @property
    def retry_count(self) -> int:
        """Retries made in the current budget (the reference's ``retry_count``)."""
        return max(0, self.budget_attempts - 1)

    @property
    def retries_left(self) -> int:
        """Retries still allowed in the current budget after the attempts made so far."""
        return max(0, self.max_retries + 1 - self.budget_attempts)

    @property
    def current_attempt(self) -> Attempt | None:
        """The open attempt while RUNNING, else None."""
        if self.attempts and self.attempts[-1].is_open:
            return self.attempts[-1]
        return None

    @property
    def worker(self) -> str | None:
        """The worker running the job now, else None."""
        attempt = self.current_attempt
        return None if attempt is None else attempt.worker

    @property
    def last_error(self) -> str | None:
        """The error of the latest attempt that recorded one, else None."""
        for attempt in reversed(self.attempts):
            if attempt.error is not None:
                return attempt.error
        return None

    @property
    def is_terminal(self) -> bool:
        """True if no event can move the job any more (SUCCESS or CANCELLED)."""
        return self.status in TERMINAL_STATUSES

    def is_due(self, now: float) -> bool:
        """True if the job may start at ``now`` (no ``scheduled_at`` or it has passed)."""
        return self.scheduled_at is None or now >= self.scheduled_at


def _job_problem(job: Job) -> str | None:
    """What is wrong with ``job``'s fields, in a few words, or None."""
    if not job.id:
        return "id must not be empty"
    if not job.type:
        return "type must not be empty"
    if isinstance(job.priority, bool) or not PRIORITY_MIN <= job.priority <= PRIORITY_MAX:
        return f"priority must be {PRIORITY_MIN}..{PRIORITY_MAX}, got {job.priority!r}"
    if isinstance(job.max_retries, bool) or job.max_retries < 0:
        return f"max_retries must be >= 0, got {job.max_retries!r}"
    if not (math.isfinite(job.timeout_seconds) and job.timeout_seconds > 0):
        return f"timeout_seconds must be a positive number, got {job.timeout_seconds!r}"
    if job.scheduled_at is not None and not math.isfinite(job.scheduled_at):
        return f"scheduled_at must be a finite UNIX time, got {job.scheduled_at!r}"
    if job.status not in STATUSES:
        return f"unknown status {job.status!r}: use one of {', '.join(STATUSES)}"
    if not 0 <= job.attempts_at_requeue <= len(job.attempts):
        return f"attempts_at_requeue {job.attempts_at_requeue} outside 0..{len(job.attempts)}"
    open_attempts = sum(1 for a in job.attempts if a.is_open)
    if open_attempts != (1 if job.status == RUNNING else 0) or (
        open_attempts and not job.attempts[-1].is_open
    ):
        return f"status {job.status} with {open_attempts} open attempt(s)"
    return None
